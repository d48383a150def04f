//! The drain test: a workload that makes 100 000 distinct failures, each a failure of its own
//! for diag to keep, count, examine and report; measured is the time from the workload's end to
//! diag's exit (draining the ring buffer, the kernel's repeat counts, the report).

use super::measure;
use super::scratch::Scratch;
use super::tracers::{Setup, Tracer};
use anyhow::{ensure, Context, Result};
use std::ffi::OsString;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Outcome {
    /// Distinct failures the workload made.
    pub distinct: u64,
    /// From the workload's last call to diag's exit.
    pub drain: Result<Duration, String>,
}

pub fn run(
    count: u64,
    setup: &Setup,
    distinct_cmd: &[OsString],
    scratch: &Scratch,
    limit: Duration,
) -> Outcome {
    eprintln!("xtask: bench: drain after {count} distinct failures");
    let mut cmd = distinct_cmd.to_vec();
    cmd.extend(measure::argv([
        "--count".into(),
        count.to_string().into(),
        "--dir".into(),
        scratch.locked.clone().into_os_string(),
    ]));
    Outcome {
        distinct: count,
        drain: drain(setup, &cmd, scratch, limit).map_err(|e| format!("{e:#}")),
    }
}

fn drain(setup: &Setup, cmd: &[OsString], scratch: &Scratch, limit: Duration) -> Result<Duration> {
    let out = scratch.file("drain.json");
    let (sample, output) = measure::run(
        Tracer::DiagEbpf.command(setup, cmd, &out),
        &scratch.dir,
        limit,
    )?;
    let exited = SystemTime::now().duration_since(UNIX_EPOCH)?;
    ensure!(
        output.status.success(),
        "{}",
        measure::failure_line(&output)
    );
    let end = sample
        .workload
        .and_then(|w| w.end_unix)
        .context("the workload printed no end time")?;
    Ok(exited.saturating_sub(end))
}

/// The results section.
pub fn render(o: &Outcome) -> String {
    let measured = match &o.drain {
        Ok(d) => format!("{:.2} s", d.as_secs_f64()),
        Err(e) => format!("failed: {e}"),
    };
    format!(
        "\n#### Drain (diag, default ring buffer)\n\n| distinct failures | from the command's end to diag's exit (report written) | target |\n|---|---|---|\n| {} | {measured} | < 2 s |\n",
        o.distinct
    )
}
