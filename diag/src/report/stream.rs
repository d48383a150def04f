//! JSON lines (`--format jsonl`, `attach --follow`): each failure and each finding as one line
//! as soon as it is known, then one summary line with the whole report. For log pipelines
//! (journald, Loki, OpenTelemetry collectors) that read one JSON object per line.
//!
//! A line is written once: a failure when it is first attributed, a finding when its
//! fingerprint first appears. Later evidence (a message linked after the failure, a count that
//! grows) is in the summary line, which is the report `--json` would write.

use super::model::{FailureEntry, Finding, Report};
use serde::Serialize;
use std::collections::HashSet;
use std::io::Write;

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line<'a> {
    /// `index`: its place in the summary's `failures`.
    Failure {
        index: usize,
        failure: &'a FailureEntry,
    },
    Finding {
        finding: &'a Finding,
    },
    Summary {
        report: &'a Report,
    },
}

pub struct Follower<W: Write> {
    out: W,
    failures_written: usize,
    findings_written: HashSet<String>,
}

impl<W: Write> Follower<W> {
    pub fn new(out: W) -> Self {
        Follower {
            out,
            failures_written: 0,
            findings_written: HashSet::new(),
        }
    }

    /// Writes the failures and findings of `snapshot` not written yet. Failures only grow at
    /// the end of the list, so a count is enough to know which are new.
    pub fn update(&mut self, snapshot: &Report) -> std::io::Result<()> {
        for (index, failure) in snapshot
            .failures
            .iter()
            .enumerate()
            .skip(self.failures_written)
        {
            self.line(&Line::Failure { index, failure })?;
        }
        self.failures_written = self.failures_written.max(snapshot.failures.len());
        for finding in &snapshot.findings {
            if self.findings_written.insert(finding.fingerprint.clone()) {
                self.line(&Line::Finding { finding })?;
            }
        }
        self.out.flush()
    }

    /// The last new lines, then the summary.
    pub fn finish(mut self, report: &Report) -> std::io::Result<()> {
        self.update(report)?;
        self.line(&Line::Summary { report })?;
        self.out.flush()
    }

    fn line(&mut self, line: &Line) -> std::io::Result<()> {
        let mut text = serde_json::to_string(line).map_err(std::io::Error::other)?;
        text.push('\n');
        self.out.write_all(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::sample;

    #[test]
    fn each_failure_and_finding_is_written_once_then_the_summary() {
        let full = sample();
        let mut early = full.clone();
        early.failures.truncate(1);
        early.findings.truncate(1);
        let mut out = Vec::new();
        let mut f = Follower::new(&mut out);
        f.update(&early).unwrap();
        f.update(&early).unwrap();
        f.finish(&full).unwrap();
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
        let mut expected = vec!["failure", "finding"];
        expected.extend(std::iter::repeat_n("failure", full.failures.len() - 1));
        expected.extend(std::iter::repeat_n("finding", full.findings.len() - 1));
        expected.push("summary");
        assert_eq!(types, expected);
        assert_eq!(lines[0]["index"], 0);
        assert_eq!(lines.last().unwrap()["report"]["schema"], "diag.report/v1");
    }
}
