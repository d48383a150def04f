//! The event ABI shared by diag's eBPF programs (`main.rs`, built for bpfel) and its userspace
//! loader (built for the host). Every struct that crosses the ring buffer is defined here once.
#![no_std]

/// Bytes of a path, a message or a syscall-specific struct carried by one event.
pub const DATA_LEN: usize = 256;
/// `TASK_COMM_LEN` in the kernel.
pub const COMM_LEN: usize = 16;
/// Syscall numbers the per-syscall tables cover (x86_64 uses < 470).
pub const MAX_SYSCALLS: usize = 512;
/// Errno values the errno mask covers (EHWPOISON is 133).
pub const MAX_ERRNO: usize = 192;
/// ENOENT, ENXIO, ENODEV: watched on paths under /dev/ when `DIAG_DEV_ERRNOS` is set.
pub const DEV_ERRNOS: [u32; 3] = [2, 6, 19];
/// ENOENT, ENOEXEC, ENOSPC, EMFILE, ENFILE: bit i of `DIAG_SCOPED_ERRNOS[nr]` watches the i-th
/// for syscall nr only (userspace's `model::errno::SCOPED_ERRNOS`, same order).
pub const SCOPED_ERRNOS: [u32; 5] = [2, 8, 28, 24, 23];

/// `EventHeader::kind` values.
pub mod kind {
    /// A [`super::SyscallEvent`].
    pub const SYSCALL: u32 = 1;
    /// A [`super::ProcEvent`] for a new process (threads are only counted): `child_tid` is
    /// its pid and `parent_tgid` its parent's. Sent twice per process, by the parent when its
    /// clone returns and by the child when it first runs, whichever comes first: a parent can act
    /// before its child runs, and a vfork parent resumes only after its child exec'd or exited.
    pub const FORK: u32 = 2;
    /// A [`super::ProcEvent`] for an exec.
    pub const EXEC: u32 = 3;
    /// A [`super::ProcEvent`] for a thread-group leader's exit.
    pub const EXIT: u32 = 4;
    /// A [`super::RecentFailure`] from a process's flight recorder.
    pub const RECENT: u32 = 5;
}

/// Failed calls a process's flight recorder keeps (a power of two: slots are indexed by mask).
pub const RECENT_SLOTS: usize = 32;

/// `RecentFailure::flush`: what made the kernel send a process's recorder.
pub mod flush {
    /// The process wrote to its stderr (or stdout, when diag was told it is a terminal).
    pub const COMPLAINED: u32 = 1;
    /// The process exited with a non-zero status.
    pub const FAILED_EXIT: u32 = 2;
    /// A signal ended the process.
    pub const SIGNALED: u32 = 3;
    /// Read by diag when tracing ended, the process still alive and silent.
    pub const TRACE_END: u32 = 4;
}

/// One failed call in a flight recorder: a failure with an errno diag does not report at once
/// (or of a syscall it does not watch), kept until the process shows whether it mattered.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RecentFailure {
    /// `header.kind` is [`kind::RECENT`], `reason` [`reason::FAILED`]; no kernel evidence bits
    /// (the call's entry was not followed).
    pub event: SyscallEvent,
    /// Identical calls (same thread, syscall, result, arguments) right after it.
    pub repeats: u64,
    pub last_ns: u64,
    /// A [`flush`] value, set when sent.
    pub flush: u32,
    pub _pad: u32,
}

/// A process's flight recorder: the last [`RECENT_SLOTS`] failed calls, oldest overwritten.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Recorder {
    /// Failures recorded since the last flush (slot = `next % RECENT_SLOTS`).
    pub next: u32,
    pub _pad: u32,
    pub slots: [RecentFailure; RECENT_SLOTS],
}

/// Writes to stdout/stderr past a process's message budget that are kept anyway (a power of
/// two): the line that matters in a traceback or a long error log is usually its last.
pub const TAIL_SLOTS: usize = 8;

/// The newest [`TAIL_SLOTS`] writes a process made after its message budget ran out, sent as
/// ordinary message records when it exits (or read by diag when tracing ends).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MessageTail {
    /// Writes kept so far (slot = `next % TAIL_SLOTS`).
    pub next: u32,
    pub _pad: u32,
    pub slots: [SyscallEvent; TAIL_SLOTS],
}

/// `SyscallEvent::reason`: why the kernel emitted this syscall exit.
pub mod reason {
    /// It failed with a watched errno.
    pub const FAILED: u32 = 1;
    /// A successful write to fd 1 or 2: `data` holds the first bytes written.
    pub const MESSAGE: u32 = 2;
    /// A successful `landlock_*` call: `data` holds its attribute struct.
    pub const LANDLOCK: u32 = 3;
    /// A successful open by a process building a Landlock ruleset: `ret` is the fd and `data` the
    /// path, so the rule's `parent_fd` can be named without racing `close()`.
    pub const FD_PATH: u32 = 4;
    /// A successful dup (dup, dup2, dup3, fcntl F_DUPFD*) by a process that may hold a Landlock
    /// ruleset fd: `ret` is the new fd.
    pub const FD_DUP: u32 = 5;
    /// A successful close by a process that may hold a Landlock ruleset fd.
    pub const FD_CLOSE: u32 = 6;
}

/// `SyscallEvent::evidence` bits: what the kernel saw during the call.
pub mod evidence {
    /// `sys_exit` without a matching `sys_enter`: a seccomp filter answered before the syscall ran.
    pub const NO_ENTER: u32 = 1 << 0;
    /// `capability:cap_capable` returned non-zero during the call (`denied_cap` names it).
    pub const CAP_DENIED: u32 = 1 << 1;
    /// `avc:selinux_audited` reported a denial during the call.
    pub const SELINUX_DENIED: u32 = 1 << 2;
    /// fexit on `security_file_open` saw a non-zero return (LSM hook said no).
    pub const LSM_FILE_OPEN_DENIED: u32 = 1 << 3;
    /// fexit on `generic_permission` saw a non-zero return (DAC said no).
    pub const DAC_DENIED: u32 = 1 << 4;
    /// fexit on Landlock's `hook_file_open` saw a non-zero return.
    pub const LANDLOCK_DENIED: u32 = 1 << 5;
    /// fexit on `__secure_computing` saw a non-zero return.
    pub const SECCOMP_DENIED: u32 = 1 << 6;
    /// fexit on `pids_can_fork` saw a non-zero return (the pids cgroup refused).
    pub const PIDS_DENIED: u32 = 1 << 7;
    /// `data` was truncated to [`super::DATA_LEN`] bytes.
    pub const DATA_TRUNCATED: u32 = 1 << 8;
}

/// Indexes into the per-CPU `COUNTERS` array.
pub mod counter {
    /// Events that found the ring buffer full.
    pub const LOST_EVENTS: u32 = 0;
    /// Successful fork/vfork/clone calls that made a process in the traced tree.
    pub const PROCESS_FORKS: u32 = 1;
    /// Successful clone calls that made a thread in the traced tree.
    pub const THREAD_FORKS: u32 = 2;
    /// Writes to fd 1/2 not captured: past the process's message budget and pushed out of its tail.
    pub const MESSAGES_DROPPED: u32 = 3;
    /// Tasks that could not be tracked because the task map was full.
    pub const UNTRACKED_TASKS: u32 = 4;
    /// Failures not recorded because the recorder map was full.
    pub const UNRECORDED_FAILURES: u32 = 5;
    pub const COUNT: u32 = 6;
}

/// A child forked by a traced task that has not run yet, keyed by its `task_struct` address.
/// The child adopts it on its first return to user space (`sys_exit` of the clone), where its
/// own pid is at hand: a raw tracepoint gives `sched_process_fork` only task pointers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Newborn {
    pub parent_tgid: u32,
    pub _pad: u32,
    pub fork_ns: u64,
}

/// The filename a traced task passed to `execve`, kept from `sys_enter` to `sched_process_exec`
/// (where the caller's memory is gone).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecPath {
    pub len: u32,
    pub _pad: u32,
    pub bytes: [u8; DATA_LEN],
}

/// Common prefix of every ring buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EventHeader {
    pub kind: u32,
    pub tid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub ktime_ns: u64,
    pub comm: [u8; COMM_LEN],
}

/// One syscall exit the kernel chose to report.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallEvent {
    pub header: EventHeader,
    pub nr: u32,
    pub reason: u32,
    pub ret: i64,
    pub args: [u64; 6],
    pub evidence: u32,
    /// The capability `cap_capable` refused, or -1.
    pub denied_cap: i32,
    pub cgroup_id: u64,
    pub data_len: u32,
    pub gid: u32,
    /// A failure's path argument: its whole length and [`path_tail_hash`] of what `data` could
    /// not hold (see [`FailureKey::path_full_len`]).
    pub path_full_len: u32,
    pub _pad: u32,
    pub path_tail_hash: u64,
    pub data: [u8; DATA_LEN],
    /// What the kernel knew of the task at a reported failure (`reason::FAILED` only).
    pub task: TaskFacts,
    /// The file behind an fd-based call's descriptor (`task.known & facts::FILE`).
    pub file: FileFacts,
}

/// `TaskFacts::known` bits: which facts the kernel read at the failure.
pub mod facts {
    /// Credentials, RLIMIT_NPROC and the uid's task count, no_new_privs.
    pub const TASK: u32 = 1 << 0;
    /// The pids cgroup nearest its limit among the task's pids cgroup and its ancestors.
    pub const PIDS: u32 = 1 << 1;
    /// [`super::FileFacts`] of the call's descriptor.
    pub const FILE: u32 = 1 << 2;
    /// `data` holds the file's path components, leaf first, each NUL-terminated (the path
    /// argument of a call that has none).
    pub const FILE_NAME: u32 = 1 << 3;
    /// The path's components reached the root of the task's mount tree (else its head is cut).
    pub const FILE_NAME_WHOLE: u32 = 1 << 4;
    /// The task's executable's mount flags are in `exe_mnt_flags`.
    pub const EXE: u32 = 1 << 5;
    /// A relative path argument: after its NUL, `data` holds the components of the directory it
    /// is relative to (the call's dirfd, else the task's cwd), leaf first, as for `FILE_NAME`.
    pub const BASE_NAME: u32 = 1 << 6;
}

/// The failing task as the kernel saw it at the failure: read from its `task_struct` then, so
/// a process that exits right after failing (the usual case) is still judged on its own facts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskFacts {
    /// [`facts`] bits.
    pub known: u32,
    pub no_new_privs: u32,
    /// `MNT_*` flags of the mount the task's executable lives on.
    pub exe_mnt_flags: u32,
    /// Where the names walked for `FILE_NAME` / `BASE_NAME` end in `data`.
    pub names_end: u32,
    pub cap_effective: u64,
    pub cap_bounding: u64,
    pub cap_inheritable: u64,
    /// RLIMIT_NPROC (soft, hard; `u64::MAX` = unlimited).
    pub nproc_cur: u64,
    pub nproc_max: u64,
    /// Tasks the kernel counts against the real uid's RLIMIT_NPROC (its ucounts).
    pub uid_tasks: u64,
    /// The pids cgroup: tasks charged, its `pids.max` and its kernfs id (the cgroup's inode).
    pub pids_current: i64,
    pub pids_limit: i64,
    pub pids_cgroup_id: u64,
}

/// The file an fd-based call (`mmap`, `fchmod`...) named by its descriptor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FileFacts {
    /// `vfsmount::mnt_flags` (`MNT_NOSUID` 1, `MNT_NODEV` 2, `MNT_NOEXEC` 4, `MNT_READONLY` 0x40).
    pub mnt_flags: u32,
    /// `i_mode`, owner and group (kernel ids, as seen from the initial user namespace).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The filesystem type's name (`file_system_type::name`), NUL-padded.
    pub fs_type: [u8; FS_TYPE_LEN],
}

/// Bytes of a filesystem type's name the kernel copies (`fuse.sshfs` fits).
pub const FS_TYPE_LEN: usize = 16;

/// Indexes into `DIAG_KERNEL_OFFSETS`: byte offsets of the kernel struct members the facts
/// are read from, found in the running kernel's BTF by the loader (struct layouts are no ABI).
pub mod koff {
    pub const TASK_CRED: usize = 0;
    pub const TASK_SIGNAL: usize = 1;
    pub const TASK_FILES: usize = 2;
    pub const TASK_CGROUPS: usize = 3;
    pub const TASK_ATOMIC_FLAGS: usize = 4;
    pub const TASK_MM: usize = 5;
    pub const CRED_CAP_INHERITABLE: usize = 6;
    pub const CRED_CAP_EFFECTIVE: usize = 7;
    pub const CRED_CAP_BSET: usize = 8;
    pub const CRED_UCOUNTS: usize = 9;
    /// `ucounts::rlimit[UCOUNT_RLIMIT_NPROC]`.
    pub const UCOUNTS_NPROC: usize = 10;
    /// `signal_struct::rlim[RLIMIT_NPROC]`.
    pub const SIGNAL_RLIM_NPROC: usize = 11;
    /// `css_set::subsys[pids_cgrp_id]`.
    pub const CSS_SET_PIDS: usize = 12;
    pub const PIDS_COUNTER: usize = 13;
    pub const PIDS_LIMIT: usize = 14;
    pub const CSS_PARENT: usize = 15;
    pub const CSS_CGROUP: usize = 16;
    pub const CGROUP_KN: usize = 17;
    pub const KN_ID: usize = 18;
    pub const FILES_FDT: usize = 19;
    pub const FDT_MAX_FDS: usize = 20;
    pub const FDT_FD: usize = 21;
    pub const FILE_MNT: usize = 22;
    pub const FILE_DENTRY: usize = 23;
    pub const FILE_INODE: usize = 24;
    pub const VFSMOUNT_ROOT: usize = 25;
    pub const VFSMOUNT_FLAGS: usize = 26;
    /// `mount::mnt` (the embedded `vfsmount`), `mount::mnt_parent`, `mount::mnt_mountpoint`.
    pub const MOUNT_MNT: usize = 27;
    pub const MOUNT_PARENT: usize = 28;
    pub const MOUNT_MOUNTPOINT: usize = 29;
    pub const INODE_MODE: usize = 30;
    pub const INODE_UID: usize = 31;
    pub const INODE_GID: usize = 32;
    pub const INODE_SB: usize = 33;
    /// `super_block::s_type`, `file_system_type::name`.
    pub const SB_TYPE: usize = 34;
    pub const FS_TYPE_NAME: usize = 35;
    pub const DENTRY_NAME: usize = 36;
    pub const DENTRY_PARENT: usize = 37;
    pub const MM_EXE_FILE: usize = 38;
    /// `task_struct::fs`, `fs_struct::pwd.mnt`, `fs_struct::pwd.dentry`.
    pub const TASK_FS: usize = 39;
    pub const FS_PWD_MNT: usize = 40;
    pub const FS_PWD_DENTRY: usize = 41;
    pub const COUNT: usize = 42;
}

/// `DIAG_DIRFD_ARG[nr]` for syscalls whose path is never relative to a dirfd (plain `open`,
/// `execve`...): a relative path is the cwd's.
pub const NO_DIRFD_ARG: u8 = 0xff;
/// `AT_FDCWD`.
pub const AT_FDCWD: i32 = -100;

/// `DIAG_FD_ARG[nr]` for syscalls without a descriptor argument worth naming.
pub const NO_FD_ARG: u8 = 0xff;
/// Path components the kernel walks up from a file (deeper paths keep their leaf end).
pub const FILE_NAME_DEPTH: usize = 24;

/// A process-tree change: fork, exec or exit.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcEvent {
    pub header: EventHeader,
    /// Fork: the parent process.
    pub parent_tgid: u32,
    /// Fork: the new process. Exec: the pid the task had before (a thread that exec'd).
    pub child_tid: u32,
    pub filename_len: u32,
    /// Exit: the status the process passed to exit_group (0-255); -1 when it passed none (a
    /// signal ended it) and for other kinds.
    pub exit_status: i32,
    /// Exit without a status: the last signal delivered to the process (0 = none seen), its
    /// `si_code`, `si_pid` and, for a seccomp SIGSYS, `si_syscall` (-1 otherwise).
    pub signal: i32,
    pub signal_code: i32,
    pub signal_sender: u32,
    pub signal_syscall: i32,
    /// The exec'd filename (exec only).
    pub filename: [u8; DATA_LEN],
}

/// The last signal delivered to a traced process (see `ProcEvent::signal`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DeliveredSignal {
    pub signal: i32,
    pub code: i32,
    pub sender: u32,
    pub syscall: i32,
}

/// Per-task state in the kernel's task map, keyed by tid. The same entry marks the task as
/// traced and carries its in-flight syscall, so each syscall costs one map lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskState {
    /// The syscall entered and not yet exited, plus one (0 = none in flight).
    pub inflight_nr: u32,
    pub evidence: u32,
    pub denied_cap: i32,
    pub _pad: u32,
    /// When the kernel started tracking the task: a recycled tid is a new task.
    pub since_ns: u64,
}

/// What makes two failed calls the same failure: the kernel reports the first one and counts
/// the rest in its `REPEATS` map (a denial in a retry loop costs no ring buffer record), and
/// userspace adds those counts when the capture ends. At least as fine as the report's own
/// grouping (pid, syscall, errno, path, evidence), so no two groups ever merge.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FailureKey {
    pub tid: u32,
    pub tgid: u32,
    /// The task's `TaskState::since_ns`.
    pub since_ns: u64,
    pub nr: u32,
    pub errno: u32,
    pub evidence: u32,
    pub denied_cap: i32,
    /// Bytes of `path` with the NUL.
    pub path_len: u32,
    /// The whole path's length without the NUL ([`PATH_LEN_UNKNOWN`] when its tail could not
    /// be read): more than `DATA_LEN - 1` means `path` holds only its head.
    pub path_full_len: u32,
    /// [`path_tail_hash`] of the bytes past the head (0 when there are none): distinct long
    /// paths with the same head stay distinct failures.
    pub path_tail_hash: u64,
    /// In the key so that a repeat can be folded like its first report (by command name).
    pub comm: [u8; COMM_LEN],
    /// The path argument, zero-padded so equal paths make equal keys.
    pub path: [u8; DATA_LEN],
}

/// `path_full_len` of a path whose tail the kernel could not read.
pub const PATH_LEN_UNKNOWN: u32 = u32::MAX;
/// Bytes of a path the kernel copies: `DATA_LEN` with the NUL.
pub const PATH_HEAD: usize = DATA_LEN - 1;
/// Chunks of `PATH_HEAD` bytes the kernel hashes past the head: PATH_MAX (4096) is covered.
pub const PATH_TAIL_CHUNKS: usize = 16;
/// FNV-1a's offset basis and prime, applied a 64-bit word at a time.
pub const PATH_HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;
const PATH_HASH_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Folds one chunk of a path's tail (read as a NUL-terminated string into a zeroed
/// `DATA_LEN`-byte buffer, seen as words) into `hash`.
#[inline(always)]
pub fn path_hash_chunk(mut hash: u64, words: &[u64; DATA_LEN / 8]) -> u64 {
    let mut i = 0;
    while i < DATA_LEN / 8 {
        hash = (hash ^ words[i]).wrapping_mul(PATH_HASH_PRIME);
        i += 1;
    }
    hash
}

/// What the kernel measures of `path` (without its NUL) past its head, computed as it does:
/// (`path_full_len`, `path_tail_hash`). Userspace checks a path read back from a process
/// against it.
pub fn path_tail_hash(path: &[u8]) -> (u32, u64) {
    if path.len() <= PATH_HEAD {
        return (path.len() as u32, 0);
    }
    let mut hash = PATH_HASH_SEED;
    let mut at = PATH_HEAD;
    for _ in 0..PATH_TAIL_CHUNKS {
        let chunk = &path[at..path.len().min(at + PATH_HEAD)];
        let mut bytes = [0u8; DATA_LEN];
        bytes[..chunk.len()].copy_from_slice(chunk);
        let mut words = [0u64; DATA_LEN / 8];
        for (w, b) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        }
        hash = path_hash_chunk(hash, &words);
        // A full chunk: the kernel reads on (and finds at least the NUL).
        if chunk.len() < PATH_HEAD {
            break;
        }
        at += PATH_HEAD;
    }
    (path.len() as u32, hash)
}

/// Repeats of a reported failure (not counting the reported one).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Repeats {
    pub count: u64,
    pub last_ns: u64,
}

/// Symbol names of the globals the loader overrides before load. Tracepoint field offsets and
/// argument positions come from tracefs at load time, never hard-coded: layouts change between
/// kernels.
pub mod globals {
    pub const ERRNO_MASK: &str = "DIAG_ERRNO_MASK";
    pub const SYSCALL_MASK: &str = "DIAG_SYSCALL_MASK";
    pub const PATH_ARG: &str = "DIAG_PATH_ARG";
    pub const DEV_ERRNOS: &str = "DIAG_DEV_ERRNOS";
    pub const SCOPED_ERRNOS: &str = "DIAG_SCOPED_ERRNOS";
    pub const CGROUP_ID: &str = "DIAG_CGROUP_ID";
    pub const MESSAGE_BURST: &str = "DIAG_MESSAGE_BURST";
    pub const WAKEUP_BYTES: &str = "DIAG_WAKEUP_BYTES";
    pub const PIDNS_DEV: &str = "DIAG_PIDNS_DEV";
    pub const PIDNS_INO: &str = "DIAG_PIDNS_INO";
    pub const SELF_TGID: &str = "DIAG_SELF_TGID";
    pub const CAP_CAP_ARG: &str = "DIAG_CAP_CAP_ARG";
    pub const CAP_RET_ARG: &str = "DIAG_CAP_RET_ARG";
    pub const AVC_DENIED_OFF: &str = "DIAG_AVC_DENIED_OFF";
    pub const STDOUT_COMPLAINS: &str = "DIAG_STDOUT_COMPLAINS";
    pub const KERNEL_OFFSETS: &str = "DIAG_KERNEL_OFFSETS";
    pub const KERNEL_FACTS: &str = "DIAG_KERNEL_FACTS";
    pub const FD_ARG: &str = "DIAG_FD_ARG";
    pub const DIRFD_ARG: &str = "DIAG_DIRFD_ARG";
}

/// `DIAG_PATH_ARG[nr]` for syscalls with no path argument.
pub const NO_PATH_ARG: u8 = 0xff;
/// `DIAG_PATH_ARG[nr]` marking a write-like syscall whose fd-1/2 output is a message
/// (`write`: arg 1 is the buffer).
pub const MESSAGE_WRITE: u8 = 0xfe;
/// `DIAG_PATH_ARG[nr]` marking `writev`: arg 1 is an iovec array.
pub const MESSAGE_WRITEV: u8 = 0xfd;

// SAFETY: plain-old-data, `#[repr(C)]`; any bit pattern is a valid value.
#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::EventHeader {}
    unsafe impl aya::Pod for super::SyscallEvent {}
    unsafe impl aya::Pod for super::ProcEvent {}
    unsafe impl aya::Pod for super::TaskState {}
    unsafe impl aya::Pod for super::FailureKey {}
    unsafe impl aya::Pod for super::Repeats {}
    unsafe impl aya::Pod for super::RecentFailure {}
    unsafe impl aya::Pod for super::Recorder {}
    unsafe impl aya::Pod for super::MessageTail {}
}

/// Reads a `T` from the front of `bytes` (a ring buffer record), or `None` when too short.
#[cfg(feature = "user")]
pub fn read_record<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < core::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: length checked above; T is Pod, so any bit pattern is valid.
    Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}
