//! The `diag.report/v1` JSON report (design.md §3). Field names are a contract: the checks and
//! `docs/report-schema.json` rely on them.

pub use crate::capture::container::{Confinement, Container, RestrictedMount};
use crate::model::{Confidence, Layer, Text};
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "diag.report/v1";

/// The `mode` vocabulary: how diag was used. The schema's enum is checked against `ALL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Run,
    Attach,
    Analyze,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Run, Mode::Attach, Mode::Analyze];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Run => "run",
            Mode::Attach => "attach",
            Mode::Analyze => "analyze",
        }
    }
}

/// The `backend` vocabulary: what captured the failures. The schema's enum is checked against
/// `ALL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Ebpf,
    Ptrace,
    StraceLog,
    AuditLog,
}

impl Backend {
    pub const ALL: [Backend; 4] = [
        Backend::Ebpf,
        Backend::Ptrace,
        Backend::StraceLog,
        Backend::AuditLog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Ebpf => "ebpf",
            Backend::Ptrace => "ptrace",
            Backend::StraceLog => "strace-log",
            Backend::AuditLog => "audit-log",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub tool: Tool,
    pub backend: String,
    pub mode: String,
    pub command: Vec<Text>,
    /// The launched process (run) or the attached ones (attach).
    #[serde(default)]
    pub root_pids: Vec<u32>,
    pub exit_status: Option<i32>,
    /// When the session began (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// How long the session took, from its start to the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The traced host's name (live modes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// True when diag was interrupted (signal) before the traced command finished.
    #[serde(default)]
    pub partial: bool,
    pub host: Host,
    pub processes: Vec<ProcessEntry>,
    pub failures: Vec<FailureEntry>,
    /// Failures from flight recorders that led to no complaint and no death (the process was
    /// alive and silent when tracing ended): not candidates, kept for the curious.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovered: Vec<RecoveredEntry>,
    #[serde(default)]
    pub landlock_domains: Vec<DomainEntry>,
    pub messages: Vec<MessageEntry>,
    pub findings: Vec<Finding>,
    pub probes: Probes,
    pub lost_events: u64,
    #[serde(default)]
    pub stats: Stats,
    /// Always present (`[]` when there is nothing to say), so consumers need no null check.
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// The container traced (`attach --container`, or the one `run -- docker run ...` started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
}

/// `--verify-fix`: the command run under the policy and under the patched policy.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Verification {
    /// The unified diff applied to the policy.
    pub patch: String,
    pub before: RunSummary,
    pub after: RunSummary,
    /// "openat /dev/ptmx EACCES (tmux: server)" for failures gone after the patch.
    pub disappeared: Vec<String>,
    /// Failures still there after the patch.
    pub remained: Vec<String>,
    /// Failures seen only after the patch (the command got further).
    pub appeared: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    pub exit_status: Option<i32>,
    pub failures: Vec<FailureEntry>,
}

impl Report {
    /// Indices of `failures` with the ones that matter first and benign noise last.
    pub fn failures_by_relevance(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.failures.len()).collect();
        order.sort_by_key(|&i| self.failures[i].noise.is_some());
        order
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Host {
    pub kernel: String,
    pub lsms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock_abi: Option<i32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProcessEntry {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: Text,
    pub exe: Option<Text>,
    /// Nanoseconds after the trace started when diag first saw it.
    pub first_seen_ns: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FailureEntry {
    pub pid: u32,
    pub tid: u32,
    pub comm: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    pub syscall: String,
    pub errno: String,
    pub path: Option<Text>,
    /// The raw path bytes in hex when they are not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    /// `path` is only the head of a longer path the kernel cut, and the whole path could not be
    /// read back from the process.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_truncated: bool,
    pub flags: Option<String>,
    pub layer: Layer,
    pub confidence: Confidence,
    pub evidence: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ruled_out: Vec<RuledOutEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Layer>,
    /// Why this failure is benign noise, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<String>,
    /// The container engine program that failed ("podman", "runc"...): the engine's plumbing,
    /// not the workload's own failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_plumbing: Option<String>,
    pub count: u64,
    /// Other processes whose identical failure was folded into this entry (fork loops).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub other_pids: u64,
    pub first_ns: u64,
    /// When it first happened, by the log's own clock (RFC 3339, UTC): logs with dates only
    /// (`analyze` of audit records or `strace -ttt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_at: Option<String>,
    /// Handed over by the process's flight recorder (an errno or syscall not reported at once)
    /// because of what the process did next: `complained`, `failed-exit` or `signaled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
    /// Not a failed call: the process was ended by this signal, which the kernel sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<SignalEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignalEntry {
    /// `SIGSYS`, or `signal N`.
    pub name: String,
    pub number: i32,
    /// Its `si_code` (1 with SIGSYS: SYS_SECCOMP; 128: SI_KERNEL), when it carried a siginfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveredEntry {
    pub pid: u32,
    pub tid: u32,
    pub comm: Text,
    pub syscall: String,
    pub errno: String,
    pub path: Option<Text>,
    pub count: u64,
}

impl FailureEntry {
    /// What the call came to, for tables: its errno, or the signal that ended the process on it.
    pub fn outcome(&self) -> String {
        match &self.signal {
            Some(sig) => format!("killed by {}", sig.name),
            None => self.errno.clone(),
        }
    }

    /// The path, escaped for a terminal, with `…` where it was cut.
    pub fn path_escaped(&self) -> Option<String> {
        let p = self.path.as_ref()?.escaped();
        Some(if self.path_truncated { p + "…" } else { p })
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DomainEntry {
    pub id: usize,
    pub created_by: u32,
    pub creator_comm: Text,
    pub handled: Vec<String>,
    /// The ruleset was not seen being built: `handled` and `rules` are unknown, not empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rules_unknown: bool,
    pub rules: Vec<RuleEntry>,
    pub processes: Vec<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuleEntry {
    pub path: Option<Text>,
    pub access: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageEntry {
    pub pid: u32,
    pub comm: Text,
    pub fd: i32,
    pub text: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_hex: Option<String>,
    pub time_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuledOutEntry {
    /// A cause id of the catalog: the cause this failure would have had, had `layer` refused it.
    pub cause: String,
    /// The layer excluded; absent for the filesystem's own permission checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    pub why: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Finding {
    /// The same for the same failure in every run: see `report::build::fingerprint`.
    #[serde(default)]
    pub fingerprint: String,
    pub cause: String,
    pub layer: Layer,
    pub confidence: Confidence,
    pub summary: String,
    /// Indices into `failures`.
    pub failures: Vec<usize>,
    /// Indices into `messages`.
    pub explains: Vec<usize>,
    /// Why each message of `explains` is linked, in the same order: who printed it and what
    /// in its text agrees with the failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub explains_basis: Vec<String>,
    pub evidence: Vec<String>,
    pub ruled_out: Vec<RuledOutEntry>,
    pub fix: String,
    pub policy_patch: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Probes {
    pub attached: Vec<String>,
    pub missing: Vec<MissingProbe>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MissingProbe {
    pub probe: String,
    pub why: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    pub process_forks: u64,
    pub thread_forks: u64,
    pub messages_dropped: u64,
    pub failures_dropped: u64,
    pub untracked_tasks: u64,
    /// Exited processes left out of `processes` because nothing in the report refers to them.
    #[serde(default)]
    pub processes_pruned: u64,
    /// Failures no flight recorder could hold (too many processes held one at once).
    #[serde(default)]
    pub unrecorded_failures: u64,
    /// Recovered failures left out of `recovered` past its bound.
    #[serde(default)]
    pub recovered_dropped: u64,
}
