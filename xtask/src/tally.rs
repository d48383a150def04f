//! Runs `cargo test`, passing its output through, and totals the results of every test binary,
//! so the run ends with one line that says how many tests ran: `tests: N passed, N failed,
//! N skipped` (a test that lacks a privilege prints `SKIPPED: reason` and returns).

use crate::workspace_root;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
}

impl Tally {
    /// Counts one line of `cargo test` output.
    pub fn line(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix("test result: ") {
            let number = |word: &str| -> u64 {
                rest.split(';')
                    .find_map(|part| part.trim().strip_suffix(word).map(str::trim))
                    .map(|n| n.rsplit(' ').next().unwrap_or(n))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            self.passed += number(" passed");
            self.failed += number(" failed");
        } else if line.starts_with("SKIPPED: ") {
            self.skipped += 1;
        }
    }
}

/// `cargo test ARGS`, tallied. Skipped tests also count as passed in cargo's own numbers, so
/// they are subtracted from `passed`.
pub fn cargo_test(cargo: &mut Command) -> Result<Tally> {
    let mut child = cargo
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let mut tally = Tally::default();
    let out = std::io::stdout();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        tally.line(&line);
        let _ = writeln!(out.lock(), "{line}");
    }
    let status = child.wait()?;
    tally.passed = tally.passed.saturating_sub(tally.skipped);
    if !status.success() {
        println!(
            "tests: {} passed, {} failed, {} skipped",
            tally.passed,
            tally.failed.max(1),
            tally.skipped
        );
        bail!("cargo test failed ({status})");
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_every_binary() {
        let mut t = Tally::default();
        for l in [
            "test result: ok. 90 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.36s",
            "SKIPPED: needs root to load eBPF programs",
            "test result: FAILED. 4 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s",
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
        ] {
            t.line(l);
        }
        assert_eq!(
            t,
            Tally {
                passed: 94,
                failed: 1,
                skipped: 1
            }
        );
    }
}
