//! A process's credentials, seccomp state, limits and cgroups.

use super::cgroup::{self, PidsCgroup};
use crate::model::FactsAtFailure;
use anyhow::{Context, Result};
use procfs::process::{LimitValue, Process};
use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
pub struct ProcessContext {
    pub pid: u32,
    pub ruid: u32,
    pub euid: u32,
    pub fsuid: u32,
    pub egid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
    pub cap_effective: u64,
    /// The bounding and inheritable sets: what an execve of a file with capabilities can grant.
    pub cap_bounding: u64,
    pub cap_inheritable: u64,
    /// 0 none, 1 strict, 2 filter.
    pub seccomp_mode: Option<u32>,
    pub no_new_privs: Option<bool>,
    /// RLIMIT_NPROC soft limit (None = unlimited).
    pub nproc_limit: Option<u64>,
    /// Tasks (threads included) the kernel counts against the real uid's RLIMIT_NPROC.
    pub uid_tasks: Option<u64>,
    pub pids: Option<PidsCgroup>,
    /// System-wide tasks and `kernel.threads-max`.
    pub threads: Option<(u64, u64)>,
    /// Built from the kernel event's ids after the process exited: supplementary groups and
    /// capabilities are unknown, unless `sighted`.
    pub from_event: bool,
    /// Limits, capabilities and cgroup were read when the process exec'd, not at the failure.
    pub sighted: bool,
    /// Capabilities, no_new_privs, RLIMIT_NPROC with the uid's task count, and the pids cgroup
    /// are the kernel's own at the failure (eBPF), whenever the rest was read.
    pub at_failure: bool,
}

impl ProcessContext {
    /// The uid's task count and the system's threads are left to [`TaskCounts::fill`].
    pub fn read(pid: u32) -> Result<Self> {
        let proc_ = Process::new(pid as i32).context("gone")?;
        let status = proc_.status().context("reading status")?;
        // A zombie's /proc shows every cgroup as the root and its threads are gone: its facts
        // are no longer the ones the failure met.
        if status.state.starts_with(['Z', 'X']) {
            anyhow::bail!("exited (a zombie not yet reaped)");
        }
        let limits = proc_.limits().context("reading limits")?;
        let nproc_limit = match limits.max_processes.soft_limit {
            LimitValue::Unlimited => None,
            LimitValue::Value(v) => Some(v),
        };
        let pids = proc_.cgroups().ok().and_then(|c| cgroup::pids_cgroup(&c));
        Ok(ProcessContext {
            pid,
            ruid: status.ruid,
            euid: status.euid,
            fsuid: status.fuid,
            egid: status.egid,
            fsgid: status.fgid,
            groups: status.groups.iter().map(|&g| g as u32).collect(),
            cap_effective: status.capeff,
            cap_bounding: status.capbnd.unwrap_or(u64::MAX),
            cap_inheritable: status.capinh,
            seccomp_mode: status.seccomp,
            no_new_privs: status.nonewprivs.map(|v| v != 0),
            nproc_limit,
            uid_tasks: None,
            pids,
            threads: None,
            from_event: false,
            sighted: false,
            at_failure: false,
        })
    }

    /// What is known when the process is gone: its real uid and gid from the kernel event.
    pub fn from_event(pid: u32, uid: u32, gid: u32) -> Self {
        ProcessContext {
            pid,
            ruid: uid,
            euid: uid,
            fsuid: uid,
            egid: gid,
            fsgid: gid,
            from_event: true,
            ..Default::default()
        }
    }

    /// Takes what the kernel read at the failure over what procfs showed before or after it
    /// (the pids cgroup, which only forks need, is [`cgroup::at_failure`]'s).
    pub fn apply_at_failure(&mut self, k: &FactsAtFailure) {
        self.cap_effective = k.cap_effective;
        self.cap_bounding = k.cap_bounding;
        self.cap_inheritable = k.cap_inheritable;
        self.no_new_privs = Some(k.no_new_privs);
        self.nproc_limit = k.nproc_limit;
        self.uid_tasks = Some(k.uid_tasks);
        self.at_failure = true;
    }

    pub fn has_cap(&self, cap: u32) -> bool {
        cap < 64 && self.cap_effective & (1 << cap) != 0
    }
}

/// Task counts shared by the failures of one trace: counting a uid's tasks scans all of /proc,
/// so it is done once per uid, not once per distinct failure (5000 scans took seconds). A failed
/// fork or clone, whose verdict the count is, counts afresh.
#[derive(Debug, Default)]
pub struct TaskCounts {
    uid_tasks: HashMap<u32, u64>,
    threads: Option<(u64, u64)>,
    /// Scans of /proc made so far.
    pub scans: u64,
}

impl TaskCounts {
    /// Sets `p`'s uid task count and the system's threads; `fresh`: count now, whatever is known.
    /// `kernel_counted`: the kernel gave the uid's count at the failure, /proc is not scanned.
    pub fn fill(&mut self, p: &mut ProcessContext, fresh: bool, kernel_counted: bool) {
        if fresh || self.threads.is_none() {
            self.threads = system_threads();
        }
        if !kernel_counted && (fresh || !self.uid_tasks.contains_key(&p.ruid)) {
            self.uid_tasks.insert(p.ruid, count_uid_tasks(p.ruid));
            self.scans += 1;
        }
        p.uid_tasks = self.uid_tasks.get(&p.ruid).copied();
        p.threads = self.threads;
    }
}

/// Tasks whose real uid is `uid`, the count RLIMIT_NPROC is checked against.
fn count_uid_tasks(uid: u32) -> u64 {
    let Ok(all) = procfs::process::all_processes() else {
        return 0;
    };
    all.flatten()
        .filter_map(|p| p.status().ok())
        .filter(|s| s.ruid == uid)
        .map(|s| s.threads)
        .sum()
}

/// (tasks on the system, kernel.threads-max).
fn system_threads() -> Option<(u64, u64)> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    let total = loadavg
        .split_whitespace()
        .nth(3)?
        .split('/')
        .nth(1)?
        .parse()
        .ok()?;
    let max = std::fs::read_to_string("/proc/sys/kernel/threads-max")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some((total, max))
}

/// Capability names, for evidence text.
pub fn cap_name(cap: u32) -> String {
    const NAMES: &[&str] = &[
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    NAMES
        .get(cap as usize)
        .map_or_else(|| format!("capability {cap}"), |n| n.to_string())
}

pub const CAP_DAC_OVERRIDE: u32 = 1;
pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_FOWNER: u32 = 3;
pub const CAP_SYS_ADMIN: u32 = 21;
