//! Emitting a finished report: human text on stderr, JSON where asked.

use super::args::ReportArgs;
use crate::capture::ebpf;
use crate::report::{human, write, Report};
use anyhow::Result;
use std::io::Write;

/// `--version`: the version and whether the eBPF backend is built in.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (eBPF backend: see `diag run --help`)"
);

/// One line on the eBPF backend of this build.
pub fn ebpf_status() -> String {
    match ebpf::missing_reason() {
        None => "built in".into(),
        Some(r) => format!("not built in: {r}"),
    }
}

/// Checks up front that every requested output can be written.
pub fn check(args: &ReportArgs) -> Result<()> {
    if let Some(p) = &args.json {
        write::check_writable(p).map_err(|e| super::usage(format!("--json: {e}")))?;
    }
    Ok(())
}

pub fn emit(report: &Report, args: &ReportArgs) -> Result<()> {
    if !args.quiet {
        // stderr may be closed (SIGPIPE is ignored): the files below must still be written.
        let _ = std::io::stderr()
            .lock()
            .write_all(human::render(report).as_bytes());
    }
    if let Some(p) = &args.json {
        let mut text = serde_json::to_string_pretty(report)?;
        text.push('\n');
        write::write_output(p, &text)?;
    }
    Ok(())
}
