//! `diag analyze`: the same diagnosis from a strace log or kernel audit records, after the fact.

use super::args::AnalyzeArgs;
use super::{output, run::capture_config, usage};
use crate::capture::{audit_log, strace_log, ProbeReport};
use crate::context::HostFacts;
use crate::correlate::Trace;
use crate::pipeline;
use crate::report::build::Session;
use crate::report::model::{Backend, Mode};
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
            Backend::AuditLog,
            audit_log::read_files(&args.files, &config, &mut trace),
        )
    } else {
        (
            Backend::StraceLog,
            strace_log::read_files(&args.files, &config, &mut trace),
        )
    };
    let log = log.map_err(usage)?;
    trace.finish(log.stats);
    // The log's host is not this one: no host facts are assumed.
    let host = HostFacts::default();
    let report = pipeline::report(
        &trace,
        Session {
            backend,
            mode: Mode::Analyze,
            command: log.command,
            root_pids: log.root_pids,
            exit_status: log.exit_status,
            partial: false,
            host: &host,
            probes: &ProbeReport::default(),
            warnings: log.notes,
            catalog: output::catalog(args.report.catalog.as_deref())?,
            started,
        },
    );
    output::emit(&report, &args.report, None).context("writing the report")?;
    Ok(output::status_for(&report, args.fail_on))
}
