//! `diag attach`: trace a running sandbox from the host, by pid (with its descendants) or by
//! cgroup, until the tree exits, `--duration` elapses, or SIGINT/SIGTERM. With eBPF where it
//! loads, else (or with `--backend ptrace`) by attaching ptrace to every thread.

use super::args::{AttachArgs, Backend};
use super::live::{self, Interrupt};
use super::status::StatusLine;
use super::{output, run::capture_config, usage};
use crate::capture::container;
use crate::capture::ptrace::{self, PtraceCapture};
use crate::capture::targets::{self, Seed};
use crate::capture::{ebpf::EbpfCapture, CaptureConfig, ProbeReport};
use crate::context::HostFacts;
use crate::correlate::{Procfs, Trace};
use crate::model::Text;
use crate::pipeline;
use crate::report::build::Session;
use anyhow::{Context, Result};
use std::time::{Duration, Instant};

/// When to stop tracing, besides a signal.
struct Until {
    duration: Option<Duration>,
    /// Attached by pid: stop when the whole tree is gone. A cgroup can gain members: keep going.
    until_tree_gone: bool,
    started: Instant,
}

impl Until {
    fn expired(&self) -> bool {
        self.duration.is_some_and(|d| self.started.elapsed() >= d)
    }

    fn reached(&self, trace: &Trace) -> bool {
        self.expired()
            || (self.until_tree_gone && trace.live_pids().iter().all(|&p| !live::alive(p)))
    }
}

/// What either backend's capture works from.
struct Tracing<'a> {
    seeds: &'a [Seed],
    interrupt: &'a Interrupt,
    until: &'a Until,
    /// Says "attached" (a caller may start the workload on that line).
    announce: &'a dyn Fn(),
    quiet: bool,
}

impl Tracing<'_> {
    /// Every thread to trace, with its process.
    fn threads(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.seeds
            .iter()
            .flat_map(|s| s.tids.iter().map(move |&tid| (tid, s.pid)))
    }
}

/// What a backend's capture leaves for the report.
struct Captured {
    backend: &'static str,
    partial: bool,
    probes: ProbeReport,
    warnings: Vec<String>,
}

pub fn attach(mut args: AttachArgs) -> Result<i32> {
    let started = std::time::SystemTime::now();
    output::check(&args.report, &[])?;
    // A container is traced as its cgroup.
    let container = args
        .container
        .as_deref()
        .map(container::resolve)
        .transpose()
        .map_err(|e| usage(format!("{e:#}")))?;
    if let Some(c) = &container {
        args.cgroup = Some(c.cgroup_dir());
    }
    let config = capture_config(&args.filter)?;
    let duration = args
        .duration
        .as_deref()
        .map(humantime::parse_duration)
        .transpose()
        .map_err(|e| usage(format!("--duration: {e} (use e.g. 60s, 5m, 500ms)")))?;
    let (seeds, cgroup_id) = match (&args.cgroup, args.pid.is_empty()) {
        (Some(path), true) => {
            let t = targets::cgroup(path).map_err(|e| usage(format!("{e:#}")))?;
            (t.seeds, t.v2_id)
        }
        (None, false) => (
            targets::pid_tree(&args.pid).map_err(|e| usage(format!("{e:#}")))?,
            None,
        ),
        _ => {
            return Err(usage(
                "give either --pid PID (repeatable), --cgroup PATH or --container NAME|ID",
            ))
        }
    };
    let mut trace = Trace::new();
    for s in &seeds {
        trace.add_process(
            s.pid,
            s.ppid,
            Text::from(s.comm.as_str()),
            s.exe.as_deref().map(Text::from),
        );
    }
    let by_pid = args.cgroup.is_none();
    let host = HostFacts::read();
    let interrupt = Interrupt::install()?;
    // Said once the backend is attached: a caller may start the workload on this line.
    let announce = || {
        if args.report.quiet {
            return;
        }
        let until = match &duration {
            Some(d) => format!("for {}", humantime::format_duration(*d)),
            None if by_pid => "until the tree exits".into(),
            None => "until Ctrl-C".into(),
        };
        eprintln!(
            "diag: attached to {} processes; tracing {until}",
            seeds.len()
        );
    };
    let until = Until {
        duration,
        until_tree_gone: by_pid,
        started: Instant::now(),
    };
    let tracing = Tracing {
        seeds: &seeds,
        interrupt: &interrupt,
        until: &until,
        announce: &announce,
        quiet: args.report.quiet,
    };
    let captured = match choose(&args, &config, cgroup_id)? {
        Chosen::Ebpf(cap, warnings) => attach_ebpf(cap, &mut trace, &tracing, warnings)?,
        Chosen::Ptrace(cap, warnings) => attach_ptrace(cap, &mut trace, &tracing, warnings)?,
    };

    let command = match &args.cgroup {
        Some(p) => vec![Text::from(format!("cgroup:{}", p.display()))],
        None => seeds
            .first()
            .map(|s| s.cmdline.iter().map(|a| Text::from(a.as_str())).collect())
            .unwrap_or_default(),
    };
    let mut report = pipeline::report(
        &trace,
        Session {
            backend: captured.backend,
            mode: "attach",
            command,
            root_pids: seeds
                .iter()
                .filter(|s| !by_pid || args.pid.contains(&(s.pid as i64)))
                .map(|s| s.pid)
                .collect(),
            exit_status: None,
            partial: captured.partial,
            host: &host,
            probes: &captured.probes,
            warnings: captured.warnings,
            started,
        },
    );
    report.set_container(container);
    output::emit(&report, &args.report).context("writing the report")?;
    Ok(0)
}

enum Chosen {
    Ebpf(EbpfCapture, Vec<String>),
    Ptrace(PtraceCapture, Vec<String>),
}

fn choose(args: &AttachArgs, config: &CaptureConfig, cgroup_id: Option<u64>) -> Result<Chosen> {
    let ptrace = |mut warnings: Vec<String>| -> Result<Chosen> {
        if args.cgroup.is_some() {
            warnings.push("ptrace follows the cgroup's members of the moment and their descendants; processes that join it later are not seen".into());
        }
        let cap = PtraceCapture::new(config, ptrace::Mode::Attached, args.let_cpus_sleep)?;
        Ok(Chosen::Ptrace(cap, warnings))
    };
    let ebpf = || {
        if !nix::unistd::geteuid().is_root() {
            return Err("needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE)".to_string());
        }
        EbpfCapture::load(config, cgroup_id).map_err(|e| format!("cannot load: {e:#}"))
    };
    match args.backend {
        Backend::Ptrace => ptrace(vec![]),
        Backend::Ebpf => ebpf().map(|cap| Chosen::Ebpf(cap, vec![])).map_err(|why| {
            usage(format!(
                "the eBPF backend {why}; --backend ptrace attaches without it"
            ))
        }),
        Backend::Auto => match ebpf() {
            Ok(cap) => Ok(Chosen::Ebpf(cap, vec![])),
            Err(why) => {
                let note = format!("the eBPF backend {why}; using the ptrace backend");
                eprintln!("diag: {note}");
                ptrace(vec![note])
            }
        },
    }
}

fn attach_ebpf(
    mut cap: EbpfCapture,
    trace: &mut Trace,
    t: &Tracing,
    warnings: Vec<String>,
) -> Result<Captured> {
    for (tid, _) in t.threads() {
        cap.track(tid)?;
    }
    (t.announce)();
    live::prioritise_reader();
    let status = StatusLine::new(t.quiet);
    let partial = live::pump(&mut cap, trace, t.interrupt, |tr, cap| {
        status.update(tr, cap.stats().map(|s| s.lost_events).unwrap_or(0));
        t.until.reached(tr)
    })?;
    status.finish();
    live::drain(&mut cap, trace)?;
    trace.finish(cap.stats()?);
    Ok(Captured {
        backend: "ebpf",
        partial,
        probes: std::mem::take(&mut cap.probes),
        warnings,
    })
}

fn attach_ptrace(
    mut cap: PtraceCapture,
    trace: &mut Trace,
    t: &Tracing,
    warnings: Vec<String>,
) -> Result<Captured> {
    for (tid, pid) in t.threads() {
        // A thread that ended since the seeds were read is no error.
        if let Err(e) = cap.seize_running(tid, pid) {
            if live::alive(tid) {
                cap.detach_all(&mut |_| {});
                return Err(usage(format!("{e:#}")));
            }
        }
    }
    (t.announce)();
    t.interrupt.interrupt_blocking_calls();
    // waitpid blocks while the tree is idle: a timer wakes it to look at the clock.
    let _tick = live::Ticker::start(Duration::from_millis(200))?;
    let mut partial = false;
    loop {
        let step = cap.step(&mut |ev| trace.on_event(ev, &Procfs))?;
        if step == ptrace::Step::TreeGone {
            break;
        }
        if t.interrupt.fired() {
            partial = true;
            break;
        }
        if t.until.expired() {
            break;
        }
    }
    cap.detach_all(&mut |ev| trace.on_event(ev, &Procfs));
    trace.finish(cap.stats());
    Ok(Captured {
        backend: "ptrace",
        partial,
        probes: std::mem::take(&mut cap.probes),
        warnings,
    })
}
