//! An optional OpenShell-like seccomp blocklist: listed syscalls return an errno. Off unless the
//! policy asks for it (diag traces from the host, so blocking ptrace/bpf inside costs nothing).

use crate::model::{errno, syscalls};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeccompPolicy {
    /// Syscall names to refuse.
    pub blocklist: Vec<String>,
    /// The errno they return (default EPERM; ENOSYS lets programs fall back, as for clone3).
    #[serde(default = "default_errno")]
    pub errno: String,
}

fn default_errno() -> String {
    "EPERM".into()
}

impl SeccompPolicy {
    /// Compiles the filter in the parent, so the child only installs it.
    pub fn compile(&self) -> Result<seccompiler::BpfProgram> {
        let code = errno::number(&self.errno)
            .with_context(|| format!("seccomp.errno: unknown errno {}", self.errno))?;
        let mut rules = BTreeMap::new();
        for name in &self.blocklist {
            let Some(nr) = syscalls::number(name) else {
                bail!("seccomp.blocklist: unknown syscall {name}");
            };
            rules.insert(nr as i64, vec![]);
        }
        let filter = seccompiler::SeccompFilter::new(
            rules,
            seccompiler::SeccompAction::Allow,
            seccompiler::SeccompAction::Errno(code as u32),
            seccompiler::TargetArch::x86_64,
        )?;
        Ok(filter.try_into()?)
    }
}

/// Installs a compiled filter on the calling thread (no_new_privs is set first).
pub fn install(program: &seccompiler::BpfProgram) -> Result<()> {
    // SAFETY: prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        bail!(
            "prctl(PR_SET_NO_NEW_PRIVS): {}",
            std::io::Error::last_os_error()
        );
    }
    seccompiler::apply_filter(program).context("installing the seccomp filter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_known_names_and_rejects_unknown_ones() {
        let ok = SeccompPolicy {
            blocklist: vec!["ptrace".into(), "bpf".into()],
            errno: "EPERM".into(),
        };
        assert!(!ok.compile().unwrap().is_empty());
        let bad = SeccompPolicy {
            blocklist: vec!["frobnicate".into()],
            errno: "EPERM".into(),
        };
        assert!(bad
            .compile()
            .unwrap_err()
            .to_string()
            .contains("frobnicate"));
        let bad_errno = SeccompPolicy {
            blocklist: vec![],
            errno: "EBOGUS".into(),
        };
        assert!(bad_errno.compile().is_err());
    }
}
