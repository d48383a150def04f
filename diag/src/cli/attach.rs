//! `diag attach`: trace a running sandbox from the host, by pid (with its descendants) or by
//! cgroup, until the tree exits, `--duration` elapses, or SIGINT/SIGTERM.

use super::args::AttachArgs;
use super::live::{self, Interrupt};
use super::status::StatusLine;
use super::{output, run::capture_config, usage};
use crate::capture::{ebpf::EbpfCapture, targets};
use crate::context::HostFacts;
use crate::correlate::Trace;
use crate::model::Text;
use crate::pipeline;
use crate::report::build::Session;
use anyhow::{Context, Result};
use std::time::Instant;

pub fn attach(args: AttachArgs) -> Result<i32> {
    output::check(&args.report)?;
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
        _ => return Err(usage("give either --pid PID (repeatable) or --cgroup PATH")),
    };
    if !nix::unistd::geteuid().is_root() {
        return Err(usage("diag attach needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE) to trace other processes"));
    }
    let mut cap = EbpfCapture::load(&config, cgroup_id)
        .map_err(|e| usage(format!("the eBPF backend cannot load: {e:#}")))?;
    let mut trace = Trace::new();
    for s in &seeds {
        for &tid in &s.tids {
            cap.track(tid)?;
        }
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
    live::prioritise_reader();
    if !args.report.quiet {
        let until = match &duration {
            Some(d) => format!("for {}", humantime::format_duration(*d)),
            None if by_pid => "until the tree exits".into(),
            None => "until Ctrl-C".into(),
        };
        eprintln!(
            "diag: attached to {} processes; tracing {until}",
            seeds.len()
        );
    }
    let status = StatusLine::new(args.report.quiet);
    let started = Instant::now();
    let partial = live::pump(&mut cap, &mut trace, &interrupt, |t, cap| {
        status.update(t, cap.stats().map(|s| s.lost_events).unwrap_or(0));
        let expired = duration.is_some_and(|d| started.elapsed() >= d);
        // Attached by pid: stop when the whole tree is gone. A cgroup can gain members: keep going.
        let tree_gone = by_pid && t.live_pids().iter().all(|&p| !live::alive(p));
        expired || tree_gone
    })?;
    status.finish();
    live::drain(&mut cap, &mut trace)?;
    trace.finish(cap.stats()?);

    let command = match &args.cgroup {
        Some(p) => vec![Text::from(format!("cgroup:{}", p.display()))],
        None => seeds
            .first()
            .map(|s| s.cmdline.iter().map(|a| Text::from(a.as_str())).collect())
            .unwrap_or_default(),
    };
    let report = pipeline::report(
        &trace,
        Session {
            backend: "ebpf",
            mode: "attach",
            command,
            root_pids: seeds
                .iter()
                .filter(|s| !by_pid || args.pid.contains(&(s.pid as i64)))
                .map(|s| s.pid)
                .collect(),
            exit_status: None,
            partial,
            host: &host,
            probes: &cap.probes,
            warnings: vec![],
        },
    );
    output::emit(&report, &args.report).context("writing the report")?;
    Ok(0)
}
