//! `diag policy check BASE PERMISSIVE`: OpenShell refuses to remove a live filesystem path on
//! `shields down`, so every path the base policy grants must be in the permissive one too.

use super::args::PolicyCommand;
use super::usage;
use crate::model::text::escape;
use crate::sandbox::Policy;
use anyhow::Result;
use std::path::{Path, PathBuf};

pub fn policy(cmd: PolicyCommand) -> Result<i32> {
    match cmd {
        PolicyCommand::Check { base, permissive } => check(&base, &permissive),
    }
}

fn load(p: &Path) -> Result<Policy> {
    Policy::load(p).map_err(|e| usage(format!("{e:#}")))
}

/// Paths the base grants that the permissive policy lacks (or grants with fewer rights).
pub fn missing(base: &Policy, permissive: &Policy) -> Vec<(PathBuf, &'static str)> {
    let (b, p) = (base.filesystem(), permissive.filesystem());
    let mut out = Vec::new();
    for path in &b.read_write {
        if !p.read_write.contains(path) {
            out.push((path.clone(), "read_write"));
        }
    }
    for path in &b.read_only {
        if !p.read_only.contains(path) && !p.read_write.contains(path) {
            out.push((path.clone(), "read_only"));
        }
    }
    out
}

fn check(base: &Path, permissive: &Path) -> Result<i32> {
    let gaps = missing(&load(base)?, &load(permissive)?);
    for (path, list) in &gaps {
        println!(
            "warning: {} lacks {} (granted {list} by {}): `shields down` would have to remove a live filesystem path, which OpenShell refuses",
            escape(&permissive.display().to_string()),
            escape(&path.display().to_string()),
            escape(&base.display().to_string()),
        );
    }
    if gaps.is_empty() {
        println!(
            "ok: {} grants every path of {}",
            permissive.display(),
            base.display()
        );
    }
    Ok(if gaps.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_paths_the_permissive_policy_lacks() {
        let base = Policy::parse("version: 1\nfilesystem_policy:\n  read_only: [/usr, /opt]\n  read_write: [/tmp, /dev/pts]\n").unwrap();
        let perm = Policy::parse(
            "version: 1\nfilesystem_policy:\n  read_only: [/usr]\n  read_write: [/tmp, /opt]\n",
        )
        .unwrap();
        let gaps = missing(&base, &perm);
        assert_eq!(gaps, vec![(PathBuf::from("/dev/pts"), "read_write")]);
        assert!(missing(&base, &base).is_empty());
    }
}
