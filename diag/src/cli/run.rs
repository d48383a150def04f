//! `diag run`: launch a command under tracing, explain its failures, exit with its status.

use super::args::{Backend, RunArgs};
use super::live::{self, Interrupt};
use super::{output, usage};
use crate::capture::ptrace::{self, PtraceCapture};
use crate::capture::{ebpf::EbpfCapture, launch, CaptureConfig, ProbeReport};
use crate::context::HostFacts;
use crate::correlate::{Procfs, Trace};
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

/// The backend chosen for this run, loaded before the command is forked.
enum Chosen {
    Ebpf(EbpfCapture),
    Ptrace(PtraceCapture),
}

/// What a backend captured of the launched command.
struct Captured {
    backend: &'static str,
    root: Pid,
    status: Option<WaitStatus>,
    partial: bool,
    /// exec failed: errno and reason.
    exec_failure: Option<(i32, String)>,
    probes: ProbeReport,
}

pub fn run(args: RunArgs) -> Result<i32> {
    output::check(&args.report)?;
    let config = capture_config(&args.filter.errno, &args.filter.syscalls)?;
    let (pre_exec, mut warnings) = prepare_child(&args)?;
    let backend = choose_backend(&args, &config, &mut warnings)?;
    let host = HostFacts::read();
    let mut trace = Trace::new();
    let interrupt = Interrupt::install()?;
    let captured = match backend {
        Chosen::Ebpf(cap) => capture_ebpf(cap, &args, pre_exec, &mut trace, &interrupt)?,
        Chosen::Ptrace(cap) => capture_ptrace(cap, &args, pre_exec, &mut trace, &interrupt)?,
    };

    let mut report_args = args.report.clone();
    if let Some((e, msg)) = &captured.exec_failure {
        // One clear line instead of a report about the failed exec's PATH search.
        let line = format!(
            "cannot run {}: {msg} ({})",
            Text::from(args.command[0].as_str()).escaped(),
            errno::name(*e)
        );
        eprintln!("diag: {line}");
        warnings.push(line);
        report_args.quiet = true;
    }
    let partial = captured.partial;
    let exit_status = captured.status.and_then(launch::exit_code);
    let report = pipeline::report(
        &trace,
        Session {
            backend: captured.backend,
            mode: "run",
            command: args
                .command
                .iter()
                .map(|a| Text::from(a.as_str()))
                .collect(),
            root_pids: vec![captured.root.as_raw() as u32],
            exit_status,
            partial,
            host: &host,
            probes: &captured.probes,
            warnings,
        },
    );
    output::emit(&report, &report_args).context("writing the report")?;
    Ok(exit_status.unwrap_or(if partial { 130 } else { 1 }))
}

/// `--backend`: eBPF where it loads; `auto` falls back to ptrace with a one-line note.
fn choose_backend(
    args: &RunArgs,
    config: &CaptureConfig,
    warnings: &mut Vec<String>,
) -> Result<Chosen> {
    let ptrace = || {
        let mode = if args.no_prefilter {
            ptrace::Mode::EveryStop
        } else {
            ptrace::Mode::Prefilter
        };
        Ok(Chosen::Ptrace(PtraceCapture::new(config, mode)?))
    };
    match args.backend {
        Backend::Ptrace => ptrace(),
        Backend::Ebpf => load_ebpf(config)
            .map(Chosen::Ebpf)
            .map_err(|(why, fix)| usage(format!("the eBPF backend {why}{fix}"))),
        Backend::Auto => match load_ebpf(config) {
            Ok(cap) => Ok(Chosen::Ebpf(cap)),
            Err((why, _)) => {
                let note = format!("the eBPF backend {why}; using the ptrace backend");
                eprintln!("diag: {note}");
                warnings.push(note);
                ptrace()
            }
        },
    }
}

/// Loads the eBPF backend, or says why it cannot (and what fixes it, where something does).
fn load_ebpf(config: &CaptureConfig) -> Result<EbpfCapture, (String, &'static str)> {
    if let Some(reason) = crate::capture::ebpf::missing_reason() {
        return Err((format!("was not built into this binary: {reason}"), ""));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err((
            "needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)".into(),
            ": run diag with sudo, or use --backend ptrace",
        ));
    }
    EbpfCapture::load(config, None).map_err(|e| (format!("cannot load: {e:#}"), ""))
}

fn add_root(trace: &mut Trace, root: Pid, args: &RunArgs) {
    trace.add_process(
        root.as_raw() as u32,
        Some(std::process::id()),
        Text::from(args.command[0].as_str()),
        None,
    );
}

fn exec_failure(started: launch::Started) -> Option<(i32, String)> {
    match started {
        launch::Started::ExecFailed { errno, message, .. } => Some((errno, message)),
        launch::Started::Running(_) => None,
    }
}

fn capture_ebpf(
    mut cap: EbpfCapture,
    args: &RunArgs,
    pre_exec: launch::PreExec,
    trace: &mut Trace,
    interrupt: &Interrupt,
) -> Result<Captured> {
    // The child waits until tracing is ready.
    let held = launch::spawn_held(&args.command, pre_exec)?;
    let root = held.pid;
    if let Err(e) = cap.track(root.as_raw() as u32) {
        held.abandon();
        return Err(e);
    }
    add_root(trace, root, args);
    let exec_failure = exec_failure(held.release()?);
    let mut status = None;
    let partial = live::pump(&mut cap, trace, interrupt, |_| {
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
        live::pump(&mut cap, trace, interrupt, |t| {
            t.live_pids().iter().all(|&p| !live::alive(p))
        })?;
    }
    live::drain(&mut cap, trace)?;
    trace.finish(cap.stats()?);
    Ok(Captured {
        backend: "ebpf",
        root,
        status,
        partial,
        exec_failure,
        probes: cap.probes,
    })
}

/// The ptrace backend traces until the whole tree has exited: its seccomp filter cannot be
/// removed, so a process left behind would see its traced syscalls fail with ENOSYS.
fn capture_ptrace(
    mut cap: PtraceCapture,
    args: &RunArgs,
    pre_exec: launch::PreExec,
    trace: &mut Trace,
    interrupt: &Interrupt,
) -> Result<Captured> {
    let install_filter = cap.child_setup();
    let held = launch::spawn_held(
        &args.command,
        Box::new(move || {
            install_filter()?;
            pre_exec()
        }),
    )?;
    let root = held.pid;
    if let Err(e) = cap.seize(root) {
        held.abandon();
        return Err(usage(format!("{e:#}")));
    }
    add_root(trace, root, args);
    interrupt.interrupt_blocking_calls();
    let released = held.release_only()?;
    let mut partial = false;
    let mut noted = args.wait_tree;
    loop {
        let step = cap.step(&mut |ev| trace.on_event(ev, &Procfs))?;
        if step == ptrace::Step::TreeGone {
            break;
        }
        let root_done = cap.root_status().is_some();
        if interrupt.fired() {
            if !partial && !root_done {
                let _ = nix::sys::signal::kill(root, nix::sys::signal::Signal::SIGTERM);
            }
            // Stop once the command is gone, or at a second signal.
            if root_done || (partial && step == ptrace::Step::Interrupted) {
                partial = true;
                break;
            }
            partial = true;
        } else if root_done && !noted && cap.tasks() > 0 {
            noted = true;
            eprintln!("diag: the command exited; tracing the rest of its tree until it exits (ptrace cannot detach: its seccomp filter stays); Ctrl-C ends it");
        }
    }
    // The status pipe is closed once the command exec'd or exited; a running, interrupted
    // command with its exec done has nothing to report there.
    let exec_failure = match cap.root_status() {
        Some(_) => exec_failure(released.outcome()?),
        None => None,
    };
    trace.finish(cap.stats());
    Ok(Captured {
        backend: "ptrace",
        root,
        status: cap.root_status(),
        partial,
        exec_failure,
        probes: cap.probes,
    })
}

fn reap(pid: Pid) -> Option<WaitStatus> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => None,
        Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => Some(s),
        Ok(_) => None,
        Err(_) => Some(WaitStatus::Exited(pid, 1)),
    }
}
