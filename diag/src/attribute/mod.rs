//! Attribution: which layer refused each failure, how sure diag is, and which suspects it
//! excluded, with the measured reason for each.
//!
//! Order of evidence: a kernel record (audit, fexit probe, cap_capable, seccomp's missing
//! sys_enter) is `direct`; a traced Landlock domain that lacks the needed right is `direct`;
//! a measured context check (mountinfo, pids cgroup, limits, file mode) is `inferred`; and a
//! layer is inferred by elimination only when every other layer able to return that errno for
//! that call was excluded by a measured check. Otherwise the layer is `unknown`, with the
//! candidates listed.

pub mod access;
pub mod capability;
mod devices;
mod exec_file;
mod fd_limits;
mod noise;
mod privilege;
mod process_limits;
mod suspects;
mod sysctl;
mod userns;

pub use suspects::Suspects;

use crate::capture::ProbeReport;
use crate::context::{
    dac,
    path::{FileKind, View},
    process::cap_name,
    FailureContext, HostFacts, PathFacts, ProcessContext,
};
use crate::correlate::{landlock::access_names, FailureGroup, Trace};
use crate::model::{syscalls, Confidence, EvidenceSource, Failure, Layer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuledOut {
    /// The layer excluded; None for the filesystem's own permission checks (FUSE, NFS...).
    pub layer: Option<Layer>,
    pub why: String,
}

#[derive(Clone, Debug)]
pub struct Attribution {
    pub layer: Layer,
    pub confidence: Confidence,
    pub evidence: Vec<String>,
    pub ruled_out: Vec<RuledOut>,
    /// For `unknown`: the layers that could not be excluded.
    pub candidates: Vec<Layer>,
    /// Set when the failure is benign noise that did not change the outcome.
    pub noise: Option<String>,
    /// The access the call needed, for file failures (drives policy suggestions).
    pub needed: Option<access::Needed>,
    /// What the call asked for, when that explains the refusal ("setpriority(PRIO_PROCESS, 0,
    /// -10) needs CAP_SYS_NICE").
    pub decoded: Option<String>,
    /// A fix fitted to what the checker measured; the catalog's fix otherwise.
    pub fix: Option<String>,
}

impl Attribution {
    fn new() -> Self {
        Attribution {
            layer: Layer::Unknown,
            confidence: Confidence::Unknown,
            evidence: vec![],
            ruled_out: vec![],
            candidates: vec![],
            noise: None,
            needed: None,
            decoded: None,
            fix: None,
        }
    }

    fn decide(mut self, layer: Layer, confidence: Confidence, why: impl Into<String>) -> Self {
        self.layer = layer;
        self.confidence = confidence;
        self.evidence.push(why.into());
        self
    }

    fn exclude(&mut self, layer: impl Into<Option<Layer>>, why: impl Into<String>) {
        self.ruled_out.push(RuledOut {
            layer: layer.into(),
            why: why.into(),
        });
    }
}

/// Which evidence probes were live, so absence of evidence means something only when it could
/// have been seen.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProbesLive {
    pub cap_capable: bool,
    pub fexit_landlock: bool,
}

impl ProbesLive {
    pub fn from_report(p: &ProbeReport) -> Self {
        let has = |s: &str| p.attached.iter().any(|a| a.ends_with(s));
        ProbesLive {
            cap_capable: has("cap_capable"),
            fexit_landlock: has("hook_file_open"),
        }
    }
}

pub struct Attributor<'a> {
    pub host: &'a HostFacts,
    pub probes: ProbesLive,
    pub trace: &'a Trace,
}

const O_CREAT: u64 = 0o100;
const O_DIRECTORY: u64 = 0o200000;

/// LSMs able to refuse file access when active.
const DENYING_LSMS: &[(&str, Layer)] = &[
    ("landlock", Layer::Landlock),
    ("selinux", Layer::Selinux),
    ("apparmor", Layer::Apparmor),
    ("smack", Layer::Lsm),
    ("tomoyo", Layer::Lsm),
];

/// Filesystems whose permission checks are the generic ones (no server-side or FUSE policy).
const LOCAL_FS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "devtmpfs", "devpts", "proc", "sysfs",
    "overlay", "ramfs", "vfat", "f2fs", "erofs", "squashfs", "cgroup", "cgroup2", "mqueue",
];

impl Attributor<'_> {
    pub fn attribute(&self, g: &FailureGroup) -> Attribution {
        let f = &g.failure;
        let empty = FailureContext::default();
        let ctx = g.context.as_ref().unwrap_or(&empty);
        let mut a = Attribution::new();
        a.noise = noise::label(f, g.flush.is_some(), self.trace);

        if let Some(v) = &f.evidence.audit {
            let layer = Layer::parse(&v.layer).unwrap_or(Layer::Lsm);
            a.evidence.extend(v.explained.iter().cloned());
            return a.decide(
                layer,
                Confidence::Direct,
                format!("audit record: {}", v.record),
            );
        }
        if let Some(sig) = f.signal {
            return killed_by(f, sig, a);
        }
        if let Some(d) = self.seccomp(f, ctx, &mut a) {
            return a.decide(Layer::Seccomp, Confidence::Direct, d);
        }
        if f.evidence.traced_by_diag {
            return a.decide(Layer::Unknown, Confidence::Direct, format!(
                "diag's own interference: the task this {} request names is traced by diag's ptrace backend, and a task has one tracer; under --backend ebpf the call would not fail this way",
                f.syscall
            ));
        }
        if f.evidence.landlock_denied {
            return a.decide(
                Layer::Landlock,
                Confidence::Direct,
                "fexit on Landlock's hook_file_open returned an error during the call",
            );
        }
        if f.evidence.selinux_denied {
            return a.decide(
                Layer::Selinux,
                Confidence::Direct,
                "avc:selinux_audited reported a denial during the call",
            );
        }
        if f.evidence.pids_denied {
            return a.decide(
                Layer::CgroupPids,
                Confidence::Direct,
                "fexit on pids_can_fork returned an error during the call",
            );
        }
        if let Some(a) = fexit_file_verdict(f, self.probes, a.clone()) {
            return a;
        }
        if syscalls::is_clone(&f.syscall) && f.errno == libc::EAGAIN {
            return process_limits::attribute(f, ctx, a);
        }
        type Checker = fn(&Failure, &FailureContext, Attribution) -> Option<Attribution>;
        const CHECKERS: &[Checker] = &[exec_file::check, devices::check, privilege::check];
        // These read this host's sysctls: they say nothing of a log's.
        const HOST_CHECKERS: &[Checker] = &[fd_limits::check, sysctl::check];
        let live = self.trace.from_log.is_none();
        let checkers = CHECKERS.iter().chain(HOST_CHECKERS.iter().filter(|_| live));
        for check in checkers {
            if let Some(a) = check(f, ctx, a.clone()) {
                return a;
            }
        }
        if live {
            if let Some(a) = userns::check(f, ctx, a.clone(), self.host) {
                return a;
            }
        }
        if f.errno == libc::EROFS {
            let mount = ctx.path.as_ref().and_then(PathFacts::own_mount);
            let why = match mount {
                Some(m) => format!(
                    "EROFS: {} ({}) is mounted {}",
                    m.mount_point.display(),
                    m.fs_type,
                    if m.read_only {
                        "ro"
                    } else {
                        "rw, the superblock is read-only"
                    }
                ),
                None => "EROFS is returned only for writes to a read-only filesystem".into(),
            };
            return a.decide(Layer::MountRo, Confidence::Direct, why);
        }
        if f.errno == libc::ENOSYS {
            let why = format!(
                "{} entered the kernel and returned ENOSYS: this kernel does not implement it",
                f.syscall
            );
            return a.decide(Layer::Unknown, Confidence::Inferred, why);
        }
        let exe = self
            .trace
            .processes
            .get(&f.origin.pid)
            .and_then(|p| p.exe.as_ref());
        if let Some(a) = privilege::check_exited(f, ctx, exe, a.clone()) {
            return a;
        }
        if let Some(a) = capability::check(f, ctx, a.clone()) {
            return a;
        }
        // cap_capable also reports noaudit probes (the overcommit reserve asks for CAP_SYS_ADMIN
        // on every new mapping, execve's included): a refusal is the verdict only for an EPERM
        // outside exec, and DAC capabilities are weighed with the file's mode below.
        if let Some(cap) = f.evidence.denied_capability {
            let decisive = f.errno == libc::EPERM && !syscalls::is_exec(&f.syscall);
            if decisive && (!is_dac_cap(cap) || f.path.is_none()) {
                let why = format!("cap_capable refused {} during the call", cap_name(cap));
                return a.decide(Layer::Capability, Confidence::Direct, why);
            }
        }
        if f.path.is_some() && matches!(f.errno, libc::EACCES | libc::EPERM) {
            return self.file_access(f, ctx, a);
        }
        if f.errno == libc::ENOENT {
            let why = format!(
                "{}{} does not exist in the process's mount namespace",
                f.path.as_ref().map(|p| p.escaped()).unwrap_or_default(),
                if f.path_truncated() { "…" } else { "" }
            );
            return a.decide(Layer::Unknown, Confidence::Inferred, why);
        }
        if self.probes.cap_capable && f.evidence.source == EvidenceSource::Kernel {
            a.exclude(
                Layer::Capability,
                "cap_capable refused no capability during the call",
            );
        }
        if is_prot_exec(f) && f.errno == libc::EPERM {
            // The mapped file's mount was not seen, so its noexec cannot be ruled out.
            a.evidence.push(format!(
                "the file {} maps could not be named (the process had closed it or exited before diag looked): its mount's noexec was not checked",
                f.syscall
            ));
            a.candidates.push(Layer::MountNoexec);
        }
        a.evidence.push(format!(
            "no layer-specific evidence for {} returning {}",
            f.syscall,
            crate::model::errno::name(f.errno)
        ));
        a
    }

    /// Seccomp is proven by the missing sys_enter, and excluded by its presence.
    fn seccomp(&self, f: &Failure, ctx: &FailureContext, a: &mut Attribution) -> Option<String> {
        let mode = ctx.process.as_ref().and_then(|p| p.seccomp_mode);
        let mode_text = match mode {
            Some(2) => "filter present (mode 2)",
            Some(1) => "strict mode",
            Some(0) => "no filter (mode 0)",
            _ => "mode unknown",
        };
        if f.evidence.seccomp_denied && f.evidence.source == EvidenceSource::CallOnly {
            return Some(format!(
                "{} on tid {} stopped at syscall entry but never at diag's SECCOMP_RET_TRACE filter: a seccomp filter's action outranked TRACE and answered {}; seccomp {mode_text}",
                f.syscall,
                f.origin.tid,
                crate::model::errno::name(f.errno)
            ));
        }
        if f.evidence.no_enter || f.evidence.seccomp_denied {
            return Some(format!(
                "{} on tid {} reached sys_exit without sys_enter: a seccomp filter answered {} before the syscall ran; seccomp {mode_text}",
                f.syscall,
                f.origin.tid,
                crate::model::errno::name(f.errno)
            ));
        }
        if f.evidence.source == EvidenceSource::Kernel && mode == Some(0) {
            a.exclude(
                Layer::Seccomp,
                "seccomp: no filter installed (mode 0), and the call reached sys_enter",
            );
        } else if f.evidence.source == EvidenceSource::Kernel {
            a.exclude(Layer::Seccomp, format!("seccomp: {mode_text}, but this call reached sys_enter, so no filter refused it"));
        } else if f.evidence.seccomp_passed {
            a.exclude(Layer::Seccomp, "seccomp: the call stopped at diag's SECCOMP_RET_TRACE filter, which any filter's refusal would have outranked, so no filter refused it");
        } else if mode == Some(0) {
            a.exclude(Layer::Seccomp, "seccomp: no filter (mode 0)");
        }
        None
    }

    /// A traced Landlock domain of the process that lacks a right the call needed.
    fn landlock_denial(&self, f: &Failure, n: &access::Needed) -> Option<String> {
        self.trace
            .landlock
            .domains_of(f.origin.pid)
            .into_iter()
            .find_map(|d| {
                let missing = d.missing_rights(&n.path, n.landlock);
                (missing != 0).then(|| {
                    format!(
                "Landlock domain {} (created by pid {}, {}) grants {}; {} needs {}: not granted",
                d.id, d.created_by, d.creator_comm.escaped(), d.grants_summary(),
                n.path.display(), access_names(missing).join("+")
            )
                })
            })
    }

    /// Without a live process (a log read offline) the path cannot be resolved; as logged, an
    /// absolute path that the call does not create can still be held against the traced rules.
    fn unresolved_landlock_denial(&self, f: &Failure) -> Option<String> {
        if f.path_truncated() {
            return None;
        }
        let path = std::path::PathBuf::from(f.path.as_ref()?.lossy());
        let fl = f.flags.unwrap_or(0);
        if !path.is_absolute() || (syscalls::is_open(&f.syscall) && fl & O_CREAT != 0) {
            return None;
        }
        let n = access::needed(f, &path, true, fl & O_DIRECTORY != 0)?;
        let why = self.landlock_denial(f, &n)?;
        Some(format!(
            "{why} (the path as logged, not resolved: no live process to look at)"
        ))
    }

    fn file_access(&self, f: &Failure, ctx: &FailureContext, mut a: Attribution) -> Attribution {
        let Some(facts) = ctx.path.as_ref() else {
            if let Some(why) = self.unresolved_landlock_denial(f) {
                return a.decide(Layer::Landlock, Confidence::Direct, why);
            }
            a.evidence.push(match self.trace.from_log {
                Some(_) => "the file, its mount and its mode are not known from this log".into(),
                None => "the path could not be examined (the process had exited)".into(),
            });
            a.candidates = vec![Layer::Dac, Layer::Landlock, Layer::Lsm];
            return a;
        };
        match facts.view {
            View::Own => {}
            View::Relative(r) => a.evidence.push(format!(
                "{} exited before diag could look: its path was examined through pid {r}, its nearest living relative in the traced tree",
                f.origin.pid
            )),
            View::Host => a.evidence.push(format!(
                "{} and its relatives exited before diag could look: the path was examined in diag's own view of the host",
                f.origin.pid
            )),
            View::AtFailure => a.evidence.push(format!(
                "the file behind {}'s descriptor, as the kernel saw it when the call failed: mount flags {}, mode {:o}, owner {}:{}",
                f.syscall,
                mount_flags_text(facts.mount.as_ref()),
                facts.mode,
                facts.uid,
                facts.gid
            )),
        }
        let resolved = facts.resolved.clone().unwrap_or_else(|| facts.path.clone());
        let exists = facts.kind != FileKind::Missing;
        let is_dir = facts.kind == FileKind::Directory;
        let needed = access::needed(f, &resolved, exists, is_dir);
        a.needed = needed.clone();
        let is_exec = syscalls::is_exec(&f.syscall) || is_prot_exec(f);

        // Checks made in diag's own view say little about a private namespace: they may
        // confirm a kernel record, never carry an inference or an elimination.
        let measured = facts.view != View::Host;
        if !measured && is_exec {
            a.candidates.push(Layer::MountNoexec);
        }
        if let Some(m) = facts.own_mount() {
            if is_exec && m.noexec {
                let why = format!(
                    "{} is on {} ({}), mounted noexec",
                    resolved.display(),
                    m.mount_point.display(),
                    m.fs_type
                );
                // The kernel's own flags on the very file the call named leave nothing to infer.
                let confidence = if facts.view == View::AtFailure {
                    Confidence::Direct
                } else {
                    Confidence::Inferred
                };
                return a.decide(Layer::MountNoexec, confidence, why);
            }
            if is_exec {
                a.exclude(
                    Layer::MountNoexec,
                    format!("{} is mounted without noexec", m.mount_point.display()),
                );
            }
        }

        if is_exec && f.errno == libc::EPERM {
            if let Some(why) = unobtainable_file_caps(facts, ctx.process.as_ref()) {
                return a.decide(Layer::Capability, Confidence::Inferred, why);
            }
        }

        // DAC, checked as the process would make it.
        let mut dac_excluded = false;
        match (ctx.process.as_ref(), needed.as_ref()) {
            (Some(p), Some(n)) => {
                let target = if n.path == resolved {
                    facts.clone()
                } else {
                    crate::context::PathFacts::read(
                        f.origin.pid,
                        &facts.view_pids(),
                        n.path.as_os_str().as_encoded_bytes(),
                    )
                    .unwrap_or_else(|_| facts.clone())
                };
                let mut v = dac::check(&target, n.dac, p);
                if p.from_event {
                    v.why.push_str(" (credentials from the kernel event: the process had exited; supplementary groups and capabilities assumed empty)");
                }
                let dac_cap = f.evidence.denied_capability.filter(|&c| is_dac_cap(c));
                // An exited root's capabilities are unknown: the check above assumed none, so an
                // "allowed" holds whatever they were, but a "refused" proves nothing.
                let caps_unknown = p.from_event && p.fsuid == 0;
                match (v.allowed, dac_cap, measured) {
                    (false, None, _) if caps_unknown => a.candidates.push(Layer::Dac),
                    (false, Some(cap), _) => {
                        let why = format!(
                            "DAC: {}; cap_capable refused {} during the call",
                            v.why,
                            cap_name(cap)
                        );
                        return a.decide(Layer::Dac, Confidence::Direct, why);
                    }
                    (false, None, true) => {
                        return a.decide(
                            Layer::Dac,
                            Confidence::Inferred,
                            format!("DAC: {}", v.why),
                        )
                    }
                    (true, _, _) => {
                        let caveat = if measured {
                            ""
                        } else {
                            " (checked in diag's own view of the host: the process had exited)"
                        };
                        a.exclude(Layer::Dac, format!("DAC: {}{caveat}", v.why));
                        // Only a check in the process's own view can carry an elimination.
                        dac_excluded = measured;
                    }
                    (false, None, false) => a.candidates.push(Layer::Dac),
                }
            }
            _ => a.candidates.push(Layer::Dac),
        }

        // Landlock domains traced in the tree: direct evidence either way.
        let domains = self.trace.landlock.domains_of(f.origin.pid);
        let mut landlock_excluded = false;
        if f.errno != libc::EACCES {
            a.exclude(
                Layer::Landlock,
                format!(
                    "Landlock refuses file access with EACCES, never {}",
                    crate::model::errno::name(f.errno)
                ),
            );
            landlock_excluded = true;
        } else if let Some(n) = needed.as_ref().filter(|n| n.landlock != 0) {
            if let Some(why) = self.landlock_denial(f, n) {
                return a.decide(Layer::Landlock, Confidence::Direct, why);
            }
            let unknown: Vec<String> = domains
                .iter()
                .filter(|d| d.rules_unknown)
                .map(|d| d.id.to_string())
                .collect();
            if !unknown.is_empty() {
                a.evidence.push(format!(
                    "the process runs in Landlock domain(s) {} whose ruleset diag did not see being built: their rules are unknown",
                    unknown.join(",")
                ));
            } else if !domains.is_empty() {
                a.exclude(
                    Layer::Landlock,
                    format!(
                        "the traced Landlock domain(s) grant {} on {}",
                        n.what,
                        n.path.display()
                    ),
                );
                landlock_excluded = true;
            } else if self.trace.traced_from_start {
                a.exclude(
                    Layer::Landlock,
                    "no Landlock domain was created in the traced tree, which was traced from its start (only a domain diag itself runs in could confine it)",
                );
                landlock_excluded = true;
            }
        } else if needed.is_some()
            && !domains.is_empty()
            && domains.iter().all(|d| !d.rules_unknown)
        {
            a.exclude(
                Layer::Landlock,
                format!("Landlock does not restrict {}", f.syscall),
            );
            landlock_excluded = true;
        }

        // Elimination over the layers that remain.
        let fs_local = facts
            .own_mount()
            .is_some_and(|m| LOCAL_FS.contains(&m.fs_type.as_str()));
        if let Some(m) = facts.own_mount() {
            if fs_local {
                a.exclude(
                    None,
                    format!(
                        "{} is {}, which applies only the generic permission checks",
                        m.mount_point.display(),
                        m.fs_type
                    ),
                );
            } else {
                a.candidates.push(Layer::Unknown);
                a.evidence.push(format!(
                    "{} is {}, which may apply its own permission policy",
                    m.mount_point.display(),
                    m.fs_type
                ));
            }
        }
        let mut remaining: Vec<Layer> = DENYING_LSMS
            .iter()
            .filter(|(name, _)| self.host.has_lsm(name))
            .map(|&(_, l)| l)
            .filter(|&l| !(l == Layer::Landlock && landlock_excluded))
            .collect();
        if self.host.has_lsm("bpf") {
            match &self.host.bpf_lsm_programs {
                Some(progs) if progs.is_empty() => a.exclude(
                    Layer::BpfLsm,
                    "BPF LSM is enabled but no BPF LSM program is attached",
                ),
                Some(progs) => {
                    remaining.push(Layer::BpfLsm);
                    a.evidence
                        .push(format!("BPF LSM programs attached: {}", progs.join(", ")))
                }
                None => remaining.push(Layer::BpfLsm),
            }
        }
        for (name, layer) in DENYING_LSMS {
            if !self.host.has_lsm(name) && *layer != Layer::Lsm {
                a.exclude(
                    *layer,
                    format!(
                        "{name} is not among the active LSMs ({})",
                        self.host.lsms.join(",")
                    ),
                );
            }
        }
        let seccomp_excluded = a.ruled_out.iter().any(|r| r.layer == Some(Layer::Seccomp));
        let all_excluded = dac_excluded && seccomp_excluded && fs_local && a.candidates.is_empty();
        if all_excluded && remaining.len() == 1 {
            let layer = remaining[0];
            let why = format!(
                "by elimination: DAC allows it, seccomp did not intercept the call, {} is a local filesystem, and the active LSMs are {}; {} is the only layer left that can refuse it{}",
                facts.mount.as_ref().map(|m| m.mount_point.display().to_string()).unwrap_or_default(),
                self.host.lsms.join(","),
                layer.title(),
                if layer == Layer::Landlock && domains.iter().all(|d| d.rules_unknown) { " (the Landlock domain was created before tracing started, so its rules are not known)" } else { "" }
            );
            return a.decide(layer, Confidence::Inferred, why);
        }
        a.candidates.extend(remaining);
        a.candidates.sort();
        a.candidates.dedup();
        a.evidence.push(format!(
            "could not single out a layer: candidates {}",
            a.candidates
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        a
    }
}

fn mount_flags_text(m: Option<&crate::context::path::MountFacts>) -> String {
    let Some(m) = m else {
        return "unknown".into();
    };
    let flags: Vec<&str> = [
        (m.read_only, "ro"),
        (m.noexec, "noexec"),
        (m.nosuid, "nosuid"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| *name)
    .collect();
    if flags.is_empty() {
        "none of ro, noexec, nosuid".into()
    } else {
        flags.join(",")
    }
}

fn is_dac_cap(cap: u32) -> bool {
    use crate::context::process::{CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER};
    matches!(cap, CAP_DAC_OVERRIDE | CAP_DAC_READ_SEARCH | CAP_FOWNER)
}

fn is_prot_exec(f: &Failure) -> bool {
    matches!(f.syscall.as_str(), "mmap" | "mprotect" | "pkey_mprotect")
        && f.flags.is_some_and(|p| p & 4 != 0)
}

/// Kernel-function probes on the file path (where fexit loads). Landlock's hook runs only after
/// DAC allowed the open, so its verdict wins; `generic_permission` is the DAC check itself.
fn fexit_file_verdict(f: &Failure, probes: ProbesLive, a: Attribution) -> Option<Attribution> {
    let e = &f.evidence;
    if e.dac_denied && f.errno == libc::EACCES {
        return Some(a.decide(
            Layer::Dac,
            Confidence::Direct,
            "fexit on generic_permission returned an error during the call",
        ));
    }
    // security_file_open runs Landlock's hook too: it names another LSM only when that hook
    // was watched and stayed silent.
    if e.lsm_file_open_denied && probes.fexit_landlock {
        return Some(a.decide(
            Layer::Lsm,
            Confidence::Direct,
            "fexit on security_file_open returned an error during the call, and Landlock's hook did not",
        ));
    }
    None
}

/// execve of a file whose capabilities the process cannot receive fails with EPERM
/// (capabilities(7), "Safety checking for capability-dumb binaries").
fn unobtainable_file_caps(facts: &PathFacts, p: Option<&ProcessContext>) -> Option<String> {
    let caps = facts.file_caps.filter(|c| c.effective)?;
    let p = p.filter(|p| !p.from_event || p.at_failure)?;
    let missing = caps.unobtainable(p.cap_bounding, p.cap_inheritable);
    (missing != 0).then(|| {
        format!(
            "{} carries file capabilities {} with the effective bit; the process's bounding set ({:#x}) and inheritable set ({:#x}) cannot grant {}, so execve refuses it with EPERM",
            facts.path.display(),
            cap_names(caps.permitted),
            p.cap_bounding,
            p.cap_inheritable,
            cap_names(missing)
        )
    })
}

fn cap_names(bits: u64) -> String {
    (0..64)
        .filter(|c| bits & (1 << c) != 0)
        .map(cap_name)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests;

/// The layer that ended a process with `sig`, from the signal and its `si_code`.
fn killed_by(f: &Failure, sig: crate::model::DeathSignal, mut a: Attribution) -> Attribution {
    // A death is never noise, whatever call it happened on.
    a.noise = None;
    let name = crate::model::signal_name(sig.signal);
    let code = sig
        .code
        .map_or_else(|| "no siginfo".to_string(), |c| format!("si_code {c}"));
    match sig.signal {
        libc::SIGSYS if sig.code == Some(crate::model::SYS_SECCOMP) => a.decide(
            Layer::Seccomp,
            Confidence::Direct,
            format!(
                "{name} with si_code SYS_SECCOMP on {}: a seccomp filter killed the process (SECCOMP_RET_KILL_PROCESS/KILL_THREAD, or RET_TRAP with no handler)",
                f.syscall
            ),
        ),
        libc::SIGXFSZ => a.decide(
            Layer::Unknown,
            Confidence::Inferred,
            format!("{name} ({code}): the kernel sends it when a write exceeds RLIMIT_FSIZE (last failed call: {})", f.syscall),
        ),
        libc::SIGXCPU => a.decide(
            Layer::Unknown,
            Confidence::Inferred,
            format!("{name} ({code}): the kernel sends it when the process exceeds RLIMIT_CPU"),
        ),
        _ => a.decide(
            Layer::Unknown,
            Confidence::Inferred,
            format!("the kernel ended the process with {name} ({code}; last failed call: {})", f.syscall),
        ),
    }
}
