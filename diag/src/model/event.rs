//! The one event model every capture backend produces (eBPF, ptrace, strace log, audit log).

use super::text::Text;

/// Something the traced tree did that diag cares about, in time order.
#[derive(Clone, Debug)]
pub enum Event {
    Failure(Failure),
    /// More calls identical to a failure already sent (the kernel counts repeats rather than
    /// sending each): `failure.origin.time_ns` is the last one's time.
    Repeated {
        failure: Failure,
        times: u64,
    },
    /// A failure from a process's flight recorder (an errno or syscall diag does not report at
    /// once), sent when the process showed whether it mattered.
    Recent {
        failure: Failure,
        times: u64,
        flush: Flush,
    },
    Message(Message),
    Fork(Fork),
    Exec(Exec),
    Exit(Exit),
    Landlock(LandlockCall),
    /// A successful open whose fd a later Landlock rule may name.
    FdOpened {
        pid: u32,
        fd: i32,
        path: Text,
    },
    /// A successful dup (dup, dup2, dup3, fcntl F_DUPFD*) by a process that may hold a Landlock
    /// ruleset fd: `new` now refers to what `old` does.
    FdDup {
        pid: u32,
        old: i32,
        new: i32,
        cloexec: bool,
    },
    /// A successful close by a process that may hold a Landlock ruleset fd.
    FdClosed {
        pid: u32,
        fd: i32,
    },
}

/// What the process did after a recorded failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Wrote to stderr (or a terminal stdout).
    Complained,
    /// Exited with a non-zero status.
    FailedExit,
    /// A signal ended it.
    Signaled,
    /// Nothing yet: alive and silent when tracing ended.
    TraceEnd,
}

impl Flush {
    /// Whether the process showed trouble after the failure: only then is it a candidate.
    pub fn in_trouble(self) -> bool {
        self != Flush::TraceEnd
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Flush::Complained => "complained",
            Flush::FailedExit => "failed-exit",
            Flush::Signaled => "signaled",
            Flush::TraceEnd => "trace-end",
        }
    }
}

/// Which process, which thread, when.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// Monotonic nanoseconds (for logs, whatever the log's clock is).
    pub time_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub comm: Text,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// A syscall that failed with a watched errno.
#[derive(Clone, Debug, Default)]
pub struct Failure {
    pub origin: Origin,
    pub syscall: String,
    pub errno: i32,
    pub path: Option<Text>,
    /// The path argument was longer than the backend could copy (see [`PathCut`]).
    pub path_cut: Option<PathCut>,
    /// Raw flag argument where one matters (open flags, clone flags, mmap prot).
    pub flags: Option<u64>,
    /// The flags as text (`O_RDWR|O_NOCTTY`); set by backends that only have text.
    pub flags_text: Option<String>,
    /// Raw arguments, where the backend has them.
    pub args: Option<[u64; 6]>,
    pub evidence: KernelEvidence,
    /// Not a failed call but the process's death by this signal (`errno` 0; `syscall` the call
    /// it was killed on, or its last failed one).
    pub signal: Option<DeathSignal>,
    /// What the kernel read of the task (and of the file an fd-based call named) at the
    /// failure itself (eBPF): true whenever the failure is examined, even after the process exited.
    pub at_failure: Option<Box<FactsAtFailure>>,
}

/// The failing task as the kernel saw it when the call failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FactsAtFailure {
    pub cap_effective: u64,
    pub cap_bounding: u64,
    pub cap_inheritable: u64,
    pub no_new_privs: bool,
    /// RLIMIT_NPROC soft limit (None = unlimited).
    pub nproc_limit: Option<u64>,
    /// Tasks the kernel counted against the real uid's RLIMIT_NPROC.
    pub uid_tasks: u64,
    /// Flags of the mount the task's executable is on.
    pub exe_mount: Option<MountFlags>,
    pub pids: Option<PidsAtFailure>,
    /// The file an fd-based call named.
    pub file: Option<FileAtFailure>,
    /// The directory a relative path argument was relative to (the call's dirfd, else the
    /// cwd), in the task's mount tree.
    pub base_dir: Option<std::path::PathBuf>,
}

/// The pids cgroup (of the task's and its ancestors) with the least room left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PidsAtFailure {
    pub current: u64,
    /// None = "max".
    pub limit: Option<u64>,
    /// The cgroup's id (its directory's inode); 0 when the task is in the root cgroup.
    pub cgroup_id: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileAtFailure {
    pub mount: MountFlags,
    /// Where that mount is, in the task's mount tree (None when the kernel's walk was cut).
    pub mount_point: Option<std::path::PathBuf>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The filesystem type (`ext4`, `tmpfs`).
    pub fs_type: String,
}

/// A mount's flags, as the kernel keeps them (`MNT_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountFlags {
    pub nosuid: bool,
    pub noexec: bool,
    pub read_only: bool,
}

impl MountFlags {
    pub fn from_kernel(mnt_flags: u32) -> Self {
        MountFlags {
            nosuid: mnt_flags & 0x1 != 0,
            noexec: mnt_flags & 0x4 != 0,
            read_only: mnt_flags & 0x40 != 0,
        }
    }
}

/// A path argument's identity: the path, or a cut path's head with its [`PathCut`] measure.
pub type PathIdentity<'a> = (Option<&'a [u8]>, Option<(usize, Option<(u32, u64)>)>);

/// A path argument the backend copied only the head of. Failures are told apart by what the
/// backend saw: the head, the whole length and a hash of the rest, so distinct long paths never
/// fold into one, whether or not the whole path was read back later.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathCut {
    /// Bytes of the path the backend copied.
    pub head: usize,
    /// The whole path's length and a hash of the bytes past the head, as the kernel measured
    /// them (`diag_ebpf::path_tail_hash`); None when the backend could not tell.
    pub tail: Option<(u32, u64)>,
    /// The whole path was read back from the process and matched the kernel's measure: `path`
    /// holds all of it.
    pub resolved: bool,
}

impl Failure {
    /// The path was cut and is not known whole.
    pub fn path_truncated(&self) -> bool {
        self.path_cut.is_some_and(|c| !c.resolved)
    }

    /// What identifies the path argument: the path, or for a cut one what the backend saw of it
    /// (the same before and after it is resolved).
    pub fn path_identity(&self) -> PathIdentity<'_> {
        let path = self.path.as_ref().map(Text::as_bytes);
        match self.path_cut {
            None => (path, None),
            Some(c) => (
                path.map(|p| &p[..p.len().min(c.head)]),
                Some((c.head, c.tail)),
            ),
        }
    }

    /// The path for prose: a cut one ends with `…` (it names no file by itself).
    pub fn path_shown(&self) -> Option<String> {
        let p = self.path.as_ref()?.lossy();
        Some(if self.path_truncated() { p + "…" } else { p })
    }
}

/// What the kernel itself said about a failure while it happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelEvidence {
    /// The call reached `sys_exit` without `sys_enter`: a seccomp filter answered it.
    pub no_enter: bool,
    /// `cap_capable` refused this capability during the call.
    pub denied_capability: Option<u32>,
    pub selinux_denied: bool,
    /// Kernel-function probes (fexit) that saw their hook return an error.
    pub lsm_file_open_denied: bool,
    pub dac_denied: bool,
    pub landlock_denied: bool,
    pub seccomp_denied: bool,
    /// A seccomp stop (SECCOMP_RET_TRACE from diag's own filter) saw the call: no filter
    /// refused it, since a refusal (ERRNO, KILL, TRAP) outranks TRACE.
    pub seccomp_passed: bool,
    /// A ptrace call refused because the task it names (the caller itself for
    /// PTRACE_TRACEME) is traced by diag's ptrace backend: a task has one tracer.
    pub traced_by_diag: bool,
    pub pids_denied: bool,
    /// A kernel audit record that names the layer (from `analyze --audit`).
    pub audit: Option<AuditVerdict>,
    /// Which backend produced the event, so attribution knows what could have been seen.
    pub source: EvidenceSource,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EvidenceSource {
    /// Kernel tracepoints saw the call: `no_enter` and `denied_capability` are meaningful.
    #[default]
    Kernel,
    /// ptrace or a strace log: only the call and its result are known.
    CallOnly,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditVerdict {
    /// A layer name from the vocabulary (`landlock`, `selinux`, `apparmor`, `seccomp`).
    pub layer: String,
    pub record: String,
    /// What the record says in its layer's terms (contexts, profile, domain), and what would
    /// allow the access (the `allow` rule, the profile line, the Landlock rule), as
    /// audit2why would; escaped.
    pub explained: Option<String>,
    pub remedy: Option<String>,
}

/// Bytes a traced process wrote to its stdout or stderr.
#[derive(Clone, Debug)]
pub struct Message {
    pub origin: Origin,
    pub fd: i32,
    pub text: Text,
    pub truncated: bool,
}

#[derive(Clone, Debug)]
pub struct Fork {
    pub time_ns: u64,
    pub parent_pid: u32,
    pub child_pid: u32,
    pub comm: Text,
}

#[derive(Clone, Debug)]
pub struct Exec {
    pub origin: Origin,
    pub filename: Text,
}

#[derive(Clone, Debug)]
pub struct Exit {
    pub time_ns: u64,
    pub pid: u32,
    /// Exit status where the backend knows it.
    pub status: Option<i32>,
    /// The signal that ended the process, where the backend saw it.
    pub signal: Option<DeathSignal>,
}

/// A signal that ended a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeathSignal {
    pub signal: i32,
    /// Its `si_code`, when the signal carried a siginfo (a SIGKILL carries none).
    pub code: Option<i32>,
    /// `si_pid` for a signal another process sent (SI_USER, SI_TKILL, SI_QUEUE).
    pub sender: Option<u32>,
    /// The syscall a seccomp filter killed the process on (SIGSYS with SYS_SECCOMP).
    pub syscall: Option<u32>,
}

/// A successful Landlock syscall in the traced tree.
#[derive(Clone, Debug)]
pub struct LandlockCall {
    pub origin: Origin,
    pub op: LandlockOp,
}

#[derive(Clone, Debug)]
pub enum LandlockOp {
    CreateRuleset {
        fd: i32,
        handled_fs: u64,
        handled_net: u64,
        scoped: u64,
    },
    AddPathRule {
        ruleset_fd: i32,
        parent_fd: i32,
        allowed: u64,
    },
    AddNetRule {
        ruleset_fd: i32,
        port: u64,
        allowed: u64,
    },
    RestrictSelf {
        ruleset_fd: i32,
        flags: u32,
    },
}

/// Counters a backend reports at the end.
#[derive(Clone, Debug, Default)]
pub struct CaptureStats {
    pub lost_events: u64,
    pub process_forks: u64,
    pub thread_forks: u64,
    pub messages_dropped: u64,
    pub untracked_tasks: u64,
    /// Failures the flight recorders could not hold (recorder map full).
    pub unrecorded_failures: u64,
}

impl Event {
    pub fn time_ns(&self) -> u64 {
        match self {
            Event::Failure(f) => f.origin.time_ns,
            Event::Repeated { failure, .. } | Event::Recent { failure, .. } => {
                failure.origin.time_ns
            }
            Event::Message(m) => m.origin.time_ns,
            Event::Fork(f) => f.time_ns,
            Event::Exec(e) => e.origin.time_ns,
            Event::Exit(e) => e.time_ns,
            Event::Landlock(l) => l.origin.time_ns,
            Event::FdOpened { .. } | Event::FdDup { .. } | Event::FdClosed { .. } => 0,
        }
    }
}

impl DeathSignal {
    /// The kernel (or a sandbox in it) sent the signal, not another process: a fault, a
    /// seccomp kill, an rlimit. A SIGKILL carries no sender and is left out, and so are the
    /// terminal's and the pipe's signals (a hangup when the session's terminal closes is the
    /// kernel's, but no sandbox's).
    pub fn from_kernel(&self, pid: u32) -> bool {
        const SANDBOX_OR_FAULT: [i32; 8] = [
            libc::SIGSYS,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGXCPU,
            libc::SIGXFSZ,
            libc::SIGKILL,
        ];
        if !SANDBOX_OR_FAULT.contains(&self.signal) {
            return false;
        }
        // The kernel's own sends: a positive si_code (a fault, SYS_SECCOMP), SI_KERNEL
        // (SIGXCPU, SIGKILL), or SI_USER from the process itself (SIGXFSZ's send_sig).
        match self.code {
            None => false,
            Some(c) if c > 0 || c == libc::SI_KERNEL => true,
            Some(_) => self.sender.is_some_and(|s| s == pid),
        }
    }
}

/// `si_code` of a SIGSYS a seccomp filter sent (SECCOMP_RET_KILL_*, or RET_TRAP unhandled).
pub const SYS_SECCOMP: i32 = 1;

/// A signal's name (`SIGSYS`), or its number.
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

#[cfg(test)]
mod tests {
    use super::DeathSignal;

    fn death(signal: i32, code: i32, sender: Option<u32>) -> DeathSignal {
        DeathSignal {
            signal,
            code: Some(code),
            sender,
            syscall: None,
        }
    }

    #[test]
    fn sandbox_kills_and_faults_are_the_kernels_but_a_hangup_is_no_sandbox() {
        const SEGV_MAPERR: i32 = 1;
        assert!(death(libc::SIGSYS, super::SYS_SECCOMP, None).from_kernel(7));
        assert!(death(libc::SIGSEGV, SEGV_MAPERR, None).from_kernel(7));
        assert!(death(libc::SIGXFSZ, libc::SI_USER, Some(7)).from_kernel(7));
        assert!(death(libc::SIGXCPU, libc::SI_KERNEL, None).from_kernel(7));
        // Someone else's kill -XFSZ is no limit the kernel enforced.
        assert!(!death(libc::SIGXFSZ, libc::SI_USER, Some(9)).from_kernel(7));
        assert!(death(libc::SIGKILL, libc::SI_KERNEL, None).from_kernel(7));
        // The session's terminal closed: the kernel hangs up, no sandbox refused anything.
        assert!(!death(libc::SIGHUP, libc::SI_KERNEL, None).from_kernel(7));
        assert!(!death(libc::SIGPIPE, libc::SI_USER, Some(7)).from_kernel(7));
        // Another process's kill.
        assert!(!death(libc::SIGSEGV, libc::SI_USER, Some(9)).from_kernel(7));
        assert!(!death(libc::SIGABRT, libc::SI_TKILL, Some(7)).from_kernel(7));
    }
}
