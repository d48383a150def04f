//! `diag sandbox`: apply a policy to this process and exec the command (the bundled example
//! sandbox; `diag run --policy` applies the same plan in its launched child).

use super::args::SandboxArgs;
use super::usage;
use crate::sandbox::{Plan, Policy};
use anyhow::Result;
use std::ffi::CString;

pub fn sandbox(args: SandboxArgs) -> Result<i32> {
    let policy = Policy::load(&args.policy).map_err(|e| usage(format!("{e:#}")))?;
    let plan = Plan::new(&policy).map_err(|e| usage(format!("--policy: {e:#}")))?;
    for note in &plan.notes {
        eprintln!("diag sandbox: {note}");
    }
    plan.apply()
        .map_err(|e| usage(format!("applying the policy: {e:#}")))?;
    let argv: Vec<CString> = args
        .command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let err = nix::unistd::execvp(&argv[0], &argv).unwrap_err();
    eprintln!(
        "diag sandbox: cannot run {}: {}",
        crate::model::Text::from(args.command[0].as_str()).escaped(),
        err.desc()
    );
    Ok(if err == nix::errno::Errno::ENOENT {
        127
    } else {
        126
    })
}
