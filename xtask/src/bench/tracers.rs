//! The tracers under comparison: how each one is launched around a command, and how its output
//! is counted.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The syscalls every tracer watches (name, x86_64 number): the opens and process creation.
pub const SYSCALLS: &[(&str, u32)] = &[
    ("open", 2),
    ("openat", 257),
    ("openat2", 437),
    ("creat", 85),
    ("execve", 59),
    ("execveat", 322),
    ("clone", 56),
    ("clone3", 435),
    ("fork", 57),
    ("vfork", 58),
];

/// diag's default errnos (EPERM, EAGAIN, EACCES, EROFS, ENOSYS), for bpftrace's filter.
const DEFAULT_ERRNOS: &[u32] = &[1, 11, 13, 30, 38];
const EACCES: u32 = 13;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracer {
    Untraced,
    /// The workload alone while the bench holds /dev/cpu_dma_latency at 0, as diag's ptrace
    /// backend does: what keeping CPUs awake does for the workload by itself.
    UntracedAwake,
    DiagEbpf,
    /// diag's eBPF backend watching one syscall the workload never makes: the cost of its
    /// programs being attached (every syscall still runs `sys_enter`/`sys_exit`), with no
    /// failure to report. The floor under the `DiagEbpf` row.
    DiagAttached,
    DiagPtrace,
    Strace,
    StraceSeccomp,
    /// `strace --seccomp-bpf` with the CPUs held awake, like diag's ptrace backend.
    StraceSeccompAwake,
    Bpftrace,
}

pub const ALL: &[Tracer] = &[
    Tracer::Untraced,
    Tracer::UntracedAwake,
    Tracer::DiagEbpf,
    Tracer::DiagAttached,
    Tracer::DiagPtrace,
    Tracer::Strace,
    Tracer::StraceSeccomp,
    Tracer::StraceSeccompAwake,
    Tracer::Bpftrace,
];

/// What a tracer run needs to know about this bench.
pub struct Setup {
    pub diag: PathBuf,
    /// The workload's cgroup (v2): bpftrace filters on it.
    pub cgroup: PathBuf,
    pub secret: PathBuf,
}

/// What a tracer saw: the denials of the secret file, and what it says it dropped.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    pub denied: u64,
    pub lost_events: Option<u64>,
}

impl Tracer {
    pub fn label(self) -> &'static str {
        match self {
            Tracer::Untraced => "untraced",
            Tracer::UntracedAwake => "untraced, CPUs held awake",
            Tracer::DiagEbpf => "diag --backend ebpf",
            Tracer::DiagAttached => {
                "diag --backend ebpf --syscalls kexec_load (attached, watching nothing)"
            }
            Tracer::DiagPtrace => "diag --backend ptrace",
            Tracer::Strace => "strace -f -Z",
            Tracer::StraceSeccomp => "strace -f -Z --seccomp-bpf",
            Tracer::StraceSeccompAwake => "strace -f -Z --seccomp-bpf, CPUs held awake",
            Tracer::Bpftrace => "bpftrace",
        }
    }

    /// Whether it watches the workload's denials (the attach-cost row does not, by design).
    pub fn counts_denials(self) -> bool {
        !matches!(
            self,
            Tracer::Untraced | Tracer::UntracedAwake | Tracer::DiagAttached
        )
    }

    /// Whether the bench holds the CPUs' wake-up latency at zero around the run (diag's ptrace
    /// backend holds it itself).
    pub fn holds_cpus_awake(self) -> bool {
        matches!(self, Tracer::UntracedAwake | Tracer::StraceSeccompAwake)
    }

    /// The command that runs `cmd` under this tracer, writing what it saw to `out`.
    pub fn command(self, setup: &Setup, cmd: &[OsString], out: &Path) -> Command {
        let syscalls = syscall_list();
        let mut c = match self {
            Tracer::Untraced | Tracer::UntracedAwake => {
                let mut c = Command::new(&cmd[0]);
                c.args(&cmd[1..]);
                return c;
            }
            Tracer::DiagEbpf | Tracer::DiagAttached | Tracer::DiagPtrace => {
                let backend = if self == Tracer::DiagPtrace {
                    "ptrace"
                } else {
                    "ebpf"
                };
                let watched = if self == Tracer::DiagAttached {
                    "kexec_load"
                } else {
                    &syscalls
                };
                let mut c = Command::new(&setup.diag);
                c.args([
                    "run",
                    "--quiet",
                    "--backend",
                    backend,
                    "--syscalls",
                    watched,
                ])
                .arg("--json")
                .arg(out)
                .arg("--");
                c
            }
            Tracer::Strace | Tracer::StraceSeccomp | Tracer::StraceSeccompAwake => {
                let mut c = Command::new("strace");
                c.args(["-f", "-Z"]);
                if self != Tracer::Strace {
                    c.arg("--seccomp-bpf");
                }
                c.arg("-e").arg(format!("trace={syscalls}"));
                c.arg("-o").arg(out).arg("--");
                c
            }
            Tracer::Bpftrace => {
                let mut c = Command::new("bpftrace");
                c.arg("-o").arg(out);
                c.arg("-e").arg(bpftrace_program(&setup.cgroup));
                // bpftrace splits -c on spaces: the bench's paths contain none.
                let line: Vec<_> = cmd.iter().map(|a| a.to_string_lossy()).collect();
                c.arg("-c").arg(line.join(" "));
                return c;
            }
        };
        c.args(cmd);
        c
    }

    /// Counts the denials of `secret` in what the tracer wrote to `out`.
    pub fn seen(self, out: &Path, secret: &Path) -> Result<Seen> {
        if !self.counts_denials() && self != Tracer::DiagAttached {
            return Ok(Seen::default());
        }
        let text = std::fs::read_to_string(out)
            .with_context(|| format!("{} wrote no output to {}", self.label(), out.display()))?;
        let secret = secret.to_string_lossy();
        match self {
            Tracer::Untraced | Tracer::UntracedAwake => unreachable!("handled above"),
            Tracer::DiagEbpf | Tracer::DiagAttached | Tracer::DiagPtrace => {
                diag_seen(&text, &secret)
            }
            Tracer::Strace | Tracer::StraceSeccomp | Tracer::StraceSeccompAwake => Ok(Seen {
                denied: text
                    .lines()
                    .filter(|l| l.contains(&format!("\"{secret}\"")) && l.contains("= -1 EACCES"))
                    .count() as u64,
                lost_events: None,
            }),
            Tracer::Bpftrace => bpftrace_seen(&text, &secret),
        }
    }
}

fn syscall_list() -> String {
    SYSCALLS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// diag deduplicates: the count is the sum of `count` over the secret's EACCES failures.
fn diag_seen(json: &str, secret: &str) -> Result<Seen> {
    let report: Value = serde_json::from_str(json).context("diag's JSON report")?;
    let Some(failures) = report["failures"].as_array() else {
        bail!("diag's report has no failures array");
    };
    let denied = failures
        .iter()
        .filter(|f| f["errno"] == "EACCES" && f["path"] == secret)
        .map(|f| f["count"].as_u64().unwrap_or(0))
        .sum();
    Ok(Seen {
        denied,
        lost_events: report["lost_events"].as_u64(),
    })
}

/// The bpftrace equivalent of diag's kernel side for the workload's tree (its cgroup): failed
/// watched syscalls with a watched errno counted per (pid, syscall, errno), and failed opens
/// counted per (pid, errno, path), the path read at exit as diag does.
fn bpftrace_program(cgroup: &Path) -> String {
    let in_tree = format!("cgroup == cgroupid(\"{}\")", cgroup.display());
    let any = |var: &str, values: &mut dyn Iterator<Item = String>| {
        values
            .map(|v| format!("{var} == {v}"))
            .collect::<Vec<_>>()
            .join(" || ")
    };
    let ids = any(
        "args->id",
        &mut SYSCALLS.iter().map(|(_, nr)| nr.to_string()),
    );
    let errnos = any(
        "args->ret",
        &mut DEFAULT_ERRNOS.iter().map(|e| format!("-{e}")),
    );
    format!(
        "tracepoint:syscalls:sys_enter_openat /{in_tree}/ {{ @path[tid] = args->filename; }}\n\
         tracepoint:syscalls:sys_exit_openat /@path[tid]/ {{\n\
           if ({errnos}) {{ @open_failed[pid, -args->ret, str(@path[tid])] = count(); }}\n\
           delete(@path[tid]);\n\
         }}\n\
         tracepoint:raw_syscalls:sys_exit /{in_tree} && ({ids}) && ({errnos})/ {{\n\
           @failed[pid, args->id, -args->ret] = count();\n\
         }}\n\
         END {{ clear(@path); }}\n"
    )
}

/// Sums `@open_failed[PID, 13, SECRET]: N` lines.
fn bpftrace_seen(text: &str, secret: &str) -> Result<Seen> {
    let suffix = format!(", {EACCES}, {secret}]: ");
    let mut denied = 0;
    for line in text.lines().filter(|l| l.starts_with("@open_failed[")) {
        if let Some((_, n)) = line.split_once(&suffix) {
            denied += n.trim().parse::<u64>().context("bpftrace count")?;
        }
    }
    Ok(Seen {
        denied,
        lost_events: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diag_count_sums_deduplicated_entries_of_the_secret_only() {
        let json = r#"{"failures":[
            {"errno":"EACCES","path":"/s","count":7},
            {"errno":"EACCES","path":"/s","count":3},
            {"errno":"EPERM","path":"/s","count":100},
            {"errno":"EACCES","path":"/other","count":100}],
            "lost_events":2}"#;
        let seen = diag_seen(json, "/s").unwrap();
        assert_eq!((seen.denied, seen.lost_events), (10, Some(2)));
    }

    #[test]
    fn bpftrace_count_reads_the_secret_eacces_entries() {
        let out = "Attaching 4 probes...\n\n\
                   @failed[10, 257, 13]: 5\n\
                   @open_failed[10, 13, /tmp/b/secret]: 4\n\
                   @open_failed[11, 13, /tmp/b/secret]: 2\n\
                   @open_failed[11, 1, /tmp/b/secret]: 9\n\
                   @open_failed[11, 13, /tmp/b/other]: 9\n";
        assert_eq!(bpftrace_seen(out, "/tmp/b/secret").unwrap().denied, 6);
    }
}
