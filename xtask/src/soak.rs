//! `cargo xtask soak`: a long fork-and-fail loop under `diag run`, sampling diag's RSS. Memory
//! must stay flat (failures aggregate with counts) and nothing may be lost. Not part of CI; its
//! figures go into docs/reliability.md.

use crate::{run_cmd, workspace_root};
use anyhow::{bail, Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn run(seconds: u64) -> Result<()> {
    run_cmd(Command::new("cargo").args(["build", "--release", "-p", "diag"]))?;
    let diag = workspace_root().join("target/release/diag");
    let dir = std::env::temp_dir().join(format!("diag-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    let secret = dir.join("secret");
    std::fs::write(&secret, "x")?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
    let counter = dir.join("iterations");
    let json = dir.join("soak.json");
    // Each iteration forks a child that fails one open as nobody, and counts itself.
    let script = format!(
        "end=$(( $(date +%s) + {seconds} )); n=0; while [ $(date +%s) -lt $end ]; do \
         setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'exec 3< {s}' 2>/dev/null; n=$((n+1)); done; echo $n > {c}",
        s = secret.display(),
        c = counter.display()
    );
    let mut child = Command::new(&diag)
        .args(["run", "--quiet", "--json"])
        .arg(&json)
        .args(["--", "sh", "-c", &script])
        .spawn()
        .context("starting diag")?;
    let started = Instant::now();
    let mut samples: Vec<(u64, u64)> = Vec::new();
    while child.try_wait()?.is_none() {
        if let Some(kib) = rss_kib(child.id()) {
            samples.push((started.elapsed().as_secs(), kib));
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let made: u64 = std::fs::read_to_string(&counter)?.trim().parse()?;
    let seen: u64 = report["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["path"].as_str() == Some(&secret.display().to_string()))
        .map(|f| f["count"].as_u64().unwrap_or(0))
        .sum();
    let lost = report["lost_events"].as_u64().unwrap_or(u64::MAX);
    let distinct = report["failures"].as_array().map_or(0, |a| a.len());
    let first = samples
        .iter()
        .find(|(t, _)| *t >= 10)
        .or(samples.first())
        .map_or(0, |s| s.1);
    let last = samples.last().map_or(0, |s| s.1);
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    println!("soak: {seconds} s, {made} failing opens made, {seen} counted by diag, {lost} lost, {distinct} distinct failures in the report");
    println!("soak: diag RSS {first} KiB after 10 s, {last} KiB at the end, peak {peak} KiB (growth {} KiB)", last as i64 - first as i64);
    for (t, kib) in &samples {
        println!("soak: t={t:>4}s rss={kib} KiB");
    }
    let _ = std::fs::remove_dir_all(&dir);
    if seen != made || lost != 0 {
        bail!("soak lost failures: made {made}, counted {seen}, lost_events {lost}");
    }
    Ok(())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
