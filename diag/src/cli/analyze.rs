//! `diag analyze`: the same diagnosis from a strace log or kernel audit records, after the fact.

use super::args::AnalyzeArgs;
use super::{output, run::capture_config, usage};
use crate::capture::offline::{Filtered, LogFilter};
use crate::capture::{audit_log, strace_log, ProbeReport};
use crate::context::HostFacts;
use crate::correlate::{LogScope, Trace};
use crate::pipeline;
use crate::report::build::Session;
use crate::report::model::{Backend, Mode};
use anyhow::{Context, Result};

pub fn analyze(args: AnalyzeArgs) -> Result<i32> {
    let started = std::time::SystemTime::now();
    let inputs: Vec<&std::path::Path> = args.files.iter().map(|p| p.as_path()).collect();
    output::check(&args.report, &inputs)?;
    let config = capture_config(&args.filter)?;
    let filter = LogFilter {
        pids: args.pid.clone(),
        comms: args.comm.clone(),
        since_ns: args
            .since
            .as_deref()
            .map(|s| since(s, started).map_err(|e| usage(format!("--since {s}: {e}"))))
            .transpose()?,
    };
    // The log streams into the correlator as it is parsed: nothing of it is kept beyond the
    // correlator's own bounded tables.
    let mut trace = Trace::new();
    let mut sink = Filtered::new(&mut trace, &filter);
    let (backend, log) = if args.audit {
        (
            Backend::AuditLog,
            audit_log::read_files(&args.files, &config, &mut sink),
        )
    } else {
        (
            Backend::StraceLog,
            strace_log::read_files(&args.files, &config, &mut sink),
        )
    };
    let mut log = log.map_err(usage)?;
    log.notes.extend(sink.notes());
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

/// `--since`: an RFC 3339 time (UTC when it has no offset), `@SECONDS` since the epoch, or a
/// duration before `now`; in nanoseconds since the epoch.
fn since(text: &str, now: std::time::SystemTime) -> Result<u64, String> {
    use std::time::{Duration, UNIX_EPOCH};
    let at = if let Some(secs) = text.strip_prefix('@') {
        let secs: u64 = secs.parse().map_err(|_| "not a number of seconds")?;
        UNIX_EPOCH + Duration::from_secs(secs)
    } else if let Ok(ago) = humantime::parse_duration(text) {
        now.checked_sub(ago).ok_or("further back than the epoch")?
    } else {
        // A bare date is its midnight.
        let whole = match text.len() {
            10 => format!("{text} 00:00:00"),
            _ => text.to_string(),
        };
        humantime::parse_rfc3339_weak(&whole).map_err(|_| {
            "not a time (2025-11-28T20:56:39Z, 2025-11-28 20:56:39, @1764363399) nor a duration (10m)"
        })?
    };
    let ns = at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "before the epoch")?;
    Ok(u64::try_from(ns.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::since;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn since_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1_764_363_999);
        let s = 1_764_363_399 * 1_000_000_000;
        assert_eq!(since("2025-11-28T20:56:39Z", now), Ok(s));
        assert_eq!(since("2025-11-28 20:56:39", now), Ok(s));
        assert_eq!(since("@1764363399", now), Ok(s));
        assert_eq!(since("10m", now), Ok(s));
        assert_eq!(since("2025-11-28", now), Ok(1_764_288_000 * 1_000_000_000));
        assert!(since("yesterday-ish", now).is_err());
    }
}
