//! `diag sandbox`: apply a policy to this process and exec the command (the bundled example
//! sandbox; `diag run --policy` applies the same plan in its launched child).

use super::args::SandboxArgs;
use super::usage;
use crate::capture::launch;
use crate::model::Text;
use crate::sandbox::terminal::Isolation;
use crate::sandbox::{Plan, Policy};
use anyhow::Result;
use nix::sys::signal::{kill, Signal};
use std::ffi::CString;

pub fn sandbox(args: SandboxArgs) -> Result<i32> {
    let policy = Policy::load(&args.policy).map_err(|e| usage(format!("{e:#}")))?;
    let mut plan = Plan::new(&policy).map_err(|e| usage(format!("--policy: {e:#}")))?;
    for note in &plan.notes {
        eprintln!("diag sandbox: {note}");
    }
    if let Some(id) = plan.identity.as_mut() {
        id.preserve_env(&args.env.preserve_env);
        let uid = id.uid;
        return as_another_user(plan, uid, &args.command);
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
        Text::from(args.command[0].as_str()).escaped(),
        err.desc()
    );
    Ok(if err == nix::errno::Errno::ENOENT {
        127
    } else {
        126
    })
}

/// A workload run as another user gets a session of its own, as under `diag run --user`: this
/// process stays as its parent to relay its pty, passes on the signals it is sent, and exits
/// with its status.
fn as_another_user(plan: Plan, uid: nix::unistd::Uid, command: &[String]) -> Result<i32> {
    let isolation = Isolation::new(uid)?;
    let session = isolation.child_side();
    let held = launch::spawn_held(
        command,
        Box::new(move || {
            session.enter()?;
            plan.apply()
        }),
        // This process stands between the caller and the workload: it goes, the workload goes.
        true,
    )?;
    let _relay = isolation.relay()?;
    let pid = held.pid;
    let mut signals = signal_hook::iterator::Signals::new([
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
    ])?;
    let handle = signals.handle();
    let forward = std::thread::spawn(move || {
        for sig in signals.forever() {
            if let Ok(sig) = Signal::try_from(sig) {
                let _ = kill(pid, sig);
            }
        }
    });
    if let launch::Started::ExecFailed { message, .. } = held.release()? {
        eprintln!(
            "diag sandbox: cannot run {}: {message}",
            Text::from(command[0].as_str()).escaped()
        );
    }
    let status = loop {
        match nix::sys::wait::waitpid(pid, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other?,
        }
    };
    handle.close();
    let _ = forward.join();
    Ok(launch::exit_code(status).unwrap_or(1))
}
