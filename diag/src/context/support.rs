//! What this host supports, for `diag doctor`: each check says what it found, why it matters,
//! and how to fix it when it is missing.

use super::cgroup::Mounts;
use super::HostFacts;
use crate::capture::ebpf::{btf_path, tracefs};
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Missing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Missing => "missing",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// A stable name: `btf`, `cap_bpf`, `probe raw_tp/sys_enter`, ...
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// Capability numbers (linux/capability.h).
const CAPS: &[(&str, u32, bool, &str)] = &[
    ("CAP_BPF", 39, true, "load the eBPF programs"),
    (
        "CAP_PERFMON",
        38,
        true,
        "attach tracepoints and read kernel memory",
    ),
    (
        "CAP_SYS_ADMIN",
        21,
        true,
        "mount tracefs and read other processes' context",
    ),
    (
        "CAP_SYS_PTRACE",
        19,
        false,
        "the ptrace backend and attaching to other users' processes",
    ),
];

const ROOT_FIX: &str = "run diag as root (sudo), or give it CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN; without them use --backend ptrace";

/// The effective capabilities of this process.
pub fn effective_caps() -> u64 {
    procfs::process::Process::myself()
        .and_then(|p| p.status())
        .map(|s| s.capeff)
        .unwrap_or(0)
}

pub fn has_cap(caps: u64, name: &str) -> bool {
    CAPS.iter()
        .find(|c| c.0 == name)
        .is_some_and(|&(_, bit, _, _)| caps & (1u64 << bit) != 0)
}

/// Everything but the eBPF build and its probes.
pub fn host_checks(host: &HostFacts) -> Vec<Check> {
    let caps = effective_caps();
    let mut checks: Vec<Check> = CAPS
        .iter()
        .map(|&(name, bit, needed, why)| {
            if caps & (1u64 << bit) != 0 {
                Check::new(name.to_lowercase(), Status::Ok, format!("effective: {why}"))
            } else if needed {
                Check::new(
                    name.to_lowercase(),
                    Status::Missing,
                    format!("not effective: needed to {why}"),
                )
                .fix(ROOT_FIX)
            } else {
                Check::new(
                    name.to_lowercase(),
                    Status::Warn,
                    format!("not effective: needed for {why}"),
                )
                .fix("run diag as root (sudo) to trace other users' processes")
            }
        })
        .collect();
    checks.push(btf());
    checks.push(tracefs_check());
    checks.push(unprivileged_bpf(has_cap(caps, "CAP_BPF")));
    checks.extend(lsm_checks(host));
    checks.push(yama());
    checks.push(cgroups());
    checks
}

fn btf() -> Check {
    let path = btf_path();
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Check::new(
            "btf",
            Status::Ok,
            format!(
                "{} ({} KiB): fexit probes can be resolved",
                path.display(),
                m.len() / 1024
            ),
        ),
        Ok(_) => missing_btf(&path, "not a regular file"),
        Err(e) => missing_btf(&path, &e.to_string()),
    }
}

fn missing_btf(path: &Path, why: &str) -> Check {
    Check::new(
        "btf",
        Status::Missing,
        format!("{}: {why}; kernel-function (fexit) probes cannot load, tracepoints still work", path.display()),
    )
    .fix("use a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distribution kernels), or point DIAG_BTF_PATH at the kernel's BTF file")
}

fn tracefs_check() -> Check {
    match tracefs::mounted_tracefs() {
        Some(p) => Check::new("tracefs", Status::Ok, format!("mounted at {}", p.display())),
        None => Check::new("tracefs", Status::Warn, "not mounted (or not readable); diag mounts it at /sys/kernel/tracing when it loads (needs CAP_SYS_ADMIN)")
            .fix("mount -t tracefs tracefs /sys/kernel/tracing"),
    }
}

fn unprivileged_bpf(has_bpf: bool) -> Check {
    let name = "kernel.unprivileged_bpf_disabled";
    let Some(v) = read_trimmed("/proc/sys/kernel/unprivileged_bpf_disabled") else {
        return Check::new(
            name,
            Status::Warn,
            "unreadable: this kernel may not support BPF",
        );
    };
    match (v.as_str(), has_bpf) {
        ("0", _) => Check::new(
            name,
            Status::Ok,
            "0: unprivileged BPF allowed (diag's tracing still needs CAP_BPF and CAP_PERFMON)",
        ),
        (v, true) => Check::new(
            name,
            Status::Ok,
            format!("{v}: unprivileged BPF disabled; diag has CAP_BPF, so it is not affected"),
        ),
        (v, false) => Check::new(
            name,
            Status::Missing,
            format!("{v}: unprivileged BPF disabled and diag lacks CAP_BPF"),
        )
        .fix(ROOT_FIX),
    }
}

fn lsm_checks(host: &HostFacts) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(if host.lsms.is_empty() {
        Check::new(
            "lsms",
            Status::Warn,
            "/sys/kernel/security/lsm unreadable: layers cannot be ruled out by elimination",
        )
        .fix("mount -t securityfs securityfs /sys/kernel/security (diag tries as root)")
    } else {
        Check::new("lsms", Status::Ok, host.lsms.join(","))
    });
    checks.push(match (host.landlock_abi, host.has_lsm("landlock")) {
        (Some(abi), _) => Check::new(
            "landlock",
            Status::Ok,
            format!("ABI {abi}: Landlock denials can be attributed, and diag sandbox works"),
        ),
        (None, true) => Check::new(
            "landlock",
            Status::Warn,
            "listed as active, but landlock_create_ruleset does not answer",
        ),
        (None, false) => Check::new(
            "landlock",
            Status::Missing,
            "not an active LSM: Landlock cannot be the denying layer, and diag sandbox cannot work",
        )
        .fix("boot with landlock in lsm= (kernel built with CONFIG_SECURITY_LANDLOCK=y)"),
    });
    checks.push(match &host.bpf_lsm_programs {
        Some(progs) if progs.is_empty() => Check::new(
            "bpf_lsm_programs",
            Status::Ok,
            "none attached: a BPF LSM can be ruled out",
        ),
        Some(progs) => Check::new(
            "bpf_lsm_programs",
            Status::Warn,
            format!(
                "attached: {}; a denial may come from them",
                progs.join(", ")
            ),
        ),
        None => Check::new(
            "bpf_lsm_programs",
            Status::Warn,
            "cannot list loaded BPF programs (needs CAP_SYS_ADMIN): a BPF LSM cannot be ruled out",
        )
        .fix("run diag as root (sudo)"),
    });
    checks
}

fn yama() -> Check {
    let name = "yama.ptrace_scope";
    match read_trimmed("/proc/sys/kernel/yama/ptrace_scope").as_deref() {
        None => Check::new(name, Status::Ok, "Yama is not active on this kernel: ptrace is limited by capabilities only"),
        Some("0") => Check::new(name, Status::Ok, "0: classic ptrace permissions"),
        Some("1") => Check::new(name, Status::Ok, "1: only descendants can be traced without CAP_SYS_PTRACE; diag run traces its own child"),
        Some("2") => Check::new(name, Status::Warn, "2: only CAP_SYS_PTRACE may trace: the ptrace backend needs root")
            .fix("run diag as root (sudo)"),
        Some(v) => Check::new(name, Status::Missing, format!("{v}: ptrace is disabled: the ptrace backend cannot work"))
            .fix("use the eBPF backend; scope 3 can only be lowered by a reboot"),
    }
}

fn cgroups() -> Check {
    let m = Mounts::read();
    let pids = match (&m.pids_v1, m.v2_has_pids()) {
        (Some(p), _) => Some(format!("pids controller (v1) at {}", p.display())),
        (None, true) => Some("pids controller on v2".to_string()),
        (None, false) => None,
    };
    let v2 = m.v2.as_ref().map_or("no v2 hierarchy".to_string(), |p| {
        format!("v2 at {}", p.display())
    });
    let detail = format!(
        "{}: {v2}; {}",
        m.layout(),
        pids.as_deref().unwrap_or("no pids controller")
    );
    match (pids.is_some(), m.v2.is_some()) {
        (true, true) => Check::new("cgroups", Status::Ok, detail),
        (true, false) => Check::new(
            "cgroups",
            Status::Warn,
            format!("{detail}; attach --cgroup needs a v2 hierarchy"),
        )
        .fix("mount -t cgroup2 none /sys/fs/cgroup/unified"),
        (false, _) => Check::new(
            "cgroups",
            Status::Warn,
            format!("{detail}; pids limits cannot be measured"),
        )
        .fix("enable the pids controller (cgroup v2: add +pids to cgroup.subtree_control)"),
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}
