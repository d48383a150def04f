//! `diag analyze` on big logs, one per kind the memory issue was measured on: each is
//! generated as it is read, into diag's stdin through a pipe (no big file on disk), and diag's
//! own peak RSS (`wait4`'s `ru_maxrss`) and wall time are recorded.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One kind of log: its name, whether it is audit records, and its n-th line.
pub struct LogKind {
    pub name: &'static str,
    audit: bool,
    line: fn(u64, &mut Vec<u8>),
}

pub const KINDS: &[LogKind] = &[
    LogKind {
        name: "strace, distinct failures",
        audit: false,
        line: |n, out| {
            let _ = writeln!(
                out,
                "4242 openat(AT_FDCWD, \"/data/dir/file-{n:012}\", O_RDONLY|O_CLOEXEC) = -1 EACCES (Permission denied)"
            );
        },
    },
    LogKind {
        name: "strace, one repeated line",
        audit: false,
        line: |_, out| {
            out.extend_from_slice(
                b"4242 openat(AT_FDCWD, \"/dev/ptmx\", O_RDWR|O_NOCTTY) = -1 EACCES (Permission denied)\n",
            );
        },
    },
    LogKind {
        name: "strace, successful calls",
        audit: false,
        line: |n, out| {
            let _ = match n % 3 {
                0 => writeln!(
                    out,
                    "4242 openat(AT_FDCWD, \"/usr/lib/file-{n}\", O_RDONLY|O_CLOEXEC) = 3"
                ),
                1 => writeln!(
                    out,
                    "4242 read(3, \"\\177ELF\\2\\1\\1\\0\\0\\0\\0\\0\\0\\0\\0\\0\\3\\0>\\0\\1\\0\\0\\0\"..., 832) = 832"
                ),
                _ => writeln!(out, "4242 close(3) = 0"),
            };
        },
    },
    LogKind {
        name: "audit, distinct denials (long paths)",
        audit: true,
        line: |n, out| {
            // Every 1000th path is 16 KiB: the report must cut it.
            let long = if n % 1000 == 0 { 16 * 1024 } else { 64 };
            let path = format!("/data/{n:012}/{}", "p".repeat(long));
            let (secs, serial) = (1_700_000_000 + n / 1000, n);
            let _ = writeln!(
                out,
                "type=AVC msg=audit({secs}.{:03}:{serial}): avc:  denied  {{ read }} for  pid={} comm=\"cat\" path=\"{path}\" dev=\"sda1\" ino={n} scontext=system_u:system_r:container_t:s0 tcontext=system_u:object_r:etc_t:s0 tclass=file permissive=0",
                n % 1000,
                4000 + n % 64
            );
            let _ = writeln!(
                out,
                "type=SYSCALL msg=audit({secs}.{:03}:{serial}): arch=c000003e syscall=257 success=no exit=-13 a0=ffffff9c a1=55d0c0ffee00 a2=0 a3=0 items=1 ppid=1 pid={} auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=(none) ses=3 comm=\"cat\" exe=\"/usr/bin/cat\" key=(null)",
                n % 1000,
                4000 + n % 64
            );
        },
    },
];

pub struct Outcome {
    pub kind: &'static str,
    pub bytes: u64,
    pub wall: Duration,
    pub peak_rss_kib: u64,
    pub error: Option<String>,
}

/// Runs `diag analyze -` on `bytes` of each kind of log.
pub fn run_all(diag: &Path, scratch: &Path, bytes: u64) -> Vec<Outcome> {
    KINDS
        .iter()
        .map(|kind| {
            eprintln!(
                "xtask: bench: analyze, {} ({} MB)",
                kind.name,
                bytes / 1_000_000
            );
            one(kind, diag, scratch, bytes).unwrap_or_else(|e| Outcome {
                kind: kind.name,
                bytes,
                wall: Duration::ZERO,
                peak_rss_kib: 0,
                error: Some(format!("{e:#}")),
            })
        })
        .collect()
}

fn one(kind: &LogKind, diag: &Path, scratch: &Path, bytes: u64) -> Result<Outcome> {
    let mut cmd = Command::new(diag);
    cmd.arg("analyze").arg("--quiet").arg("--json");
    cmd.arg(scratch.join("analyze.json"));
    if kind.audit {
        cmd.arg("--audit");
    }
    let start = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by wait4 below, which gives its rusage
    let mut child = cmd
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting diag analyze")?;
    let mut stdin = child.stdin.take().context("diag's stdin")?;
    let line = kind.line;
    let writer = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut written, mut n, mut chunk) = (0u64, 0u64, Vec::with_capacity(1 << 20));
        while written < bytes {
            chunk.clear();
            while chunk.len() < 1 << 20 {
                line(n, &mut chunk);
                n += 1;
            }
            stdin.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        Ok(written)
    });
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; both out-pointers live across the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, whose std handle is not waited on afterwards.
    let waited = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if waited != child.id() as i32 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let written = writer.join().expect("the writer thread");
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        bail!("diag analyze: wait status {status:#x}: {}", err.trim());
    }
    Ok(Outcome {
        kind: kind.name,
        bytes: written.context("writing the log into diag")?,
        wall,
        peak_rss_kib: usage.ru_maxrss as u64,
        error: None,
    })
}

/// The results as a Markdown table.
pub fn render(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "\n#### `diag analyze` on big logs (streamed through a pipe)\n\n| log | size | time | throughput | peak RSS |\n|---|---|---|---|---|\n",
    );
    for o in outcomes {
        let line = match &o.error {
            Some(e) => format!("| {} | | failed: {e} | | |\n", o.kind),
            None => format!(
                "| {} | {:.2} GB | {:.1} s | {:.0} MB/s | {:.1} MiB |\n",
                o.kind,
                o.bytes as f64 / 1e9,
                o.wall.as_secs_f64(),
                o.bytes as f64 / 1e6 / o.wall.as_secs_f64(),
                o.peak_rss_kib as f64 / 1024.0
            ),
        };
        out.push_str(&line);
    }
    out.push_str("\nPeak RSS is diag's own `ru_maxrss` (`wait4`); the target is under 200 MiB whatever the size.\n");
    out
}
