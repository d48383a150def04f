//! The human report on stderr: the verdict first, then the tables. Every untrusted string is
//! escaped before it reaches the terminal.

use super::model::{FailureEntry, Finding, Report, Verification};
use crate::model::text::escape;
use comfy_table::presets::{ASCII_FULL_CONDENSED, UTF8_FULL_CONDENSED};
use comfy_table::{Cell, ContentArrangement, Table};

/// Rows of failures shown before "... and N more".
const MAX_ROWS: usize = 40;

/// Where the human report goes: a terminal gets box-drawing tables as wide as it is, and colour
/// unless turned off; a file, pipe or CI log gets plain ASCII, unwrapped and uncoloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Terminal {
    /// Columns to fit the tables in; None: no wrapping (not a terminal).
    pub width: Option<u16>,
    pub unicode: bool,
    pub color: bool,
}

impl Terminal {
    /// Plain text: ASCII, no colour, no wrapping.
    pub const PLAIN: Terminal = Terminal {
        width: None,
        unicode: false,
        color: false,
    };

    /// What stderr is. `color`: Some(choice) from `--color always|never`; None for auto: on a
    /// terminal unless NO_COLOR is set (https://no-color.org).
    pub fn stderr(color: Option<bool>) -> Terminal {
        let term = console::Term::stderr();
        let tty = term.is_term();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Terminal {
            width: tty
                .then(|| term.size_checked().map(|(_, cols)| cols))
                .flatten(),
            unicode: tty,
            color: color.unwrap_or(tty && !no_color),
        }
    }

    fn paint(self, sgr: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{sgr}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn table<const N: usize>(self, header: [&str; N]) -> Table {
        let mut t = Table::new();
        t.load_preset(if self.unicode {
            UTF8_FULL_CONDENSED
        } else {
            ASCII_FULL_CONDENSED
        })
        .set_header(header.to_vec());
        match self.width {
            Some(w) => t
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(w),
            None => t.set_content_arrangement(ContentArrangement::Disabled),
        };
        t
    }
}

/// The verdict when there is no finding.
pub fn no_finding(r: &Report) -> String {
    if r.failures.is_empty() {
        "no watched syscall failed".into()
    } else {
        format!("{} failed syscalls, all benign noise", r.failures.len())
    }
}

/// The report in two parts: the verdict, warnings and fix (always in view), and the tables and
/// notes (which a CI log may fold).
pub fn render_parts(r: &Report, term: Terminal) -> (String, String) {
    (render_head(r, term), render_tables(r, term))
}

fn render_head(r: &Report, term: Terminal) -> String {
    let mut out = String::new();
    match r.findings.first() {
        Some(top) => {
            out.push_str(&verdict(r, top, term));
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
    let warning = term.paint("33", "diag: warning:");
    for w in &r.warnings {
        out.push_str(&format!("{warning} {}\n", escape(w)));
    }
    if r.lost_events > 0 && !r.warnings.iter().any(|w| w.contains("lost")) {
        out.push_str(&format!("{warning} {} events lost\n", r.lost_events));
    }
    out
}

/// The top finding: what happened, the fix, and what the fix refers to (the calls with their
/// arguments, the evidence naming the capability, the rule, the limit).
fn verdict(r: &Report, top: &Finding, term: Terminal) -> String {
    let mut out = format!(
        "{} {}\n  {} {}\n",
        term.paint("1;31", "diag:"),
        escape(&top.summary),
        term.paint("1;32", "Fix:"),
        escape(&top.fix)
    );
    let calls = top
        .failures
        .iter()
        .filter_map(|&i| r.failures.get(i))
        .take(3)
        .map(call_line);
    let lines: Vec<String> = calls
        .chain(top.evidence.iter().map(|e| escape(e)))
        .collect();
    if !lines.is_empty() {
        out.push_str("  Evidence:\n");
        for line in lines {
            out.push_str(&format!("    - {line}\n"));
        }
    }
    out
}

/// A failure as one line, escaped: the call with its arguments, its result and who made it.
fn call_line(f: &FailureEntry) -> String {
    let mut call = f.syscall.clone();
    if let Some(p) = f.path_escaped() {
        call.push_str(&format!(" {p}"));
    }
    if let Some(flags) = &f.flags {
        call.push_str(&format!(" ({})", escape(flags)));
    }
    let outcome = match &f.signal {
        Some(sig) => format!(": killed by {}", sig.name),
        None => format!(" = -1 {}", f.errno),
    };
    format!("{call}{outcome} in pid {} ({})", f.pid, f.comm.escaped())
}

fn render_tables(r: &Report, term: Terminal) -> String {
    let mut out = String::new();
    if !r.failures.is_empty() {
        let mut t = term.table([
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
                Cell::new(f.outcome()),
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
        let mut t = term.table(["pid", "comm", "fd", "message"]);
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
pub fn render_verification(v: &Verification, term: Terminal) -> String {
    let status = |s: Option<i32>| s.map_or_else(|| "none".to_string(), |c| c.to_string());
    let mut t = term.table(["", "before (policy)", "after (patched policy)"]);
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
