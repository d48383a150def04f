//! Applies a policy to the current process before exec: RLIMIT_NPROC, Landlock (with the
//! `landlock` crate: read-only paths get read/execute, read-write paths every right, as
//! OpenShell does), the credentials, then the optional seccomp blocklist.

use super::identity::Identity;
use super::policy::{Compatibility, Policy};
use anyhow::{bail, Context, Result};
use landlock::{
    path_beneath_rules, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, ABI,
};
use std::path::PathBuf;

/// Everything resolved in the parent, so the child only makes syscalls.
#[derive(Clone, Debug)]
pub struct Plan {
    pub read_only: Vec<PathBuf>,
    pub read_write: Vec<PathBuf>,
    /// Whether the policy has a filesystem section (and so a Landlock domain).
    pub landlock: bool,
    pub hard: bool,
    pub nproc: Option<u64>,
    pub identity: Option<Identity>,
    pub seccomp: Option<seccompiler::BpfProgram>,
    /// What was skipped or ignored, for the report.
    pub notes: Vec<String>,
}

impl Plan {
    pub fn new(policy: &Policy) -> Result<Self> {
        let hard = policy.landlock.compatibility == Compatibility::HardRequirement;
        let mut notes = policy.notes();
        let mut keep = |paths: &[PathBuf]| -> Result<Vec<PathBuf>> {
            let mut out = Vec::new();
            for p in paths {
                if p.exists() {
                    out.push(p.clone());
                } else if hard {
                    bail!("policy path {} does not exist (landlock.compatibility is hard_requirement)", p.display());
                } else {
                    notes.push(format!(
                        "policy: skipped {} (does not exist; best_effort)",
                        p.display()
                    ));
                }
            }
            Ok(out)
        };
        let fs = policy.filesystem();
        let read_only = keep(&fs.read_only)?;
        let mut read_write = keep(&fs.read_write)?;
        if fs.include_workdir {
            read_write
                .push(std::env::current_dir().context("include_workdir: no working directory")?);
        }
        let identity = Identity::resolve(
            policy.process.run_as_user.as_deref(),
            policy.process.run_as_group.as_deref(),
        )?;
        let seccomp = policy.seccomp.as_ref().map(|s| s.compile()).transpose()?;
        Ok(Plan {
            read_only,
            read_write,
            landlock: policy.filesystem_policy.is_some(),
            hard,
            nproc: policy.process.nproc,
            identity,
            seccomp,
            notes,
        })
    }

    /// Runs in the child, before exec.
    pub fn apply(&self) -> Result<()> {
        if let Some(n) = self.nproc {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NPROC, n, n)
                .context("setting RLIMIT_NPROC")?;
        }
        if self.landlock {
            restrict(&self.read_only, &self.read_write, self.hard)?;
        }
        if let Some(id) = &self.identity {
            id.become_()?;
        }
        // Last: the filter may refuse calls the steps above need (setuid, prctl).
        if let Some(program) = &self.seccomp {
            super::seccomp::install(program)?;
        }
        Ok(())
    }
}

/// The newest filesystem ABI the landlock crate knows; the kernel's own limit applies on top.
const ABI_TARGET: ABI = ABI::V5;

pub fn restrict(read_only: &[PathBuf], read_write: &[PathBuf], hard: bool) -> Result<()> {
    let level = if hard {
        CompatLevel::HardRequirement
    } else {
        CompatLevel::BestEffort
    };
    let status = Ruleset::default()
        .set_compatibility(level)
        .handle_access(AccessFs::from_all(ABI_TARGET))?
        .create()?
        .add_rules(path_beneath_rules(
            read_only,
            AccessFs::from_read(ABI_TARGET),
        ))?
        .add_rules(path_beneath_rules(
            read_write,
            AccessFs::from_all(ABI_TARGET),
        ))?
        .restrict_self()
        .context("landlock_restrict_self")?;
    if hard && status.ruleset != RulesetStatus::FullyEnforced {
        bail!(
            "the kernel does not fully enforce this Landlock policy ({:?})",
            status.ruleset
        );
    }
    Ok(())
}
