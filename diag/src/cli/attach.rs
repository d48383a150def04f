//! `diag attach`: trace a running sandbox from the host, by pid (with its descendants) or by
//! cgroup, until the processes named exit, `--duration` elapses, or a signal. With eBPF where it
//! loads, else (or with `--backend ptrace`) by attaching ptrace to every thread.

use super::args::{AttachArgs, Backend, Format, OnSignal};
use super::live::{self, Interrupt};
use super::status::StatusLine;
use super::{output, run::capture_config, usage};
use crate::capture::ptrace::{self, PtraceCapture};
use crate::capture::targets::{self, Seed};
use crate::capture::{container, pod};
use crate::capture::{ebpf::EbpfCapture, CaptureConfig, ProbeReport};
use crate::context::HostFacts;
use crate::correlate::Trace;
use crate::model::Text;
use crate::pipeline;
use crate::report::{self, build::Session};
use anyhow::{Context, Result};
use std::cell::RefCell;
use std::time::{Duration, Instant};

/// When to stop tracing, besides a signal.
struct Until {
    /// `--duration`: a hard deadline.
    duration: Option<Duration>,
    /// Attached by pid: the processes named, whose exit ends tracing (after daemons they leave
    /// behind have had their settle, or the whole tree is gone with `--until-tree-exits`). A
    /// cgroup can gain members: none, keep going.
    roots: Vec<u32>,
    after_roots: live::AfterRoots,
    /// When tracing began: `--duration` is the time traced, not counting the backend's load.
    started: std::cell::Cell<Instant>,
}

impl Until {
    fn expired(&self) -> bool {
        self.duration
            .is_some_and(|d| self.started.get().elapsed() >= d)
    }

    fn roots_gone(&self) -> bool {
        !self.roots.is_empty() && self.roots.iter().all(|&p| !live::alive(p))
    }

    fn reached(&self, trace: &Trace) -> bool {
        self.expired() || (self.roots_gone() && self.after_roots.over(trace))
    }
}

/// What either backend's capture works from.
struct Tracing<'a> {
    seeds: &'a [Seed],
    interrupt: &'a Interrupt,
    on_signal: OnSignal,
    until: &'a Until,
    /// Says "attached" (a caller may start the workload on that line).
    announce: &'a dyn Fn(),
    quiet: bool,
    /// `--format jsonl` / `--follow`: lines written while tracing.
    following: RefCell<Option<output::Following<'a>>>,
}

impl Tracing<'_> {
    fn follow(&self, trace: &Trace, probes: &ProbeReport, backend: report::model::Backend) {
        if let Some(f) = self.following.borrow_mut().as_mut() {
            f.tick(trace, probes, backend);
        }
    }
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
    backend: report::model::Backend,
    probes: ProbeReport,
    warnings: Vec<String>,
}

pub fn attach(mut args: AttachArgs) -> Result<i32> {
    let started = std::time::SystemTime::now();
    if args.follow {
        args.report.format = Format::Jsonl;
    }
    output::check(&args.report, &[])?;
    let catalog = output::catalog(args.report.catalog.as_deref())?;
    // A container is traced as its cgroup; a pod as its cgroup and every container's below it.
    let container = match (&args.container, &args.pod) {
        (Some(name), _) => Some(container::resolve(name)),
        (None, Some(pod)) => Some(pod::resolve(pod)),
        (None, None) => None,
    }
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
        (Some(path), true) if args.pod.is_some() => (
            targets::cgroup_tree(path).map_err(|e| usage(format!("{e:#}")))?,
            None,
        ),
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
                "give either --pid PID (repeatable), --cgroup PATH, --container NAME|ID or --pod NAMESPACE/NAME",
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
    let roots: Vec<u32> = match by_pid {
        true => args.pid.iter().map(|&p| p as u32).collect(),
        false => vec![],
    };
    let until = Until {
        duration,
        roots,
        after_roots: live::AfterRoots::new(args.until_tree_exits),
        started: std::cell::Cell::new(Instant::now()),
    };
    // Said once the backend is attached: a caller may start the workload on this line.
    let announce = || {
        until.started.set(Instant::now());
        if args.report.quiet {
            return;
        }
        let until = match &duration {
            Some(d) => format!("for {}", humantime::format_duration(*d)),
            None if args.until_tree_exits => "until the tree exits".into(),
            None if by_pid => "until the process exits".into(),
            None => "until Ctrl-C".into(),
        };
        eprintln!(
            "diag: attached to {} processes; tracing {until}",
            seeds.len()
        );
    };
    let command = match &args.cgroup {
        Some(p) => vec![Text::from(format!("cgroup:{}", p.display()))],
        None => seeds
            .first()
            .map(|s| s.cmdline.iter().map(|a| Text::from(a.as_str())).collect())
            .unwrap_or_default(),
    };
    let root_pids: Vec<u32> = seeds
        .iter()
        .filter(|s| !by_pid || args.pid.contains(&(s.pid as i64)))
        .map(|s| s.pid)
        .collect();
    let report_of = |trace: &Trace, probes: &ProbeReport, backend, warnings| {
        pipeline::report(
            trace,
            Session {
                backend,
                mode: report::model::Mode::Attach,
                command: command.clone(),
                root_pids: root_pids.clone(),
                exit_status: None,
                partial: interrupt.fired(),
                host: &host,
                probes,
                warnings,
                catalog,
                started,
            },
        )
    };
    let snapshot =
        |trace: &Trace, probes: &ProbeReport, backend| report_of(trace, probes, backend, vec![]);
    let tracing = Tracing {
        seeds: &seeds,
        interrupt: &interrupt,
        on_signal: args.on_signal,
        until: &until,
        announce: &announce,
        quiet: args.report.quiet,
        following: RefCell::new(output::Following::new(&args.report, &snapshot)),
    };
    let mut captured = match choose(&args, &config, cgroup_id)? {
        Chosen::Ebpf(cap, warnings) => attach_ebpf(cap, &mut trace, &tracing, warnings)?,
        Chosen::Ptrace(cap, warnings) => attach_ptrace(cap, &mut trace, &tracing, warnings)?,
    };
    if until.roots_gone() {
        // Daemons the attached processes left behind: named, as `run` does.
        captured.warnings.extend(live::left_running(
            &trace,
            "; their later failures are not in this report (--until-tree-exits follows them)",
        ));
    }

    let mut report = report_of(
        &trace,
        &captured.probes,
        captured.backend,
        captured.warnings,
    );
    report.set_container(container);
    let stream = tracing
        .following
        .into_inner()
        .map(output::Following::into_stream);
    output::emit(&report, &args.report, stream).context("writing the report")?;
    Ok(interrupt
        .exit_code()
        .unwrap_or_else(|| output::status_for(&report, args.fail_on)))
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
    mut warnings: Vec<String>,
) -> Result<Captured> {
    for (tid, _) in t.threads() {
        cap.track(tid)?;
    }
    (t.announce)();
    live::prioritise_reader();
    let status = StatusLine::new(t.quiet);
    live::pump_until(&mut cap, trace, t.interrupt, t.on_signal, |tr, cap| {
        status.update(tr, cap.stats().map(|s| s.lost_events).unwrap_or(0));
        t.follow(tr, &cap.probes, report::model::Backend::Ebpf);
        t.until.reached(tr)
    })?;
    status.finish();
    let limit = match t.until.expired() || t.interrupt.fired() {
        true => live::DRAIN_AT_DEADLINE,
        false => live::DRAIN_UNHURRIED,
    };
    warnings.extend(live::drain(&mut cap, trace, limit)?);
    trace.finish(cap.stats()?);
    Ok(Captured {
        backend: report::model::Backend::Ebpf,
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
    live::step_until(&mut cap, trace, t.interrupt, t.on_signal, |tr, cap| {
        t.follow(tr, &cap.probes, report::model::Backend::Ptrace);
        t.until.reached(tr)
    })?;
    trace.finish(cap.stats());
    Ok(Captured {
        backend: report::model::Backend::Ptrace,
        probes: std::mem::take(&mut cap.probes),
        warnings,
    })
}
