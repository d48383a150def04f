//! `diag run`: launch a command under tracing, explain its failures, exit with its status.

use super::args::{Backend, RunArgs};
use super::live::{self, Interrupt};
use super::{output, usage};
use crate::capture::{ebpf::EbpfCapture, launch, CaptureConfig};
use crate::context::HostFacts;
use crate::correlate::Trace;
use crate::model::{errno, syscalls, Text};
use crate::pipeline;
use crate::report::build::Session;
use crate::sandbox::{identity::Identity, Plan, Policy};
use anyhow::{Context, Result};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

pub fn capture_config(errno_spec: &str, syscall_spec: &str) -> Result<CaptureConfig> {
    Ok(CaptureConfig {
        errnos: errno::parse_selection(errno_spec).map_err(|e| usage(format!("--errno: {e}")))?,
        syscalls: syscalls::parse_selection(syscall_spec)
            .map_err(|e| usage(format!("--syscalls: {e}")))?,
        ..CaptureConfig::default()
    })
}

/// Work for the child before exec: the policy, then `--user`.
fn prepare_child(args: &RunArgs) -> Result<(launch::PreExec, Vec<String>)> {
    let plan = match &args.policy {
        Some(p) => Some(
            Plan::new(&Policy::load(p).map_err(|e| usage(format!("{e:#}")))?)
                .map_err(|e| usage(format!("--policy: {e:#}")))?,
        ),
        None => None,
    };
    let user = Identity::resolve(args.user.as_deref(), None)
        .map_err(|e| usage(format!("--user: {e:#}")))?;
    let notes = plan.as_ref().map(|p| p.notes.clone()).unwrap_or_default();
    let pre_exec: launch::PreExec = Box::new(move || {
        if let Some(plan) = &plan {
            plan.apply()?;
        }
        if let Some(id) = &user {
            id.become_()?;
        }
        Ok(())
    });
    Ok((pre_exec, notes))
}

pub fn run(args: RunArgs) -> Result<i32> {
    output::check(&args.report)?;
    let config = capture_config(&args.filter.errno, &args.filter.syscalls)?;
    if args.backend == Backend::Ptrace {
        return Err(usage(
            "--backend ptrace is not available in this build yet; use --backend ebpf as root",
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(usage("diag run needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN) for the eBPF backend: run it with sudo"));
    }
    let (pre_exec, mut warnings) = prepare_child(&args)?;

    // Fork before any thread exists; the child waits until tracing is ready.
    let held = launch::spawn_held(&args.command, pre_exec)?;
    let root = held.pid;
    let mut cap = match EbpfCapture::load(&config, None) {
        Ok(c) => c,
        Err(e) => {
            held.abandon();
            return Err(usage(format!("the eBPF backend cannot load: {e:#}")));
        }
    };
    cap.track(root.as_raw() as u32)?;
    let host = HostFacts::read();
    let mut trace = Trace::new();
    trace.add_process(
        root.as_raw() as u32,
        Some(std::process::id()),
        Text::from(args.command[0].as_str()),
        None,
    );
    let interrupt = Interrupt::install()?;

    let mut exec_failure = None;
    if let launch::Started::ExecFailed { errno, message, .. } = held.release()? {
        exec_failure = Some((errno, message));
    }
    let mut status = None;
    let partial = live::pump(&mut cap, &mut trace, &interrupt, |_| {
        status = reap(root);
        status.is_some()
    })?;
    if partial && status.is_none() {
        // Give the command a moment to finish on its own (Ctrl-C reached it too).
        let _ = nix::sys::signal::kill(root, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..40 {
            status = reap(root);
            if status.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    if args.wait_tree && !partial {
        live::pump(&mut cap, &mut trace, &interrupt, |t| {
            t.live_pids().iter().all(|&p| !live::alive(p))
        })?;
    }
    live::drain(&mut cap, &mut trace)?;
    trace.finish(cap.stats()?);

    let mut report_args = args.report.clone();
    if let Some((e, msg)) = &exec_failure {
        // One clear line instead of a report about the failed exec's PATH search.
        let line = format!(
            "cannot run {}: {msg} ({})",
            Text::from(args.command[0].as_str()).escaped(),
            errno::name(*e)
        );
        eprintln!(
            "diag: {}",
            crate::report::redact::Redactor::new(&args.report.redact).string(&line)
        );
        warnings.push(line);
        report_args.quiet = true;
    }
    let exit_status = status.and_then(launch::exit_code);
    let report = pipeline::report(
        &trace,
        Session {
            backend: "ebpf",
            mode: "run",
            command: args
                .command
                .iter()
                .map(|a| Text::from(a.as_str()))
                .collect(),
            root_pids: vec![root.as_raw() as u32],
            exit_status,
            partial,
            host: &host,
            probes: &cap.probes,
            warnings,
        },
    );
    output::emit(&report, &report_args).context("writing the report")?;
    Ok(exit_status.unwrap_or(if partial { 130 } else { 1 }))
}

fn reap(pid: Pid) -> Option<WaitStatus> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => None,
        Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => Some(s),
        Ok(_) => None,
        Err(_) => Some(WaitStatus::Exited(pid, 1)),
    }
}
