//! The human report on stderr: the verdict first, then the tables. Every untrusted string is
//! escaped before it reaches the terminal.

use super::model::{Finding, Report, Verification};
use crate::model::text::escape;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, ContentArrangement, Table};

/// Rows of failures shown before "... and N more".
const MAX_ROWS: usize = 40;

pub fn verdict(f: &Finding) -> String {
    format!("{}\n  Fix: {}", escape(&f.summary), escape(&f.fix))
}

/// The verdict when there is no finding.
pub fn no_finding(r: &Report) -> String {
    if r.failures.is_empty() {
        "no watched syscall failed".into()
    } else {
        format!("{} failed syscalls, all benign noise", r.failures.len())
    }
}

pub fn render(r: &Report) -> String {
    let (head, tables) = render_parts(r);
    head + &tables
}

/// The report in two parts: the verdict, warnings and fix (always in view), and the tables and
/// notes (which a CI log may fold).
pub fn render_parts(r: &Report) -> (String, String) {
    (render_head(r), render_tables(r))
}

fn render_head(r: &Report) -> String {
    let mut out = String::new();
    match r.findings.first() {
        Some(top) => {
            out.push_str(&format!("diag: {}\n", verdict(top)));
            let first_at = top
                .failures
                .iter()
                .filter_map(|&i| r.failures.get(i)?.first_at.as_ref())
                .min();
            if let Some(at) = first_at {
                out.push_str(&format!("  First at: {} (the log's clock)\n", escape(at)));
            }
            if !top.ruled_out.is_empty() {
                out.push_str("  Ruled out:\n");
                for ro in &top.ruled_out {
                    out.push_str(&format!("    - {}\n", escape(&ro.why)));
                }
            }
            if let Some(patch) = &top.policy_patch {
                out.push_str("  Policy patch:\n");
                for line in patch.lines() {
                    out.push_str(&format!("    {}\n", escape(line)));
                }
            }
            for other in r.findings.iter().skip(1) {
                out.push_str(&format!(
                    "  Also: [{}/{}] {}\n",
                    other.cause,
                    other.layer,
                    escape(&other.summary)
                ));
            }
        }
        None => out.push_str(&format!("diag: {}.\n", no_finding(r))),
    }
    if let Some(c) = &r.container {
        out.push_str(&format!("diag: container: {}\n", escape(&c.describe())));
    }
    for w in &r.warnings {
        out.push_str(&format!("diag: warning: {}\n", escape(w)));
    }
    if r.lost_events > 0 && !r.warnings.iter().any(|w| w.contains("lost")) {
        out.push_str(&format!("diag: warning: {} events lost\n", r.lost_events));
    }
    out
}

fn render_tables(r: &Report) -> String {
    let mut out = String::new();
    if !r.failures.is_empty() {
        let mut t = table([
            "pid",
            "comm",
            "syscall",
            "errno",
            "path",
            "flags",
            "layer",
            "confidence",
            "count",
        ]);
        for &i in r.failures_by_relevance().iter().take(MAX_ROWS) {
            let f = &r.failures[i];
            let layer = match (&f.noise, &f.engine_plumbing) {
                (Some(_), _) => format!("{} (noise)", f.layer),
                (None, Some(engine)) => format!("{} ({engine}: engine)", f.layer),
                (None, None) => f.layer.to_string(),
            };
            t.add_row(vec![
                Cell::new(f.pid),
                Cell::new(f.comm.escaped()),
                Cell::new(&f.syscall),
                Cell::new(&f.errno),
                Cell::new(f.path_escaped().unwrap_or_default()),
                Cell::new(f.flags.as_deref().unwrap_or("")),
                Cell::new(layer),
                Cell::new(f.confidence.as_str()),
                Cell::new(match f.other_pids {
                    0 => f.count.to_string(),
                    n => format!("{} (+{n} processes)", f.count),
                }),
            ]);
        }
        out.push_str(&format!("\nFailed syscalls ({}):\n{t}\n", r.failures.len()));
        if r.failures.len() > MAX_ROWS {
            out.push_str(&format!(
                "... and {} more (see --json)\n",
                r.failures.len() - MAX_ROWS
            ));
        }
    }
    if !r.messages.is_empty() {
        let mut t = table(["pid", "comm", "fd", "message"]);
        for m in r.messages.iter().take(MAX_ROWS) {
            t.add_row(vec![
                Cell::new(m.pid),
                Cell::new(m.comm.escaped()),
                Cell::new(m.fd),
                Cell::new(m.text.escaped()),
            ]);
        }
        out.push_str(&format!(
            "\nMessages the program printed ({}):\n{t}\n",
            r.messages.len()
        ));
    }
    if !r.probes.missing.is_empty() {
        let names = r
            .probes
            .missing
            .iter()
            .map(|m| m.probe.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&if r.backend == "ptrace" {
            format!("\nnote: the ptrace backend sees calls and their results, not kernel evidence ({names}); attribution used procfs context and traced Landlock domains.\n")
        } else {
            format!(
                "\nnote: {} kernel-function probes unavailable here ({names}); attribution used tracepoints and context.\n",
                r.probes.missing.len(),
            )
        });
    }
    out
}

/// The before/after comparison of `--verify-fix`.
pub fn render_verification(v: &Verification) -> String {
    let status = |s: Option<i32>| s.map_or_else(|| "none".to_string(), |c| c.to_string());
    let mut t = table(["", "before (policy)", "after (patched policy)"]);
    t.add_row(vec![
        "exit status".to_string(),
        status(v.before.exit_status),
        status(v.after.exit_status),
    ]);
    t.add_row(vec![
        "failures".to_string(),
        v.before.failures.len().to_string(),
        v.after.failures.len().to_string(),
    ]);
    let mut out = format!("\nVerification of the suggested patch:\n{t}\n");
    for d in &v.disappeared {
        out.push_str(&format!("  fixed:     {}\n", escape(d)));
    }
    for r in &v.remained {
        out.push_str(&format!("  remaining: {}\n", escape(r)));
    }
    for r in &v.appeared {
        out.push_str(&format!(
            "  new:       {} (the command got further)\n",
            escape(r)
        ));
    }
    out
}

fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(160)
        .set_header(header.to_vec());
    t
}
