//! The host tax: what a tracer costs processes it does not trace. The workload runs outside any
//! traced tree while a tracer watches something else (an idle `sleep`), next to the untraced
//! baseline and bpftrace's equivalent program, in the same interleaved rounds.

use super::measure;
use super::report::{ratio_cell, spread};
use super::scratch::Scratch;
use super::tracers::{Setup, Tracer};
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What runs in the background while the workload runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Background {
    Nothing,
    DiagRun,
    DiagAttach,
    Bpftrace,
}

const ALL: [Background; 4] = [
    Background::Nothing,
    Background::DiagRun,
    Background::DiagAttach,
    Background::Bpftrace,
];

/// How long a background tracer gets to load and attach before the workload starts.
const SETTLE: Duration = Duration::from_secs(2);

impl Background {
    fn label(self) -> &'static str {
        match self {
            Background::Nothing => "nothing",
            Background::DiagRun => "`diag run -- sleep` (eBPF)",
            Background::DiagAttach => "`diag attach --pid <an idle sleep>` (eBPF)",
            Background::Bpftrace => {
                "`bpftrace` with one `raw_syscalls:sys_exit` program filtered on that pid"
            }
        }
    }

    /// Starts the tracer (None for the baseline), watching `idle` where it takes a pid.
    fn start(self, setup: &Setup, idle: u32, scratch: &Scratch) -> Result<Option<Running>> {
        let mut cmd = match self {
            Background::Nothing => return Ok(None),
            Background::DiagRun => {
                let mut c = Command::new(&setup.diag);
                c.args(["run", "--quiet", "--json"])
                    .arg(scratch.file("host-tax-run.json"))
                    .args(["--", "sleep", "3600"]);
                c
            }
            Background::DiagAttach => {
                let mut c = Command::new(&setup.diag);
                c.args(["attach", "--quiet", "--pid", &idle.to_string(), "--json"])
                    .arg(scratch.file("host-tax-attach.json"));
                c
            }
            Background::Bpftrace => {
                let mut c = Command::new("bpftrace");
                c.arg("-e").arg(format!(
                    "tracepoint:raw_syscalls:sys_exit /pid == {idle}/ {{ @calls = count(); }}"
                ));
                c
            }
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.label()))?;
        std::thread::sleep(SETTLE);
        if let Some(status) = child.try_wait()? {
            bail!("{} exited before the workload ran: {status}", self.label());
        }
        Ok(Some(Running(child)))
    }
}

/// A background tracer, interrupted (and reaped) on drop as a user's Ctrl-C would.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: a plain syscall on our own child's pid (not reaped yet, so not reused).
        unsafe { libc::kill(self.0.id() as i32, libc::SIGINT) };
        for _ in 0..100 {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Outcome {
    /// Per background, the workload's own elapsed time in each round (None: that run failed).
    pub rows: Vec<(Background, Vec<Option<Duration>>)>,
    pub errors: Vec<String>,
}

pub fn run(
    rounds: usize,
    setup: &Setup,
    workload: &[OsString],
    scratch: &Scratch,
    limit: Duration,
) -> Result<Outcome> {
    let mut idle = Command::new("sleep")
        .arg("3600")
        .spawn()
        .context("starting the idle sleep")?;
    let mut out = Outcome {
        rows: ALL.iter().map(|&b| (b, Vec::new())).collect(),
        errors: Vec::new(),
    };
    for round in 0..rounds {
        eprintln!("xtask: bench: host tax, round {}/{rounds}", round + 1);
        for i in 0..ALL.len() {
            // Rotated, so no background always runs right after a heavy one.
            let (background, times) = &mut out.rows[(i + round) % ALL.len()];
            match once(*background, setup, idle.id(), workload, scratch, limit) {
                Ok(t) => times.push(Some(t)),
                Err(e) => {
                    times.push(None);
                    out.errors.push(format!("{}: {e:#}", background.label()))
                }
            }
        }
    }
    let _ = idle.kill();
    let _ = idle.wait();
    Ok(out)
}

fn once(
    background: Background,
    setup: &Setup,
    idle: u32,
    workload: &[OsString],
    scratch: &Scratch,
    limit: Duration,
) -> Result<Duration> {
    let mut tracer = background.start(setup, idle, scratch)?;
    let cmd = Tracer::Untraced.command(setup, workload, &scratch.file("host-tax-out"));
    let (sample, output) = measure::run(cmd, &scratch.dir, limit)?;
    if !output.status.success() {
        bail!("the workload failed: {}", measure::failure_line(&output));
    }
    // A tracer that died during the workload taxed nothing: its row would lie.
    if let Some(Running(child)) = tracer.as_mut() {
        if let Some(status) = child.try_wait()? {
            bail!(
                "{} exited during the workload: {status}",
                background.label()
            );
        }
    }
    Ok(sample
        .workload
        .context("the workload printed no result line")?
        .elapsed)
}

/// The results section: per round, each background's workload time over the baseline's of the
/// same round (median, min–max), as the bench's other ratios are.
pub fn render(o: &Outcome) -> String {
    let base = o
        .rows
        .iter()
        .find(|(b, _)| *b == Background::Nothing)
        .map(|(_, t)| t.as_slice())
        .unwrap_or_default();
    let mut s = String::from(
        "\n#### Host tax (a workload diag does not trace)\n\n\
         The bench's mix workload runs untraced while each of these runs in the background; \
         its own elapsed time (median of the rounds), and per round its ratio to the baseline of \
         the same round.\n\n\
         | while this runs in the background | workload (median) | slowdown | target |\n|---|---|---|---|\n",
    );
    for (b, times) in &o.rows {
        let secs: Vec<f64> = times.iter().flatten().map(Duration::as_secs_f64).collect();
        let shown = spread(secs).map_or("failed".into(), |(m, _, _)| format!("{m:.3} s"));
        let ratios: Vec<f64> = times
            .iter()
            .zip(base)
            .filter_map(|(t, b)| Some(t.as_ref()?.as_secs_f64() / b.as_ref()?.as_secs_f64()))
            .collect();
        let target = match b {
            Background::DiagRun | Background::DiagAttach => "≤ 1.05×, never above bpftrace",
            _ => "",
        };
        s.push_str(&format!(
            "| {} | {shown} | {} | {target} |\n",
            b.label(),
            ratio_cell(spread(ratios))
        ));
    }
    for e in &o.errors {
        s.push_str(&format!("\n- failed: {e}\n"));
    }
    s
}
