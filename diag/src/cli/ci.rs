//! CI mode (`--ci`, or by itself when GITHUB_ACTIONS=true): the Markdown report in the step
//! summary, an `::error` annotation per finding, and the JSON at a predictable artifact path.

use super::args::ReportArgs;
use crate::report::{github, write, Report};
use anyhow::Result;
use std::io::Write;
use std::path::PathBuf;

/// The JSON artifact's file name, in $RUNNER_TEMP or else the working directory.
pub const JSON_ARTIFACT: &str = "diag-report.json";

pub fn enabled(args: &ReportArgs) -> bool {
    args.ci || std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

pub fn json_artifact_path() -> PathBuf {
    env_path("RUNNER_TEMP")
        .unwrap_or_else(|| PathBuf::from("."))
        .join(JSON_ARTIFACT)
}

/// Writes the JSON artifact and says where, so a later step (or a person) can pick it up.
pub fn write_json(json: &str, owner: Option<write::Owner>) -> Result<()> {
    let path = json_artifact_path();
    write::write_output(&path, json, owner)?;
    eprintln!("diag: JSON report written to {}", path.display());
    Ok(())
}

/// Appends the Markdown to the step summary and prints the annotations. Workflow commands go to
/// stderr, which the runner reads too, so the traced command's stdout stays its own.
pub fn publish(report: &Report, markdown: &str) -> Result<()> {
    if let Some(summary) = env_path("GITHUB_STEP_SUMMARY") {
        write::append_output(&summary, &format!("{markdown}\n"))?;
    }
    let _ = std::io::stderr()
        .lock()
        .write_all(github::annotations(report).as_bytes());
    Ok(())
}
