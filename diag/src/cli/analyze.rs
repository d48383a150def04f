//! `diag analyze`: the same diagnosis from a strace log or kernel audit records, after the fact.

use super::args::AnalyzeArgs;
use super::{output, run::capture_config, usage};
use crate::capture::{audit_log, strace_log, ProbeReport};
use crate::context::HostFacts;
use crate::correlate::{LogScope, Trace};
use crate::pipeline;
use crate::report::build::Session;
use anyhow::{Context, Result};

pub fn analyze(args: AnalyzeArgs) -> Result<i32> {
    let started = std::time::SystemTime::now();
    let inputs: Vec<&std::path::Path> = args.files.iter().map(|p| p.as_path()).collect();
    output::check(&args.report, &inputs)?;
    let config = capture_config(&args.filter)?;
    // The log streams into the correlator as it is parsed: nothing of it is kept beyond the
    // correlator's own bounded tables.
    let mut trace = Trace::new();
    let (backend, log) = if args.audit {
        (
            "audit-log",
            audit_log::read_files(&args.files, &config, &mut trace),
        )
    } else {
        (
            "strace-log",
            strace_log::read_files(&args.files, &config, &mut trace),
        )
    };
    let log = log.map_err(usage)?;
    trace.finish(log.stats);
    trace.from_log = Some(LogScope {
        forks_recorded: log.forks_recorded,
    });
    // The log's host is not this one: no host facts are assumed.
    let host = HostFacts::default();
    let report = pipeline::report(
        &trace,
        Session {
            backend,
            mode: "analyze",
            command: log.command,
            root_pids: log.root_pids,
            exit_status: log.exit_status,
            partial: false,
            host: &host,
            probes: &ProbeReport::default(),
            warnings: log.notes,
            started,
        },
    );
    output::emit(&report, &args.report).context("writing the report")?;
    Ok(output::status_for(&report, args.fail_on))
}
