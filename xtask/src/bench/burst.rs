//! The burst test: several processes and threads making denied opens as fast as they can, first
//! untraced (the rate the machine reaches), then under diag at its default ring buffer size.

use super::measure;
use super::scratch::Scratch;
use super::tracers::{Setup, Tracer};
use anyhow::{ensure, Result};
use std::ffi::OsString;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub procs: u32,
    pub threads: u32,
    pub seconds: f64,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} procs × {} threads, {} s",
            self.procs, self.threads, self.seconds
        )
    }
}

pub struct Outcome {
    pub shape: Shape,
    /// Denials per second without a tracer.
    pub untraced_rate: f64,
    /// Denials the workload made under diag, and their rate.
    pub made: u64,
    pub rate: f64,
    /// What diag's report counted, and what it says it lost.
    pub received: Option<u64>,
    pub lost_events: Option<u64>,
    pub error: Option<String>,
}

pub fn run_all(
    shapes: &[Shape],
    setup: &Setup,
    burst_cmd: &[OsString],
    scratch: &Scratch,
    limit: Duration,
) -> Result<Vec<Outcome>> {
    shapes
        .iter()
        .map(|&shape| {
            eprintln!("xtask: bench: burst {shape}");
            one(shape, setup, burst_cmd, scratch, limit)
        })
        .collect()
}

fn one(
    shape: Shape,
    setup: &Setup,
    burst_cmd: &[OsString],
    scratch: &Scratch,
    limit: Duration,
) -> Result<Outcome> {
    let mut cmd = burst_cmd.to_vec();
    cmd.extend(measure::argv([
        "--procs".to_string(),
        shape.procs.to_string(),
        "--threads".into(),
        shape.threads.to_string(),
        "--seconds".into(),
        shape.seconds.to_string(),
    ]));
    let out = scratch.file("burst.json");
    let untraced = made(Tracer::Untraced, setup, &cmd, scratch, limit)?;
    let mut outcome = Outcome {
        shape,
        untraced_rate: untraced.0 as f64 / untraced.1.as_secs_f64(),
        made: 0,
        rate: 0.0,
        received: None,
        lost_events: None,
        error: None,
    };
    let _ = std::fs::remove_file(&out);
    match made(Tracer::DiagEbpf, setup, &cmd, scratch, limit)
        .and_then(|m| Ok((m, Tracer::DiagEbpf.seen(&out, &setup.secret)?)))
    {
        Ok(((n, elapsed), seen)) => {
            outcome.made = n;
            outcome.rate = n as f64 / elapsed.as_secs_f64();
            outcome.received = Some(seen.denied);
            outcome.lost_events = seen.lost_events;
        }
        Err(e) => outcome.error = Some(format!("{e:#}")),
    }
    Ok(outcome)
}

/// Runs the burst under `tracer`: the denials it made and how long it ran.
fn made(
    tracer: Tracer,
    setup: &Setup,
    cmd: &[OsString],
    scratch: &Scratch,
    limit: Duration,
) -> Result<(u64, Duration)> {
    let out = scratch.file("burst.json");
    let (sample, output) = measure::run(tracer.command(setup, cmd, &out), &scratch.dir, limit)?;
    ensure!(
        output.status.success(),
        "burst under {}: {}",
        tracer.label(),
        measure::failure_line(&output)
    );
    let w = sample
        .workload
        .ok_or_else(|| anyhow::anyhow!("the burst printed no result line"))?;
    Ok((w.denied, w.elapsed))
}
