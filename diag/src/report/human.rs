//! The human report on stderr: the verdict first, then the tables. Every untrusted string is
//! escaped before it reaches the terminal.

use super::model::{Finding, Report};
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
    let mut out = String::new();
    match r.findings.first() {
        Some(top) => {
            out.push_str(&format!("diag: {}\n", verdict(top)));
            if !top.ruled_out.is_empty() {
                out.push_str("  Ruled out:\n");
                for ro in &top.ruled_out {
                    out.push_str(&format!("    - {}\n", escape(&ro.why)));
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
    for w in &r.warnings {
        out.push_str(&format!("diag: warning: {}\n", escape(w)));
    }
    if r.lost_events > 0 && !r.warnings.iter().any(|w| w.contains("lost")) {
        out.push_str(&format!("diag: warning: {} events lost\n", r.lost_events));
    }
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
            let layer = match &f.noise {
                Some(_) => format!("{} (noise)", f.layer),
                None => f.layer.to_string(),
            };
            t.add_row(vec![
                Cell::new(f.pid),
                Cell::new(f.comm.escaped()),
                Cell::new(&f.syscall),
                Cell::new(&f.errno),
                Cell::new(f.path.as_ref().map(|p| p.escaped()).unwrap_or_default()),
                Cell::new(f.flags.as_deref().unwrap_or("")),
                Cell::new(layer),
                Cell::new(f.confidence.as_str()),
                Cell::new(f.count),
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
        out.push_str(&format!(
            "\nnote: {} kernel-function probes unavailable here ({}); attribution used tracepoints and context.\n",
            r.probes.missing.len(),
            r.probes.missing.iter().map(|m| m.probe.as_str()).collect::<Vec<_>>().join(", ")
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
