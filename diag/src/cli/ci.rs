//! CI mode (`--ci`, or by itself under GitHub Actions or GitLab CI; `--no-ci` turns it off): the
//! JSON at a predictable artifact path, the tables folded in the job log, and per system:
//! GitHub's step summary and one `::error` annotation per finding; GitLab's Code Quality report.

use super::args::ReportArgs;
use crate::model::Confidence;
use crate::report::{github, write, Report};
use anyhow::Result;
use std::io::Write;
use std::path::PathBuf;

/// The JSON artifact's file name, in $RUNNER_TEMP or else the working directory.
pub const JSON_ARTIFACT: &str = "diag-report.json";
/// GitLab reads Code Quality findings from this file (`artifacts:reports:codequality`).
pub const GITLAB_CODE_QUALITY: &str = "gl-code-quality-report.json";

/// The CI system diag reports to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    GitHub,
    GitLab,
    /// `--ci` elsewhere: GitHub's annotation format, which other systems show as plain lines.
    Other,
}

pub fn system(args: &ReportArgs) -> Option<System> {
    let set = |var| std::env::var(var).is_ok_and(|v| v == "true");
    if args.no_ci {
        None
    } else if set("GITHUB_ACTIONS") {
        Some(System::GitHub)
    } else if set("GITLAB_CI") {
        Some(System::GitLab)
    } else {
        args.ci.then_some(System::Other)
    }
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

/// The human report for a CI log: the verdict in view, the tables folded.
pub fn fold(system: System, head: &str, tables: &str) -> String {
    if tables.is_empty() {
        return head.to_string();
    }
    let title = "diag: failed syscalls and messages";
    match system {
        System::GitHub | System::Other => {
            format!("{head}::group::{title}\n{tables}::endgroup::\n")
        }
        System::GitLab => {
            // GitLab's collapsible sections: the marker lines are erased by `\r\x1b[0K`.
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!(
                "{head}\x1b[0Ksection_start:{at}:diag_details[collapsed=true]\r\x1b[0K{title}\n{tables}\x1b[0Ksection_end:{at}:diag_details\r\x1b[0K\n"
            )
        }
    }
}

/// Writes the JSON artifact and, unless quiet, says where, so a later step can pick it up.
pub fn write_json(json: &str, owner: Option<write::Owner>, quiet: bool) -> Result<()> {
    let path = json_artifact_path();
    write::write_output(&path, json, owner)?;
    if !quiet {
        eprintln!("diag: JSON report written to {}", path.display());
    }
    Ok(())
}

/// Publishes the findings to the CI system: the step summary and the annotations (GitHub), or
/// the Code Quality report (GitLab). Workflow commands go to stderr, which the runner reads
/// too, so the traced command's stdout stays its own. `quiet` silences the annotations.
pub fn publish(
    system: System,
    report: &Report,
    markdown: &str,
    owner: Option<write::Owner>,
    quiet: bool,
) -> Result<()> {
    if system == System::GitLab {
        let path = PathBuf::from(GITLAB_CODE_QUALITY);
        return write::write_output(&path, &code_quality(report), owner);
    }
    if let Some(summary) = env_path("GITHUB_STEP_SUMMARY") {
        write::append_output(&summary, &format!("{markdown}\n"))?;
    }
    if !quiet {
        let _ = std::io::stderr()
            .lock()
            .write_all(github::annotations(report).as_bytes());
    }
    Ok(())
}

/// GitLab's Code Quality format (a Code Climate subset): one issue per finding, identified by
/// the finding's fingerprint so GitLab can tell a new failure from one it saw before.
fn code_quality(report: &Report) -> String {
    let issues: Vec<serde_json::Value> = report
        .findings
        .iter()
        .map(|f| {
            let path = f
                .failures
                .first()
                .and_then(|&i| report.failures.get(i))
                .and_then(|e| e.path.as_ref())
                .map(|p| p.lossy())
                .or_else(|| report.command.first().map(|c| c.lossy()))
                .unwrap_or_else(|| "diag".into());
            serde_json::json!({
                "description": format!("{} Fix: {}", f.summary, f.fix),
                "check_name": format!("diag/{}", f.cause),
                "fingerprint": f.fingerprint,
                "severity": match f.confidence {
                    Confidence::Direct => "major",
                    Confidence::Inferred => "minor",
                    Confidence::Unknown => "info",
                },
                "location": {"path": path, "lines": {"begin": 1}},
            })
        })
        .collect();
    serde_json::to_string_pretty(&issues).expect("JSON values serialize") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::sample;

    #[test]
    fn code_quality_has_one_issue_per_finding_keyed_by_fingerprint() {
        let r = sample();
        let issues: serde_json::Value = serde_json::from_str(&code_quality(&r)).unwrap();
        let issues = issues.as_array().unwrap();
        assert_eq!(issues.len(), r.findings.len());
        assert_eq!(issues[0]["check_name"], "diag/pty-denied");
        assert_eq!(issues[0]["fingerprint"], r.findings[0].fingerprint.as_str());
        assert_eq!(issues[0]["severity"], "major");
        assert_eq!(issues[0]["location"]["path"], "/dev/ptmx");
        assert_eq!(issues[0]["location"]["lines"]["begin"], 1);
    }

    #[test]
    fn folding_keeps_the_verdict_in_view() {
        let github = fold(System::GitHub, "diag: verdict\n", "table\n");
        assert_eq!(
            github,
            "diag: verdict\n::group::diag: failed syscalls and messages\ntable\n::endgroup::\n"
        );
        let gitlab = fold(System::GitLab, "diag: verdict\n", "table\n");
        assert!(gitlab.starts_with("diag: verdict\n\x1b[0Ksection_start:"));
        assert!(gitlab.contains("[collapsed=true]"));
        assert!(gitlab.trim_end().ends_with("\x1b[0K"));
        assert_eq!(fold(System::GitHub, "diag: v\n", ""), "diag: v\n");
    }
}
