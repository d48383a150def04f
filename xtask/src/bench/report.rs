//! The bench's results as Markdown: the comparison table, the targets, the burst test, the
//! machine and the exact commands. `docs/benchmarks.md` keeps its prose; only the part between
//! the markers is rewritten.

use super::analyze;
use super::burst::Outcome;
use super::tracers::Tracer;
use super::{Column, Run};
use anyhow::{Context, Result};
use std::fmt::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BEGIN: &str = "<!-- bench:begin (written by `cargo xtask bench`) -->";
const END: &str = "<!-- bench:end -->";

pub struct Results<'a> {
    pub columns: &'a [Column],
    pub bursts: &'a [Outcome],
    pub drained: &'a super::drain::Outcome,
    pub host_tax: &'a super::host_tax::Outcome,
    /// `diag analyze` on big logs (none with --quick).
    pub analyzed: &'a [analyze::Outcome],
    pub commands: &'a [String],
    pub rounds: usize,
    pub quick: bool,
}

/// median, min, max
pub(super) fn spread(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    };
    Some((median, v[0], v[v.len() - 1]))
}

pub(super) fn ratio_cell(s: Option<(f64, f64, f64)>) -> String {
    s.map_or("–".into(), |(m, lo, hi)| {
        format!("**{m:.2}×** ({lo:.2}–{hi:.2})")
    })
}

/// Per round, this tracer's value over the untraced run of the same round.
fn paired_ratios(col: &Column, base: &Column, value: impl Fn(&Run) -> Duration) -> Vec<f64> {
    col.runs
        .iter()
        .zip(&base.runs)
        .filter_map(|(r, b)| Some((r.as_ref()?, b.as_ref()?)))
        .map(|(r, b)| value(r).as_secs_f64() / value(b).as_secs_f64())
        .collect()
}

fn workload_clock(r: &Run) -> Duration {
    r.sample.workload.map_or(Duration::ZERO, |w| w.elapsed)
}

fn startup_ms(col: &Column) -> Option<(f64, f64, f64)> {
    spread(
        col.startup
            .iter()
            .map(|s| s.wall.as_secs_f64() * 1e3)
            .collect(),
    )
}

fn counts_cell(col: &Column) -> String {
    if matches!(col.tracer, Tracer::Untraced | Tracer::UntracedAwake) {
        let made: Vec<u64> = col
            .runs
            .iter()
            .flatten()
            .filter_map(|r| r.sample.workload.map(|w| w.denied))
            .collect();
        return made.first().map_or("–".into(), |n| format!("made {n}"));
    }
    if !col.tracer.counts_denials() {
        return "none watched (by design)".into();
    }
    let runs: Vec<&Run> = col.runs.iter().flatten().collect();
    let short: Vec<String> = runs
        .iter()
        .filter_map(|r| {
            let made = r.sample.workload?.denied;
            (r.seen.denied != made).then(|| format!("{}/{made}", r.seen.denied))
        })
        .collect();
    let failed = col.runs.iter().filter(|r| r.is_none()).count();
    let mut cell = if short.is_empty() && !runs.is_empty() {
        format!("all {} ✓", runs[0].seen.denied)
    } else if runs.is_empty() {
        "–".into()
    } else {
        format!("**missed events**: {}", short.join(", "))
    };
    if failed > 0 {
        cell.push_str(&format!("; {failed} run(s) failed"));
    }
    cell
}

pub fn render(r: &Results) -> String {
    let mut out = String::new();
    let base = r
        .columns
        .iter()
        .find(|c| c.tracer == Tracer::Untraced)
        .expect("the untraced column");
    let _ = writeln!(
        out,
        "### Results{}\n",
        if r.quick {
            " (--quick smoke run: sizes too small for ratios)"
        } else {
            ""
        }
    );
    let args: Vec<String> = std::env::args().skip(1).collect();
    let _ = writeln!(
        out,
        "{}\n- produced by: `cargo xtask {}`\n",
        machine(),
        args.join(" ")
    );
    let _ = writeln!(
        out,
        "{} interleaved round(s): in each round every tracer runs the workload once, then `CMD = true` once, in an order rotated per round. Ratios are per round against the untraced run of the same round; the table gives the median and (min–max).\n",
        r.rounds
    );
    out.push_str("| tracer | workload slowdown (workload's own clock) | end-to-end wall (startup + run + report) | startup, `CMD = true` | peak RSS, median (max) | denials seen |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    let base_startup = startup_ms(base).map(|s| s.0);
    for col in r.columns {
        if let Some(why) = &col.unavailable {
            let _ = writeln!(out, "| {} | {why} | | | | |", col.tracer.label());
            continue;
        }
        let clock = spread(paired_ratios(col, base, workload_clock));
        let wall = spread(paired_ratios(col, base, |r| r.sample.wall));
        let startup = startup_ms(col).map_or("–".into(), |(m, _, _)| match base_startup {
            Some(b) if col.tracer != Tracer::Untraced => format!("{m:.0} ms ({:.0}×)", m / b),
            _ => format!("{m:.1} ms"),
        });
        let rss = spread(
            col.runs
                .iter()
                .flatten()
                .map(|r| r.sample.peak_rss_kib as f64 / 1024.0)
                .collect(),
        )
        .map_or("–".into(), |(m, _, hi)| {
            format!("{m:.1} MiB (max {hi:.1})")
        });
        let (clock, wall) = if col.tracer == Tracer::Untraced {
            let ms = spread(
                col.runs
                    .iter()
                    .flatten()
                    .map(|r| workload_clock(r).as_secs_f64() * 1e3)
                    .collect(),
            );
            let wall_ms = spread(
                col.runs
                    .iter()
                    .flatten()
                    .map(|r| r.sample.wall.as_secs_f64() * 1e3)
                    .collect(),
            );
            (
                ms.map_or("–".into(), |(m, _, _)| format!("1× ({m:.0} ms)")),
                wall_ms.map_or("–".into(), |(m, _, _)| format!("1× ({m:.0} ms)")),
            )
        } else {
            (ratio_cell(clock), ratio_cell(wall))
        };
        let _ = writeln!(
            out,
            "| {} | {clock} | {wall} | {startup} | {rss} | {} |",
            col.tracer.label(),
            counts_cell(col)
        );
    }
    out.push_str("\nPeak RSS is `/usr/bin/time -f %M`: the largest `ru_maxrss` among the processes it waited for, i.e. the biggest single process of the tree (the tracer, unless the workload is bigger: the untraced row is the workload's own).\n");
    let errors: Vec<String> = r
        .columns
        .iter()
        .flat_map(|c| {
            c.errors
                .iter()
                .map(move |e| format!("- {}: {e}", c.tracer.label()))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "\nRuns that failed:\n{}", errors.join("\n"));
    }
    out.push_str(&targets(r, base));
    out.push_str(&bursts(r.bursts));
    out.push_str(&super::drain::render(r.drained));
    out.push_str(&super::host_tax::render(r.host_tax));
    if !r.analyzed.is_empty() {
        out.push_str(&analyze::render(r.analyzed));
    }
    out.push_str("\n#### Commands\n\n`$SCRATCH` is a fresh directory holding `secret` (root, 0600); `$CGROUP` a fresh cgroup v2 directory that the workload joins first. Each command runs under `/usr/bin/time -f %M -o $SCRATCH/time.out`.\n\n```\n");
    for c in r.commands {
        let _ = writeln!(out, "{c}");
    }
    out.push_str("```\n");
    out
}

fn column<'a>(r: &Results<'a>, t: Tracer) -> Option<&'a Column> {
    r.columns
        .iter()
        .find(|c| c.tracer == t && c.unavailable.is_none())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

fn targets(r: &Results, base: &Column) -> String {
    let mut out = String::from("\n#### Targets\n\n| target | measured | |\n|---|---|---|\n");
    if let Some(ebpf) = column(r, Tracer::DiagEbpf) {
        if let Some((m, _, _)) = spread(paired_ratios(ebpf, base, workload_clock)) {
            let _ = writeln!(
                out,
                "| eBPF backend ≤ 1.03× untraced wall on the workload | {m:.3}× (median) | {} |",
                verdict(m <= 1.03)
            );
        }
        if let Some(floor) = column(r, Tracer::DiagAttached) {
            if let Some((m, _, _)) = spread(paired_ratios(floor, base, workload_clock)) {
                let _ = writeln!(
                    out,
                    "| (its floor: the same programs attached, watching nothing) | {m:.3}× (median) | {} |",
                    if m > 1.03 { "the target is below the floor" } else { "" }
                );
            }
        }
        if let Some((m, _, _)) = startup_ms(ebpf) {
            let _ = writeln!(
                out,
                "| `diag run -- true` ≤ 150 ms | {m:.0} ms (median) | {} |",
                verdict(m <= 150.0)
            );
        }
        if let Some(k) = ebpf
            .runs
            .iter()
            .flatten()
            .map(|r| r.sample.peak_rss_kib)
            .max()
        {
            let mib = k as f64 / 1024.0;
            let _ = writeln!(
                out,
                "| peak RSS ≤ 30 MiB | {mib:.1} MiB (max) | {} |",
                verdict(mib <= 30.0)
            );
        }
    }
    let lost: Vec<u64> = r.bursts.iter().filter_map(|b| b.lost_events).collect();
    if !lost.is_empty() {
        let total: u64 = lost.iter().sum();
        let _ = writeln!(
            out,
            "| 0 lost events in the burst test (default ring buffer) | {total} lost | {} |",
            verdict(total == 0)
        );
    }
    match column(r, Tracer::DiagPtrace) {
        Some(pt) => {
            if let Some((m, _, _)) = spread(paired_ratios(pt, base, workload_clock)) {
                let _ = writeln!(
                    out,
                    "| ptrace backend ≤ 3× untraced | {m:.2}× (median) | {} |",
                    verdict(m <= 3.0)
                );
            }
            let awake = column(r, Tracer::UntracedAwake)
                .and_then(|a| spread(paired_ratios(pt, a, workload_clock)));
            if let Some((m, _, _)) = awake {
                let _ = writeln!(
                    out,
                    "| (ptrace against the workload alone with CPUs held awake, as during its run) | {m:.2}× (median) | |"
                );
            }
        }
        None => out.push_str("| ptrace backend ≤ 3× untraced | not available in this build | |\n"),
    }
    out
}

fn bursts(bursts: &[Outcome]) -> String {
    let mut out = String::from("\n#### Burst test (diag, default ring buffer)\n\n| shape | untraced rate | rate under diag | denials made | received by diag | `lost_events` |\n|---|---|---|---|---|---|\n");
    for b in bursts {
        if let Some(e) = &b.error {
            let _ = writeln!(
                out,
                "| {} | {:.0}/s | failed: {e} | | | |",
                b.shape, b.untraced_rate
            );
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {:.0}/s | {:.0}/s | {} | {} | {} |",
            b.shape,
            b.untraced_rate,
            b.rate,
            b.made,
            b.received.map_or("–".into(), |n| n.to_string()),
            b.lost_events.map_or("–".into(), |n| n.to_string()),
        );
    }
    out
}

fn first_line(cmd: &mut Command) -> String {
    cmd.output()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|_| "?".into())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = read("/proc/meminfo")
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .nth(1)
        .and_then(|k| k.parse::<u64>().ok())
        .map_or("?".into(), |k| format!("{:.1} GiB", k as f64 / 1048576.0));
    format!(
        "- date: {}\n- machine: {nproc} CPUs ({cpu}), {mem} RAM, kernel {}; load average at the end: {}\n- tools: {}, {}, {}",
        first_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        read("/proc/sys/kernel/osrelease"),
        read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        first_line(Command::new(crate::workspace_root().join("target/release/diag")).arg("--version")),
        first_line(Command::new("strace").arg("-V")),
        first_line(Command::new("bpftrace").arg("--version")),
    )
}

/// Replaces the generated part of `path` (between the markers), keeping the prose around it.
pub fn write_into_doc(path: &Path, generated: &str) -> Result<()> {
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n{generated}{END}");
    let new = match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &doc[..b], &doc[e + END.len()..]),
        _ => format!("{doc}\n{block}\n"),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}
