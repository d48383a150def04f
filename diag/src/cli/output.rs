//! Emitting a finished report: redacted once, then human text on stderr, and JSON, Markdown and
//! the CI outputs where asked.

use super::args::ReportArgs;
use super::ci;
use crate::capture::ebpf;
use crate::report::{human, markdown, redact::Redactor, write, Report};
use anyhow::Result;
use std::io::Write;
use std::sync::LazyLock;

/// `--version`: the version and whether the eBPF backend is built in.
pub fn version() -> &'static str {
    static VERSION: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{} (eBPF backend: {})",
            env!("CARGO_PKG_VERSION"),
            ebpf_status()
        )
    });
    &VERSION
}

/// One line on the eBPF backend of this build.
pub fn ebpf_status() -> String {
    match ebpf::missing_reason() {
        None => "built in".into(),
        Some(r) => format!("not built in: {r}"),
    }
}

/// Checks up front that every requested output can be written.
pub fn check(args: &ReportArgs) -> Result<()> {
    let ci_json = ci::enabled(args).then(ci::json_artifact_path);
    for (what, path) in [
        ("--json", args.json.as_ref()),
        ("--markdown", args.markdown.as_ref()),
        ("CI mode", ci_json.as_ref()),
    ] {
        if let Some(p) = path {
            write::check_writable(p).map_err(|e| super::usage(format!("{what}: {e}")))?;
        }
    }
    Ok(())
}

pub fn emit(report: &Report, args: &ReportArgs) -> Result<()> {
    let mut report = report.clone();
    Redactor::new(&args.redact).apply(&mut report);
    let report = &report;
    if !args.quiet {
        // stderr may be closed (SIGPIPE is ignored): the files below must still be written.
        let _ = std::io::stderr()
            .lock()
            .write_all(human::render(report).as_bytes());
    }
    let ci = ci::enabled(args);
    if args.json.is_some() || ci {
        let mut json = serde_json::to_string_pretty(report)?;
        json.push('\n');
        if let Some(p) = &args.json {
            write::write_output(p, &json)?;
        }
        if ci {
            ci::write_json(&json)?;
        }
    }
    if args.markdown.is_some() || ci {
        let md = markdown::render(report);
        if let Some(p) = &args.markdown {
            write::write_output(p, &md)?;
        }
        if ci {
            ci::publish(report, &md)?;
        }
    }
    Ok(())
}
