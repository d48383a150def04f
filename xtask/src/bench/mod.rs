//! `cargo xtask bench`: diag against strace, strace --seccomp-bpf and bpftrace on the same
//! workload, interleaved round-robin in one run, so every ratio compares runs made side by side.

mod analyze;
mod burst;
mod drain;
mod host_tax;
mod measure;
mod report;
mod scratch;
mod tracers;

use crate::{cargo, is_root, run_cmd, setup, workspace_root};
use anyhow::{bail, ensure, Result};
use measure::{Sample, WorkloadLine};
use scratch::Scratch;
use std::ffi::OsString;
use std::time::Duration;
use tracers::{Seen, Setup, Tracer};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Smoke test (≤ 2 minutes): small workload, one round; asserts that every available tracer
    /// ran and counted every failure, never a time. Writes nothing.
    #[arg(long)]
    quick: bool,
    /// Rounds of the interleaved comparison (default 5, or 1 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Print the results without rewriting docs/benchmarks.md.
    #[arg(long)]
    no_write: bool,
    /// Run only the `diag analyze` rows on 2 GB logs, and print them.
    #[arg(long)]
    analyze_only: bool,
    /// Run only the host-tax rows (a workload diag does not trace), and print them.
    #[arg(long)]
    host_tax_only: bool,
}

/// The size of each log `diag analyze` reads in the full bench.
const ANALYZE_BYTES: u64 = 2_000_000_000;

/// The sizes of one bench.
struct Plan {
    rounds: usize,
    mix: Vec<String>,
    bursts: Vec<burst::Shape>,
    /// Distinct failures of the drain test.
    distinct: u64,
    limit: Duration,
}

impl Plan {
    fn new(args: &BenchArgs) -> Self {
        if args.quick {
            return Plan {
                rounds: args.rounds.unwrap_or(1),
                mix: ["--opens", "3000", "--denied", "3000", "--forks", "200"]
                    .into_iter()
                    .chain(["--execs", "10"])
                    .map(String::from)
                    .collect(),
                bursts: vec![burst::Shape {
                    procs: 2,
                    threads: 2,
                    seconds: 1.0,
                }],
                distinct: 10_000,
                limit: Duration::from_secs(60),
            };
        }
        Plan {
            rounds: args.rounds.unwrap_or(5),
            // The workload's defaults: about 2 s untraced on the reference machine.
            mix: Vec::new(),
            bursts: vec![
                burst::Shape {
                    procs: 2,
                    threads: 2,
                    seconds: 3.0,
                },
                burst::Shape {
                    procs: 4,
                    threads: 4,
                    seconds: 3.0,
                },
            ],
            distinct: 100_000,
            limit: Duration::from_secs(600),
        }
    }
}

/// One tracer's run of the workload.
pub struct Run {
    pub sample: Sample,
    pub seen: Seen,
}

/// Everything measured for one tracer.
pub struct Column {
    pub tracer: Tracer,
    /// Why the tracer could not run here at all.
    pub unavailable: Option<String>,
    /// Per round (None: that run failed, with the reason in `errors`).
    pub runs: Vec<Option<Run>>,
    pub startup: Vec<Sample>,
    pub errors: Vec<String>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    if !is_root() {
        bail!("the bench needs root (eBPF, strace, bpftrace, dropping to uid 65534): run it with sudo");
    }
    if args.analyze_only {
        // Needs neither the tracers nor the workload.
        run_cmd(cargo().args(["build", "--release", "-p", "diag"]))?;
        let scratch = Scratch::new()?;
        let diag = workspace_root().join("target/release/diag");
        let outcomes = analyze::run_all(&diag, &scratch.dir, ANALYZE_BYTES);
        println!("{}", analyze::render(&outcomes));
        return Ok(());
    }
    setup::run()?;
    run_cmd(cargo().args(["build", "--release", "-p", "diag"]))?;
    run_cmd(cargo().args([
        "build",
        "--release",
        "-p",
        "xtask",
        "--bin",
        "diag-bench-workload",
    ]))?;
    let release = workspace_root().join("target/release");
    let scratch = Scratch::new()?;
    let setup = Setup {
        diag: release.join("diag"),
        cgroup: scratch.cgroup.clone(),
        secret: scratch.secret.clone(),
    };
    let workload = release.join("diag-bench-workload");
    let plan = Plan::new(&args);
    let common = |mode: &str| -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![workload.clone().into()];
        v.extend(measure::argv([
            "--secret".into(),
            scratch.secret.clone().into_os_string(),
            "--cgroup".into(),
            scratch.cgroup.clone().into_os_string(),
            OsString::from(mode),
        ]));
        v
    };
    let mut mix = common("mix");
    mix.extend(measure::argv(plan.mix.iter().map(String::as_str)));
    if args.host_tax_only {
        let host_tax = host_tax::run(plan.rounds, &setup, &mix, &scratch, plan.limit)?;
        println!("{}", host_tax::render(&host_tax));
        return Ok(());
    }
    let true_cmd = measure::argv(["/bin/true"]);

    let mut columns: Vec<Column> = tracers::ALL
        .iter()
        .map(|&tracer| Column {
            tracer,
            unavailable: availability(tracer, &setup, &scratch),
            runs: Vec::new(),
            startup: Vec::new(),
            errors: Vec::new(),
        })
        .collect();
    let root = format!("{}/", workspace_root().display());
    let commands: Vec<String> = columns
        .iter()
        .map(|c| {
            let awake = if c.tracer.holds_cpus_awake() {
                "# with /dev/cpu_dma_latency held at 0: "
            } else {
                ""
            };
            let line = measure::describe(&mut c.tracer.command(&setup, &mix, &scratch.file("OUT")));
            format!("{awake}{line}")
                .replace(&scratch.dir.display().to_string(), "$SCRATCH")
                .replace(&scratch.cgroup.display().to_string(), "$CGROUP")
                .replace(&root, "")
        })
        .collect();

    for round in 0..plan.rounds {
        eprintln!("xtask: bench: round {}/{}", round + 1, plan.rounds);
        let n = columns.len();
        for i in 0..n {
            // Rotate the order so no tracer always runs right after a heavy one.
            let col = &mut columns[(i + round) % n];
            if col.unavailable.is_some() {
                continue;
            }
            let out = scratch.file("out");
            let _ = std::fs::remove_file(&out);
            match measure_run(col.tracer, &setup, &mix, &out, &scratch, &plan) {
                Ok(run) => col.runs.push(Some(run)),
                Err(e) => {
                    eprintln!("xtask: bench: {}: {e:#}", col.tracer.label());
                    col.errors.push(format!("{e:#}"));
                    col.runs.push(None);
                }
            }
            let t = &mut columns[(i + round) % n];
            let out = scratch.file("out");
            let _ = std::fs::remove_file(&out);
            let cmd = t.tracer.command(&setup, &true_cmd, &out);
            let awake = measure::cpus_awake(t.tracer);
            match awake.and_then(|_hold| measure::run(cmd, &scratch.dir, plan.limit)) {
                Ok((s, o)) if o.status.success() => t.startup.push(s),
                Ok((_, o)) => t
                    .errors
                    .push(format!("startup: {}", measure::failure_line(&o))),
                Err(e) => t.errors.push(format!("startup: {e:#}")),
            }
        }
    }

    let bursts = burst::run_all(&plan.bursts, &setup, &common("burst"), &scratch, plan.limit)?;
    let drained = drain::run(
        plan.distinct,
        &setup,
        &common("distinct"),
        &scratch,
        plan.limit,
    );
    let host_tax = host_tax::run(plan.rounds, &setup, &mix, &scratch, plan.limit)?;
    let analyzed = match args.quick {
        true => Vec::new(),
        false => analyze::run_all(&setup.diag, &scratch.dir, ANALYZE_BYTES),
    };
    let results = report::Results {
        columns: &columns,
        bursts: &bursts,
        drained: &drained,
        host_tax: &host_tax,
        analyzed: &analyzed,
        commands: &commands,
        rounds: plan.rounds,
        quick: args.quick,
    };
    let text = report::render(&results);
    println!("{text}");
    if args.quick {
        return check_counts(&columns, &bursts, &drained, &host_tax);
    }
    if !args.no_write {
        let path = workspace_root().join("docs/benchmarks.md");
        report::write_into_doc(&path, &text)?;
        eprintln!("xtask: bench: results written to {}", path.display());
    }
    Ok(())
}

/// Runs the workload under `tracer` and counts what the tracer saw.
fn measure_run(
    tracer: Tracer,
    setup: &Setup,
    cmd: &[OsString],
    out: &std::path::Path,
    scratch: &Scratch,
    plan: &Plan,
) -> Result<Run> {
    let _hold = measure::cpus_awake(tracer)?;
    let (sample, output) = measure::run(tracer.command(setup, cmd, out), &scratch.dir, plan.limit)?;
    ensure!(
        output.status.success(),
        "exited: {}",
        measure::failure_line(&output)
    );
    ensure!(
        sample.workload.is_some(),
        "the workload printed no result line"
    );
    let seen = tracer.seen(out, &setup.secret)?;
    Ok(Run { sample, seen })
}

/// A tracer that cannot run in this build or on this host is reported, not failed: diag's
/// ptrace backend exits 2 with one line until it is built in.
fn availability(tracer: Tracer, setup: &Setup, scratch: &Scratch) -> Option<String> {
    if tracer != Tracer::DiagPtrace {
        return None;
    }
    let out = scratch.file("probe.json");
    let mut cmd = tracer.command(setup, &measure::argv(["/bin/true"]), &out);
    let output = cmd.output();
    let _ = std::fs::remove_file(&out);
    match output {
        Ok(o) if o.status.code() == Some(2) => Some(format!(
            "not available in this build ({})",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
        Err(e) => Some(format!("cannot start diag: {e}")),
    }
}

/// `--quick`'s assertions: every available tracer ran every time, and counted every denial
/// the workload made. Never a time.
fn check_counts(
    columns: &[Column],
    bursts: &[burst::Outcome],
    drained: &drain::Outcome,
    host_tax: &host_tax::Outcome,
) -> Result<()> {
    let mut problems = Vec::new();
    problems.extend(host_tax.errors.iter().map(|e| format!("host tax: {e}")));
    for col in columns.iter().filter(|c| c.unavailable.is_none()) {
        let name = col.tracer.label();
        problems.extend(col.errors.iter().map(|e| format!("{name}: {e}")));
        for run in col.runs.iter().flatten() {
            let made = run.sample.workload.map_or(0, |w: WorkloadLine| w.denied);
            if col.tracer.counts_denials() && run.seen.denied != made {
                problems.push(format!(
                    "{name}: saw {} denials, the workload made {made}",
                    run.seen.denied
                ));
            }
        }
    }
    for b in bursts {
        if let Some(e) = &b.error {
            problems.push(format!("burst {}: {e}", b.shape));
        } else if b.received != Some(b.made) {
            problems.push(format!(
                "burst {}: diag received {:?} of {} denials (lost_events {:?})",
                b.shape, b.received, b.made, b.lost_events
            ));
        }
    }
    if let Err(e) = &drained.drain {
        problems.push(format!("drain: {e}"));
    }
    if problems.is_empty() {
        eprintln!("xtask: bench --quick: every available tracer ran and counted every denial");
        return Ok(());
    }
    bail!("bench --quick:\n  {}", problems.join("\n  "))
}
