//! `cargo xtask fuzz`: runs each cargo-fuzz target of `fuzz/` for a bounded time, failing on a
//! panic (a crash) or on memory past the RSS limit.

use crate::{run_cmd, workspace_root};
use anyhow::Result;
use std::process::Command;

const TARGETS: &[&str] = &["strace_log", "audit_log"];
/// libFuzzer aborts when the process grows past this.
const RSS_LIMIT_MB: u32 = 1024;
/// Largest input libFuzzer makes; the seed logs are smaller.
const MAX_LEN: u32 = 64 * 1024;

pub fn run(seconds: u64) -> Result<()> {
    let have_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_fuzz {
        run_cmd(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let root = workspace_root();
    for target in TARGETS {
        // New inputs go to a scratch corpus; the committed seeds stay as they are.
        let scratch = root.join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&scratch)?;
        let seeds = root.join("fuzz/corpus").join(target);
        run_cmd(
            Command::new("cargo")
                .args(["+nightly", "fuzz", "run", target])
                .arg(&scratch)
                .arg(&seeds)
                .arg("--")
                .arg(format!("-max_total_time={seconds}"))
                .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
                .arg(format!("-max_len={MAX_LEN}"))
                // The parsers need no eBPF object; skip building it with the sanitizer flags.
                .env("DIAG_SKIP_EBPF", "1"),
        )?;
    }
    Ok(())
}
