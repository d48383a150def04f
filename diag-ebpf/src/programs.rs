//! diag's kernel side (built for bpfel only): follow a process tree and report its failed syscalls, filtered in the
//! kernel, plus the evidence of which layer refused them.
//!
//! Every syscall on the host runs `sys_enter` and `sys_exit`; a map lookup is paid only for
//! watched syscalls and the few whose success diag follows. Only the first of identical failures
//! with a watched errno (or a message write, a Landlock call, a new process) reaches userspace.
// Map keys and values are passed by reference on purpose: a by-value `FailureKey` (320 bytes)
// or `ExecPath` would be copied onto the 512-byte BPF stack.
#![allow(clippy::needless_borrows_for_generic_args)]
use aya_ebpf::{
    bindings::{
        BPF_F_NO_PREALLOC, BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP,
    },
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_uid_gid, bpf_ktime_get_ns,
        bpf_probe_read_kernel, bpf_probe_read_user, bpf_probe_read_user_buf,
        bpf_probe_read_user_str_bytes,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_probe_read_kernel_str,
            bpf_probe_read_user_str,
        },
    },
    macros::{fexit, map, raw_tracepoint, tracepoint},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{FExitContext, RawTracePointContext, TracePointContext},
    EbpfContext,
};
use core::intrinsics::{atomic_xadd, AtomicOrdering};
use diag_ebpf::{
    counter, evidence, facts, flush, kind, koff, path_hash_chunk, reason, DeliveredSignal,
    EventHeader, ExecPath, FailureKey, MessageTail, Newborn, ProcEvent, Recorder, Repeats,
    SyscallEvent, TaskState, AT_FDCWD, COMM_LEN, DATA_LEN, DEV_ERRNOS, FILE_NAME_DEPTH,
    FS_TYPE_LEN, MAX_ERRNO, MAX_SYSCALLS, MESSAGE_WRITE, MESSAGE_WRITEV, NO_DIRFD_ARG, NO_FD_ARG,
    NO_PATH_ARG, PATH_HASH_SEED, PATH_HEAD, PATH_LEN_UNKNOWN, PATH_TAIL_CHUNKS, RECENT_SLOTS,
    SCOPED_ERRNOS, TAIL_SLOTS,
};

// ---- configuration, overridden by the loader before load ----------------------------------

/// Bit n set: errno n is watched.
#[no_mangle]
static DIAG_ERRNO_MASK: [u64; MAX_ERRNO / 64] = [0; MAX_ERRNO / 64];
/// Bit n set: syscall n is watched.
#[no_mangle]
static DIAG_SYSCALL_MASK: [u64; MAX_SYSCALLS / 64] = [0; MAX_SYSCALLS / 64];
/// Per syscall: which argument is a user path, or NO_PATH_ARG / MESSAGE_WRITE / MESSAGE_WRITEV.
#[no_mangle]
static DIAG_PATH_ARG: [u8; MAX_SYSCALLS] = [NO_PATH_ARG; MAX_SYSCALLS];
/// Non-zero: also report `DEV_ERRNOS` on paths under /dev/ (a missing device is a real cause).
#[no_mangle]
static DIAG_DEV_ERRNOS: u8 = 0;
/// Per syscall: bit i set reports `SCOPED_ERRNOS[i]` for that syscall only.
#[no_mangle]
static DIAG_SCOPED_ERRNOS: [u8; MAX_SYSCALLS] = [0; MAX_SYSCALLS];
/// Non-zero: also trace every task whose cgroup (v2) id is this.
#[no_mangle]
static DIAG_CGROUP_ID: u64 = 0;
/// Ring buffer backlog (bytes) from which a submit wakes the reader; below it the reader finds
/// the records on its next poll tick.
#[no_mangle]
static DIAG_WAKEUP_BYTES: u64 = 0;
/// Messages a process may emit before its budget is spent.
#[no_mangle]
static DIAG_MESSAGE_BURST: u32 = 64;
/// diag's own pid namespace (`st_dev`, `st_ino` of /proc/self/ns/pid): a clone returns the
/// child's pid as seen from the caller's namespace, which is diag's pid only in this one.
#[no_mangle]
static DIAG_PIDNS_DEV: u64 = 0;
#[no_mangle]
static DIAG_PIDNS_INO: u64 = 0;
/// diag's own pid in that namespace: diag never traces itself (attached to a cgroup it is in).
#[no_mangle]
static DIAG_SELF_TGID: u32 = 0;
/// Positions of `cap` and `ret` among `cap_capable`'s raw tracepoint arguments.
#[no_mangle]
static DIAG_CAP_CAP_ARG: u32 = 3;
#[no_mangle]
static DIAG_CAP_RET_ARG: u32 = 4;
#[no_mangle]
static DIAG_AVC_DENIED_OFF: u32 = 0;
/// Non-zero: a write to stdout is a complaint too (diag was told stdout is a terminal).
#[no_mangle]
static DIAG_STDOUT_COMPLAINS: u8 = 0;

/// Byte offsets of kernel struct members (`koff` indexes), from the running kernel's BTF.
#[no_mangle]
static DIAG_KERNEL_OFFSETS: [u32; koff::COUNT] = [0; koff::COUNT];
/// `facts` bits whose offsets the loader found: only those facts are read.
#[no_mangle]
static DIAG_KERNEL_FACTS: u32 = 0;
/// Per syscall: which argument is a file descriptor whose file a failure should name.
#[no_mangle]
static DIAG_FD_ARG: [u8; MAX_SYSCALLS] = [NO_FD_ARG; MAX_SYSCALLS];

/// Per syscall: which argument is the dirfd a relative path argument is resolved against.
#[no_mangle]
static DIAG_DIRFD_ARG: [u8; MAX_SYSCALLS] = [NO_DIRFD_ARG; MAX_SYSCALLS];

#[inline(always)]
fn cfg<T: Copy>(v: &T) -> T {
    // SAFETY: the loader rewrites these in .rodata; volatile stops the compiler folding them.
    unsafe { core::ptr::read_volatile(v) }
}

// ---- maps ----------------------------------------------------------------------------------

/// tid -> state. Presence means "traced".
#[map]
static TASKS: HashMap<u32, TaskState> = HashMap::with_max_entries(65536, 0);
/// tid -> 1 while TASKS holds it, sized by the loader to the kernel's pid_max (capped). Every
/// syscall of every process on the host asks whether its task is traced: an array lookup is a
/// bounds check and a load (the verifier inlines it), where TASKS would hash. A tid beyond the
/// array is asked of TASKS.
#[map]
static TRACED: Array<u8> = Array::with_max_entries(1 << 15, 0);
/// Per-CPU scratch where a file's path components are gathered: twice an event's data, so a
/// component read at any offset below `DATA_LEN` stays inside it.
#[map]
static NAME_SCRATCH: PerCpuArray<[u8; 2 * DATA_LEN]> = PerCpuArray::with_max_entries(1, 0);
/// Sustained message rate per process once its burst is spent.
const MESSAGES_PER_SEC: u64 = 10;

#[derive(Clone, Copy)]
#[repr(C)]
struct MessageBudget {
    tokens: u64,
    last_ns: u64,
}

/// tgid -> its message token bucket. LRU: entries of exited processes are evicted, not leaked.
#[map]
static MESSAGE_BUDGET: LruHashMap<u32, MessageBudget> = LruHashMap::with_max_entries(16384, 0);
/// (tgid << 32 | fd) -> 1 or 2: fds a process duplicated from its stdout/stderr (tmux writes
/// its errors through a dup of fd 2).
/// LRU: entries of exited processes (never closed explicitly) are evicted, not leaked.
#[map]
static MESSAGE_FDS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(8192, 0);
/// tgids that may hold a Landlock ruleset fd: those that created one and their children until
/// they exec (the fds are O_CLOEXEC). Their successful opens are reported as FD_PATH, their dups
/// and closes as FD_DUP and FD_CLOSE, so a ruleset is followed to whoever restricts itself with it.
#[map]
static RULESET_BUILDERS: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);
/// Per map, set once it gets its first entry: until then, the lookups that every successful
/// open (RULESET_BUILDERS) and every close or write (MESSAGE_FDS) would make are skipped.
#[map]
static IN_USE: Array<u32> = Array::with_max_entries(2, 0);
const RULESET_BUILDERS_IN_USE: u32 = 0;
const MESSAGE_FDS_IN_USE: u32 = 1;

#[inline(always)]
fn in_use(map: u32) -> bool {
    // SAFETY: plain value read from the array.
    IN_USE.get(map).is_some_and(|v| *v != 0)
}

#[inline(always)]
fn mark_in_use(map: u32) {
    if let Some(p) = IN_USE.get_ptr_mut(map) {
        // SAFETY: array value pointer; every writer stores the same value.
        unsafe { *p = 1 };
    }
}
/// Children of traced tasks that have not run yet (see [`Newborn`]).
#[map]
static NEWBORNS: HashMap<u64, Newborn> = HashMap::with_max_entries(4096, 0);
/// How many NEWBORNS wait: an untraced task looks there only while some do.
#[map]
static NEWBORNS_WAITING: Array<u64> = Array::with_max_entries(1, 0);
/// tid -> the filename it passed to a pending exec. LRU: a task killed mid-exec is evicted.
#[map]
static EXEC_PATHS: LruHashMap<u32, ExecPath> = LruHashMap::with_max_entries(1024, 0);
/// tgid -> the status it passed to exit_group, for `sched_process_exit`. LRU: a process whose
/// exit is never seen is evicted.
#[map]
static EXIT_STATUS: LruHashMap<u32, i32> = LruHashMap::with_max_entries(4096, 0);
/// Per-CPU scratch to build an [`ExecPath`] in (too big for the BPF stack next to the rest).
#[map]
static EXEC_PATH_SCRATCH: PerCpuArray<ExecPath> = PerCpuArray::with_max_entries(1, 0);
/// Failures already reported -> how often they happened again. Allocated on demand; when it is
/// full, failures are reported one record each, as before it existed.
#[map]
static REPEATS: HashMap<FailureKey, Repeats> = HashMap::with_max_entries(16384, BPF_F_NO_PREALLOC);
/// Per-CPU scratch to build a [`FailureKey`] in (too big for the BPF stack).
#[map]
static FAILURE_KEY_SCRATCH: PerCpuArray<FailureKey> = PerCpuArray::with_max_entries(1, 0);
/// Per-CPU scratch to read the tail of a long path into, a chunk at a time.
#[map]
static PATH_TAIL_SCRATCH: PerCpuArray<[u8; DATA_LEN]> = PerCpuArray::with_max_entries(1, 0);
/// tgid -> its flight recorder of failures not reported at once. Allocated on demand (a
/// process's first such failure), dropped when it exits.
#[map]
static RECORDERS: HashMap<u32, Recorder> = HashMap::with_max_entries(1024, BPF_F_NO_PREALLOC);
/// Never written: the zeroed value a new recorder is inserted from (too big for the stack).
#[map]
static RECORDER_ZERO: PerCpuArray<Recorder> = PerCpuArray::with_max_entries(1, 0);
/// tgid -> the newest writes to stdout/stderr it made past its message budget. Allocated on
/// demand (a process's first write past the budget), sent and dropped when it exits.
#[map]
static MESSAGE_TAILS: HashMap<u32, MessageTail> =
    HashMap::with_max_entries(1024, BPF_F_NO_PREALLOC);
/// Never written: the zeroed value a new tail is inserted from (too big for the stack).
#[map]
static MESSAGE_TAIL_ZERO: PerCpuArray<MessageTail> = PerCpuArray::with_max_entries(1, 0);
/// tgid -> the last signal delivered to it, for its exit record. LRU: a process whose exit is
/// never seen is evicted.
#[map]
static SIGNALS: LruHashMap<u32, DeliveredSignal> = LruHashMap::with_max_entries(4096, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Wakes the reader only once a backlog builds up. A wakeup per record cost more than the
/// record itself (an irq_work and a context switch each): under a burst of failures the reader
/// woke for every event, and the traced task paid for it.
#[inline(always)]
fn wakeup_flags() -> u64 {
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= cfg(&DIAG_WAKEUP_BYTES) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

// ---- x86_64 syscall ABI --------------------------------------------------------------------

const SYS_WRITE: u32 = 1;
const SYS_OPEN: u32 = 2;
const SYS_CLOSE: u32 = 3;
const SYS_DUP: u32 = 32;
const SYS_DUP2: u32 = 33;
const SYS_FCNTL: u32 = 72;
const SYS_DUP3: u32 = 292;
const F_DUPFD: u64 = 0;
const F_DUPFD_CLOEXEC: u64 = 1030;
const SYS_WRITEV: u32 = 20;
const SYS_CLONE: u32 = 56;
const SYS_FORK: u32 = 57;
const SYS_VFORK: u32 = 58;
const SYS_CLONE3: u32 = 435;
const CLONE_THREAD: u64 = 0x10000;
const SYS_EXECVE: u32 = 59;
const SYS_EXECVEAT: u32 = 322;
const SYS_EXIT_GROUP: u32 = 231;
const SYS_CREAT: u32 = 85;
const SYS_OPENAT: u32 = 257;
const SYS_OPENAT2: u32 = 437;
const SYS_LANDLOCK_CREATE_RULESET: u32 = 444;
const SYS_LANDLOCK_ADD_RULE: u32 = 445;
const SYS_LANDLOCK_RESTRICT_SELF: u32 = 446;

/// `struct pt_regs` offsets on x86_64 (uapi layout: stable).
const REGS_ORIG_AX: usize = 15 * 8;
const REGS_ARGS: [usize; 6] = [14 * 8, 13 * 8, 12 * 8, 7 * 8, 9 * 8, 8 * 8];
/// The syscall arguments sit in words 7..=14 (r10, r9, r8, ..., di): one read covers them.
const REGS_ARGS_FIRST_WORD: usize = 7;
/// Each argument's word in that window.
const ARGS_IN_WINDOW: [usize; 6] = [7, 6, 5, 0, 2, 1];

#[inline(always)]
fn regs_word(regs: *const u8, off: usize) -> u64 {
    // SAFETY: regs is the kernel's pt_regs for this syscall; probe_read checks the access.
    unsafe { bpf_probe_read_kernel(regs.add(off).cast::<u64>()).unwrap_or(0) }
}

/// `args[i]`, with a match the verifier can follow (an index it cannot bound is rejected).
#[inline(always)]
fn arg_at(args: &[u64; 6], i: u8) -> Option<u64> {
    match i {
        0 => Some(args[0]),
        1 => Some(args[1]),
        2 => Some(args[2]),
        3 => Some(args[3]),
        4 => Some(args[4]),
        5 => Some(args[5]),
        _ => None,
    }
}

#[inline(always)]
fn bit_set(words: &[u64], n: usize) -> bool {
    let w = n / 64;
    w < words.len() && words[w] & (1 << (n % 64)) != 0
}

#[inline(always)]
fn bump(idx: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn current_ids() -> (u32, u32) {
    let id = bpf_get_current_pid_tgid();
    (id as u32, (id >> 32) as u32)
}

/// The task's state when it is traced: the TRACED array answers first for most tids.
#[inline(always)]
fn traced_task(tid: u32) -> Option<*mut TaskState> {
    if TRACED.get(tid).is_some_and(|v| *v == 0) {
        return None;
    }
    TASKS.get_ptr_mut(tid)
}

#[inline(always)]
fn set_traced(tid: u32, traced: u8) {
    if let Some(v) = TRACED.get_ptr_mut(tid) {
        // SAFETY: array value pointer; only this tid's own tracking writes it.
        unsafe { *v = traced };
    }
}

#[inline(always)]
fn untrack(tid: u32) {
    let _ = TASKS.remove(tid);
    set_traced(tid, 0);
}

/// The task's state, adding it when it belongs to the watched cgroup.
#[inline(always)]
fn task_state(tid: u32) -> Option<*mut TaskState> {
    if let Some(p) = traced_task(tid) {
        return Some(p);
    }
    if adopt_newborn(tid) {
        return TASKS.get_ptr_mut(tid);
    }
    let cg = cfg(&DIAG_CGROUP_ID);
    // SAFETY: helper without arguments.
    if cg == 0 || unsafe { bpf_get_current_cgroup_id() } != cg || is_diag() {
        return None;
    }
    track(tid);
    TASKS.get_ptr_mut(tid)
}

#[inline(always)]
fn track(tid: u32) {
    let state = TaskState {
        // SAFETY: helper without arguments.
        since_ns: unsafe { bpf_ktime_get_ns() },
        ..TaskState::default()
    };
    if TASKS.insert(tid, state, 0).is_err() {
        bump(counter::UNTRACKED_TASKS);
        return;
    }
    set_traced(tid, 1);
}

/// The task's command name, written in place (the wrapper's zeroed copy costs a byte loop).
#[inline(always)]
fn current_comm(dst: &mut [u8; COMM_LEN]) {
    // SAFETY: the helper writes at most COMM_LEN bytes, NUL-padded.
    unsafe { bpf_get_current_comm(dst.as_mut_ptr().cast(), COMM_LEN as u32) };
}

#[inline(always)]
fn fill_header(h: &mut EventHeader, kind: u32) {
    let (tid, tgid) = current_ids();
    h.kind = kind;
    h.tid = tid;
    h.tgid = tgid;
    h.uid = bpf_get_current_uid_gid() as u32;
    // SAFETY: helper without arguments.
    h.ktime_ns = unsafe { bpf_ktime_get_ns() };
    current_comm(&mut h.comm);
}

// ---- syscalls --------------------------------------------------------------------------------

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn diag_sys_enter(ctx: RawTracePointContext) -> i32 {
    let nr: u64 = ctx.arg(1);
    let nr = nr as u32;
    // Only a watched syscall's entry matters (its failure is reported with what happened
    // during the call, and an exit without an entry is a seccomp verdict), and exec's, for its
    // filename: every other syscall leaves without a map lookup.
    let exec = nr == SYS_EXECVE || nr == SYS_EXECVEAT;
    if !exec && nr != SYS_EXIT_GROUP && !bit_set(&cfg(&DIAG_SYSCALL_MASK), nr as usize) {
        return 0;
    }
    let (tid, tgid) = current_ids();
    let Some(state) = task_state(tid) else {
        return 0;
    };
    if nr == SYS_EXIT_GROUP {
        // Whether the process succeeded tells which of its failures mattered.
        let regs: *const u8 = ctx.arg(0);
        let status = (regs_word(regs, REGS_ARGS[0]) & 0xff) as i32;
        let _ = EXIT_STATUS.insert(tgid, status, 0);
        return 0;
    }
    if exec {
        let regs: *const u8 = ctx.arg(0);
        let path = if nr == SYS_EXECVE { 0 } else { 1 };
        keep_exec_path(tid, regs_word(regs, REGS_ARGS[path]));
    }
    // SAFETY: map value pointer, written only by this task.
    unsafe {
        (*state).inflight_nr = nr + 1;
        (*state).evidence = 0;
        (*state).denied_cap = -1;
    }
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn diag_sys_exit(ctx: RawTracePointContext) -> i32 {
    let regs: *const u8 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    let nr = regs_word(regs, REGS_ORIG_AX) as u32;
    if (nr as usize) >= MAX_SYSCALLS {
        return 0;
    }
    // Decided before the task lookup: most syscalls of a traced tree are neither watched nor
    // needed to follow its state, and leave here.
    // A failure of any syscall goes on to the task lookup: the flight recorder keeps it.
    let watched = bit_set(&cfg(&DIAG_SYSCALL_MASK), nr as usize);
    if !watched && ret >= 0 && !matters_on_success(regs, nr, ret) {
        return 0;
    }
    let (tid, tgid) = current_ids();
    let Some(state) = task_state(tid) else {
        return 0;
    };
    // SAFETY: map value pointer, written only by this task.
    let entered = unsafe { (*state).inflight_nr } == nr + 1;
    // SAFETY: map value pointer, written only by this task.
    let (ev_bits, denied_cap) = unsafe {
        let seen = (*state).evidence;
        (*state).inflight_nr = 0;
        (*state).evidence = 0;
        let bits = if entered {
            seen
        } else {
            // Only the seccomp probe can have fired for a call that never entered.
            evidence::NO_ENTER | (seen & evidence::SECCOMP_DENIED)
        };
        (bits, (*state).denied_cap)
    };
    let path_arg = cfg(&DIAG_PATH_ARG[nr as usize]);

    if ret >= 0 {
        on_success(regs, nr, ret, tgid, path_arg);
        return 0;
    }
    if nr == SYS_EXECVE || nr == SYS_EXECVEAT {
        let _ = EXEC_PATHS.remove(tid);
    }
    let errno = -ret;
    if errno as usize >= MAX_ERRNO {
        return 0;
    }
    let errno_watched = watched
        && (bit_set(&cfg(&DIAG_ERRNO_MASK), errno as usize)
            || scoped_errno_watched(nr, errno as u32));
    // These count only under /dev/, which needs the path: decide after reading it.
    let dev_only = watched
        && !errno_watched
        && DEV_ERRNOS.contains(&(errno as u32))
        && cfg(&DIAG_DEV_ERRNOS) != 0
        && path_arg < 6;
    if !errno_watched && !dev_only {
        record_failure(regs, nr, ret, tid, tgid, path_arg);
        return 0;
    }
    let Some(key) = FAILURE_KEY_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU scratch, no other user on this CPU until this program returns.
    let key = unsafe { &mut *key };
    key.tid = tid;
    key.tgid = tgid;
    // SAFETY: map value pointer, this task's own entry.
    key.since_ns = unsafe { (*state).since_ns };
    key.nr = nr;
    key.errno = errno as u32;
    key.evidence = ev_bits;
    key.denied_cap = denied_cap;
    current_comm(&mut key.comm);
    zero_data(&mut key.path);
    let ptr = syscall_arg(regs, path_arg);
    key.path_len = match ptr {
        Some(ptr) => read_user_str(&mut key.path, ptr),
        None => 0,
    };
    (key.path_full_len, key.path_tail_hash) = match ptr {
        Some(ptr) if key.path_len as usize == PATH_HEAD => measure_path_tail(ptr),
        _ => (key.path_len, 0),
    };
    if dev_only && !(key.path_len >= 5 && key.path[..5] == *b"/dev/") {
        record_failure(regs, nr, ret, tid, tgid, path_arg);
        return 0;
    }
    if let Some(seen) = REPEATS.get_ptr_mut(&*key) {
        // SAFETY: map value pointer; the key names this task, the only writer.
        unsafe {
            (*seen).count += 1;
            (*seen).last_ns = bpf_ktime_get_ns();
        }
        return 0;
    }
    // When REPEATS is full the insert fails, and each repeat is sent as a record of its own.
    let _ = REPEATS.insert(&*key, &Repeats::default(), BPF_NOEXIST as u64);
    let Some(mut entry) = EVENTS.reserve::<SyscallEvent>(0) else {
        bump(counter::LOST_EVENTS);
        // The next occurrence then carries the whole record (arguments, ids) in its place.
        let _ = REPEATS.remove(&*key);
        return 0;
    };
    // SAFETY: the reservation is exclusively ours until submit.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    fill_syscall_event(ev, regs, nr, ret, reason::FAILED, ev_bits, denied_cap);
    copy_data(&mut ev.data, &key.path);
    ev.data_len = key.path_len;
    ev.path_full_len = key.path_full_len;
    ev.path_tail_hash = key.path_tail_hash;
    if key.path_full_len as usize > PATH_HEAD {
        ev.evidence |= evidence::DATA_TRUNCATED;
    }
    let fd = syscall_arg(regs, cfg(&DIAG_FD_ARG[nr as usize]));
    let dirfd = syscall_arg(regs, cfg(&DIAG_DIRFD_ARG[nr as usize]));
    fill_task_facts(ev, fd, dirfd);
    entry.submit(wakeup_flags());
    0
}

/// Whether this syscall watches this errno on its own (exec's ENOENT, inotify's ENOSPC...).
#[inline(always)]
fn scoped_errno_watched(nr: u32, errno: u32) -> bool {
    let bits = cfg(&DIAG_SCOPED_ERRNOS[nr as usize]);
    let mut i = 0;
    while i < SCOPED_ERRNOS.len() {
        if SCOPED_ERRNOS[i] == errno {
            return bits & (1 << i) != 0;
        }
        i += 1;
    }
    false
}

// ---- flight recorder -------------------------------------------------------------------------
//
// Failures not reported at once wait in their process's recorder: whether one mattered shows
// in what the process does next (complains, dies) and is sent then; a process that exits 0
// recovered, and its recorder is dropped unsent.

/// The slot a recorder's `n`th failure goes to (a mask the verifier can bound).
#[inline(always)]
fn slot_index(n: u32) -> usize {
    n as usize & (RECENT_SLOTS - 1)
}

/// `tgid`'s entry in `map`, inserted zeroed (from `zero`) when it has none; `None` when full.
#[inline(always)]
fn entry_or_zeroed<T>(map: &HashMap<u32, T>, zero: &PerCpuArray<T>, tgid: u32) -> Option<*mut T> {
    if let Some(r) = map.get_ptr_mut(tgid) {
        return Some(r);
    }
    let zero = zero.get_ptr(0)?;
    // SAFETY: a map value, never written.
    if map
        .insert(tgid, unsafe { &*zero }, BPF_NOEXIST as u64)
        .is_err()
    {
        return None;
    }
    map.get_ptr_mut(tgid)
}

#[inline(always)]
fn recorder(tgid: u32) -> Option<*mut Recorder> {
    let r = entry_or_zeroed(&RECORDERS, &RECORDER_ZERO, tgid);
    if r.is_none() {
        bump(counter::UNRECORDED_FAILURES);
    }
    r
}

#[inline(always)]
fn record_failure(regs: *const u8, nr: u32, ret: i64, tid: u32, tgid: u32, path_arg: u8) {
    let Some(rec) = recorder(tgid) else {
        return;
    };
    // SAFETY: map value pointer; threads of one process racing only misplace a slot.
    let rec = unsafe { &mut *rec };
    // SAFETY: regs is the kernel's pt_regs for this syscall; probe_read checks the access.
    let window: [u64; 8] = unsafe {
        bpf_probe_read_kernel(regs.add(REGS_ARGS_FIRST_WORD * 8).cast::<[u64; 8]>())
            .unwrap_or([0; 8])
    };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if rec.next > 0 {
        let last = &mut rec.slots[slot_index(rec.next - 1)];
        let ev = &last.event;
        let mut same = ev.header.tid == tid && ev.nr == nr && ev.ret == ret;
        let mut i = 0;
        while i < 6 {
            same = same && ev.args[i] == window[ARGS_IN_WINDOW[i]];
            i += 1;
        }
        if same {
            last.repeats += 1;
            last.last_ns = now;
            return;
        }
    }
    let slot = &mut rec.slots[slot_index(rec.next)];
    rec.next = rec.next.wrapping_add(1);
    slot.repeats = 0;
    slot.last_ns = now;
    slot.flush = 0;
    let ev = &mut slot.event;
    fill_syscall_event(ev, regs, nr, ret, reason::FAILED, 0, -1);
    ev.header.kind = kind::RECENT;
    zero_data(&mut ev.data);
    if let Some(ptr) = syscall_arg(regs, path_arg) {
        ev.data_len = read_user_str(&mut ev.data, ptr);
        (ev.path_full_len, ev.path_tail_hash) = if ev.data_len as usize == PATH_HEAD {
            measure_path_tail(ptr)
        } else {
            (ev.data_len, 0)
        };
        if ev.path_full_len as usize > PATH_HEAD {
            ev.evidence |= evidence::DATA_TRUNCATED;
        }
    }
}

/// Sends what `tgid`'s recorder holds, oldest first, and empties it.
#[inline(always)]
fn flush_recorder(tgid: u32, why: u32) {
    let Some(rec) = RECORDERS.get_ptr_mut(tgid) else {
        return;
    };
    // SAFETY: map value pointer.
    let rec = unsafe { &mut *rec };
    let held = rec.next.min(RECENT_SLOTS as u32);
    let first = rec.next.wrapping_sub(held);
    rec.next = 0;
    let mut i = 0;
    while i < RECENT_SLOTS as u32 {
        if i >= held {
            break;
        }
        let slot = &mut rec.slots[slot_index(first.wrapping_add(i))];
        slot.flush = why;
        if EVENTS
            .output::<diag_ebpf::RecentFailure>(&*slot, wakeup_flags())
            .is_err()
        {
            bump(counter::LOST_EVENTS);
        }
        i += 1;
    }
}

/// The length of a path whose first `PATH_HEAD` bytes filled the key, and a hash of the rest
/// (see `diag_ebpf::path_tail_hash`, its userspace twin): without them, every path sharing
/// those bytes would count as a repeat of the first.
#[inline(always)]
fn measure_path_tail(ptr: u64) -> (u32, u64) {
    let Some(buf) = PATH_TAIL_SCRATCH.get_ptr_mut(0) else {
        return (PATH_LEN_UNKNOWN, 0);
    };
    // SAFETY: per-CPU scratch, no other user on this CPU until this program returns.
    let buf = unsafe { &mut *buf };
    let mut hash = PATH_HASH_SEED;
    let mut full = PATH_HEAD as u32;
    let mut at = ptr + PATH_HEAD as u64;
    let mut i = 0;
    while i < PATH_TAIL_CHUNKS {
        zero_data(buf);
        // The raw helper: it tells an empty string (1, the NUL) from a fault (negative).
        // SAFETY: user pointer; the helper checks the access and writes at most DATA_LEN bytes.
        let n = unsafe {
            bpf_probe_read_user_str(buf.as_mut_ptr().cast(), DATA_LEN as u32, at as *const _)
        };
        if n < 0 {
            return (PATH_LEN_UNKNOWN, hash);
        }
        // SAFETY: DATA_LEN bytes, 8-byte aligned (a map value).
        hash = path_hash_chunk(hash, unsafe {
            &*buf.as_ptr().cast::<[u64; DATA_LEN / 8]>()
        });
        let chars = (n as u32).saturating_sub(1);
        full += chars;
        if (chars as usize) < PATH_HEAD {
            break;
        }
        at += PATH_HEAD as u64;
        i += 1;
    }
    (full, hash)
}

/// `DATA_LEN` buffers are cleared and copied a word at a time: the bpf target's `memset` and
/// `memcpy` go byte by byte (1 280 instructions for 256 bytes), and volatile accesses keep the
/// compiler from turning these loops back into those calls.
const DATA_WORDS: usize = DATA_LEN / 8;

#[inline(always)]
fn zero_data(buf: &mut [u8; DATA_LEN]) {
    let words = buf.as_mut_ptr().cast::<u64>();
    let mut i = 0;
    while i < DATA_WORDS {
        // SAFETY: i < DATA_WORDS, inside buf; map values are 8-byte aligned and so is the field.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
        i += 1;
    }
}

#[inline(always)]
fn copy_data(dst: &mut [u8; DATA_LEN], src: &[u8; DATA_LEN]) {
    let (d, s) = (dst.as_mut_ptr().cast::<u64>(), src.as_ptr().cast::<u64>());
    let mut i = 0;
    while i < DATA_WORDS {
        // SAFETY: i < DATA_WORDS, inside both buffers; both are 8-byte aligned (see zero_data).
        unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        i += 1;
    }
}

/// Syscall argument `i` (0..6) of the call whose registers are `regs`.
#[inline(always)]
fn syscall_arg(regs: *const u8, i: u8) -> Option<u64> {
    let off = match i {
        0 => REGS_ARGS[0],
        1 => REGS_ARGS[1],
        2 => REGS_ARGS[2],
        3 => REGS_ARGS[3],
        4 => REGS_ARGS[4],
        5 => REGS_ARGS[5],
        _ => return None,
    };
    Some(regs_word(regs, off))
}

#[inline(always)]
fn fill_syscall_event(
    ev: &mut SyscallEvent,
    regs: *const u8,
    nr: u32,
    ret: i64,
    why: u32,
    ev_bits: u32,
    denied_cap: i32,
) {
    fill_header(&mut ev.header, kind::SYSCALL);
    ev.nr = nr;
    ev.reason = why;
    ev.ret = ret;
    // One probe_read for all six arguments instead of six.
    // SAFETY: regs is the kernel's pt_regs for this syscall; probe_read checks the access.
    let window: [u64; 8] = unsafe {
        bpf_probe_read_kernel(regs.add(REGS_ARGS_FIRST_WORD * 8).cast::<[u64; 8]>())
            .unwrap_or([0; 8])
    };
    let mut i = 0;
    while i < 6 {
        ev.args[i] = window[ARGS_IN_WINDOW[i]];
        i += 1;
    }
    ev.evidence = ev_bits;
    ev.denied_cap = denied_cap;
    // SAFETY: helper without arguments.
    ev.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    ev.gid = (bpf_get_current_uid_gid() >> 32) as u32;
    ev.data_len = 0;
    ev.path_full_len = 0;
    ev._pad = 0;
    ev.path_tail_hash = 0;
    ev.task.known = 0;
}

// ---- facts read from the failing task at the failure ------------------------------------------

#[inline(always)]
fn koff(i: usize) -> usize {
    cfg(&DIAG_KERNEL_OFFSETS)[i] as usize
}

/// The kernel value at `base + off`; the default when `base` is null or the read fails.
#[inline(always)]
fn kread<T: Copy + Default>(base: u64, off: usize) -> T {
    if base == 0 {
        return T::default();
    }
    // SAFETY: a kernel address; probe_read checks the access.
    unsafe { bpf_probe_read_kernel((base as usize + off) as *const T).unwrap_or_default() }
}

/// Credentials, limits, no_new_privs, mount namespace and pids cgroup of the current task, and
/// for an fd-based call the file behind `fd`: what attribution needs after the process exited.
#[inline(always)]
fn fill_task_facts(ev: &mut SyscallEvent, fd: Option<u64>, dirfd: Option<u64>) {
    let enabled = cfg(&DIAG_KERNEL_FACTS);
    if enabled & facts::TASK == 0 {
        return;
    }
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    let t = &mut ev.task;
    let cred: u64 = kread(task, koff(koff::TASK_CRED));
    t.cap_inheritable = kread(cred, koff(koff::CRED_CAP_INHERITABLE));
    t.cap_effective = kread(cred, koff(koff::CRED_CAP_EFFECTIVE));
    t.cap_bounding = kread(cred, koff(koff::CRED_CAP_BSET));
    let ucounts: u64 = kread(cred, koff(koff::CRED_UCOUNTS));
    t.uid_tasks = kread(ucounts, koff(koff::UCOUNTS_NPROC));
    let signal: u64 = kread(task, koff(koff::TASK_SIGNAL));
    t.nproc_cur = kread(signal, koff(koff::SIGNAL_RLIM_NPROC));
    t.nproc_max = kread(signal, koff(koff::SIGNAL_RLIM_NPROC) + 8);
    // PFA_NO_NEW_PRIVS is bit 0 of task_struct::atomic_flags.
    t.no_new_privs = (kread::<u64>(task, koff(koff::TASK_ATOMIC_FLAGS)) & 1) as u32;
    t.known = facts::TASK;
    t.names_end = 0;
    let mm: u64 = kread(task, koff(koff::TASK_MM));
    let exe: u64 = kread(mm, koff(koff::MM_EXE_FILE));
    if exe != 0 {
        let mnt: u64 = kread(exe, koff(koff::FILE_MNT));
        t.exe_mnt_flags = kread(mnt, koff(koff::VFSMOUNT_FLAGS));
        t.known |= facts::EXE;
    }
    if enabled & facts::PIDS != 0 {
        fill_pids_facts(ev, task);
    }
    if let Some(fd) = fd.filter(|_| enabled & facts::FILE != 0) {
        fill_file_facts(ev, task, fd);
    }
    // A relative path names nothing once the process is gone: walk what it was relative to.
    let relative = ev.data_len > 0 && ev.data[0] != b'/' && (ev.data_len as usize) < DATA_LEN - 1;
    if relative && enabled & facts::FILE != 0 && ev.task.known & facts::FILE_NAME == 0 {
        let (dentry, vfsmount) = match dirfd {
            Some(fd) if fd as i32 != AT_FDCWD => match fd_file(task, fd) {
                Some(file) => (
                    kread(file, koff(koff::FILE_DENTRY)),
                    kread(file, koff(koff::FILE_MNT)),
                ),
                None => return,
            },
            _ => {
                let fs: u64 = kread(task, koff(koff::TASK_FS));
                (
                    kread(fs, koff(koff::FS_PWD_DENTRY)),
                    kread(fs, koff(koff::FS_PWD_MNT)),
                )
            }
        };
        if dentry != 0
            && vfsmount != 0
            && walk_names(ev, dentry, vfsmount, ev.data_len as usize + 1)
        {
            ev.task.known |= facts::BASE_NAME;
        }
    }
}

/// The `struct file` open at `fd` in `task` (an int argument: the register's upper half is not
/// part of it).
#[inline(always)]
fn fd_file(task: u64, fd: u64) -> Option<u64> {
    let fd = fd & 0xffff_ffff;
    let files: u64 = kread(task, koff(koff::TASK_FILES));
    let fdt: u64 = kread(files, koff(koff::FILES_FDT));
    let max_fds: u32 = kread(fdt, koff(koff::FDT_MAX_FDS));
    if fd >= u64::from(max_fds) {
        return None;
    }
    let fds: u64 = kread(fdt, koff(koff::FDT_FD));
    let file: u64 = kread(fds, fd as usize * 8);
    (file != 0).then_some(file)
}

/// Ancestors of a pids cgroup looked at (a fork is charged to every one of them).
const PIDS_DEPTH: usize = 8;

/// Of the task's pids cgroup and its ancestors (the root has no limit), the one with the least
/// room left: the one that refuses a fork first.
#[inline(always)]
fn fill_pids_facts(ev: &mut SyscallEvent, task: u64) {
    let cset: u64 = kread(task, koff(koff::TASK_CGROUPS));
    // `struct pids_cgroup` starts with its css (the loader checked).
    let mut css: u64 = kread(cset, koff(koff::CSS_SET_PIDS));
    if css == 0 {
        return;
    }
    let t = &mut ev.task;
    t.pids_current = 0;
    t.pids_limit = i64::MAX;
    t.pids_cgroup_id = 0;
    let mut least_room = i64::MAX;
    let mut i = 0;
    while i < PIDS_DEPTH {
        let parent: u64 = kread(css, koff(koff::CSS_PARENT));
        if parent == 0 {
            break;
        }
        let counter: i64 = kread(css, koff(koff::PIDS_COUNTER));
        let limit: i64 = kread(css, koff(koff::PIDS_LIMIT));
        if limit.saturating_sub(counter) < least_room {
            least_room = limit.saturating_sub(counter);
            t.pids_current = counter;
            t.pids_limit = limit;
            let cgroup: u64 = kread(css, koff(koff::CSS_CGROUP));
            let kn: u64 = kread(cgroup, koff(koff::CGROUP_KN));
            t.pids_cgroup_id = kread(kn, koff(koff::KN_ID));
        }
        css = parent;
        i += 1;
    }
    t.known |= facts::PIDS;
}

/// The file open at `fd`: its mount flags, inode and path (walked up through its mounts).
#[inline(always)]
fn fill_file_facts(ev: &mut SyscallEvent, task: u64, fd: u64) {
    let Some(file) = fd_file(task, fd) else {
        return;
    };
    let vfsmount: u64 = kread(file, koff(koff::FILE_MNT));
    let dentry: u64 = kread(file, koff(koff::FILE_DENTRY));
    let inode: u64 = kread(file, koff(koff::FILE_INODE));
    let f = &mut ev.file;
    f.mnt_flags = kread(vfsmount, koff(koff::VFSMOUNT_FLAGS));
    f.mode = u32::from(kread::<u16>(inode, koff(koff::INODE_MODE)));
    f.uid = kread(inode, koff(koff::INODE_UID));
    f.gid = kread(inode, koff(koff::INODE_GID));
    let sb: u64 = kread(inode, koff(koff::INODE_SB));
    let fs_type: u64 = kread(sb, koff(koff::SB_TYPE));
    let fs_name: u64 = kread(fs_type, koff(koff::FS_TYPE_NAME));
    f.fs_type = [0; FS_TYPE_LEN];
    // SAFETY: a kernel string into the event's own FS_TYPE_LEN bytes.
    unsafe {
        bpf_probe_read_kernel_str(
            f.fs_type.as_mut_ptr().cast(),
            FS_TYPE_LEN as u32,
            fs_name as *const core::ffi::c_void,
        )
    };
    ev.task.known |= facts::FILE;
    if ev.data_len == 0 && walk_names(ev, dentry, vfsmount, 0) {
        ev.task.known |= facts::FILE_NAME;
        ev.data_len = ev.task.names_end;
    }
}

/// The names from `dentry` up to the root of the task's mount tree, leaf first, each with its
/// NUL, into `ev.data` from `start` on (d_path's walk: a mount's root continues at its mount
/// point). Sets `names_end` and, when the root was reached, `FILE_NAME_WHOLE`; false when no
/// name was written.
#[inline(always)]
fn walk_names(ev: &mut SyscallEvent, mut dentry: u64, mut vfsmount: u64, start: usize) -> bool {
    let Some(buf) = NAME_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // What `data` holds before `start` (a relative path) is kept.
    // SAFETY: the scratch buffer holds 2 * DATA_LEN bytes, 8-byte aligned as map values are.
    copy_data(unsafe { &mut *buf.cast::<[u8; DATA_LEN]>() }, &ev.data);
    let buf = buf.cast::<u8>();
    let mount_mnt = koff(koff::MOUNT_MNT) as u64;
    let mut pos = start;
    let mut whole = false;
    let mut i = 0;
    while i < FILE_NAME_DEPTH {
        let mount = vfsmount.wrapping_sub(mount_mnt);
        let root: u64 = kread(vfsmount, koff(koff::VFSMOUNT_ROOT));
        if dentry == root {
            let parent: u64 = kread(mount, koff(koff::MOUNT_PARENT));
            if parent == mount || parent == 0 {
                whole = true;
                break;
            }
            dentry = kread(mount, koff(koff::MOUNT_MOUNTPOINT));
            vfsmount = parent + mount_mnt;
            // An empty name marks the crossing: what follows names the mount point.
            // SAFETY: an offset below DATA_LEN of the 2 * DATA_LEN scratch buffer.
            unsafe { *buf.add(pos & (DATA_LEN - 1)) = 0 };
            pos += 1;
            if pos >= DATA_LEN {
                break;
            }
            i += 1;
            continue;
        }
        let up: u64 = kread(dentry, koff(koff::DENTRY_PARENT));
        if up == dentry || up == 0 {
            whole = true;
            break;
        }
        let name: u64 = kread(dentry, koff(koff::DENTRY_NAME));
        // SAFETY: a kernel string into the scratch buffer, at an offset below DATA_LEN of a
        // 2 * DATA_LEN buffer, at most DATA_LEN bytes.
        let n = unsafe {
            bpf_probe_read_kernel_str(
                buf.add(pos & (DATA_LEN - 1)).cast(),
                DATA_LEN as u32,
                name as *const core::ffi::c_void,
            )
        };
        if n <= 0 {
            break;
        }
        pos += n as usize;
        if pos >= DATA_LEN {
            break;
        }
        dentry = up;
        i += 1;
    }
    if pos == start {
        return false;
    }
    // SAFETY: the scratch buffer holds 2 * DATA_LEN bytes; its first DATA_LEN are copied.
    copy_data(&mut ev.data, unsafe { &*buf.cast::<[u8; DATA_LEN]>() });
    ev.task.names_end = pos.min(DATA_LEN) as u32;
    if whole {
        ev.task.known |= facts::FILE_NAME_WHOLE;
    }
    true
}

/// Reads a user string into `buf`; returns its length without the NUL (0 when unreadable).
#[inline(always)]
fn read_user_str(buf: &mut [u8; DATA_LEN], ptr: u64) -> u32 {
    // SAFETY: user pointer; the helper checks the access and bounds by the slice.
    unsafe { bpf_probe_read_user_str_bytes(ptr as *const u8, buf) }
        .map(|s| s.len() as u32)
        .unwrap_or(0)
}

/// [`read_user_str`] into an event's data, marking truncation.
#[inline(always)]
fn read_user_str_into(ev: &mut SyscallEvent, ptr: u64) {
    ev.data_len = read_user_str(&mut ev.data, ptr);
    if ev.data_len as usize >= DATA_LEN - 1 {
        ev.evidence |= evidence::DATA_TRUNCATED;
    }
}

/// Reads `len` user bytes (bounded by DATA_LEN) into `ev.data`.
#[inline(always)]
fn read_user_bytes(ev: &mut SyscallEvent, ptr: u64, len: u64) {
    if len > DATA_LEN as u64 {
        ev.evidence |= evidence::DATA_TRUNCATED;
    }
    let n = len.min(DATA_LEN as u64) as usize;
    if n == 0 {
        return;
    }
    // SAFETY: user pointer; the helper checks the access.
    if unsafe { bpf_probe_read_user_buf(ptr as *const u8, &mut ev.data[..n]) }.is_ok() {
        ev.data_len = n as u32;
    }
}

#[inline(always)]
fn on_success(regs: *const u8, nr: u32, ret: i64, tgid: u32, path_arg: u8) {
    match nr {
        SYS_LANDLOCK_CREATE_RULESET | SYS_LANDLOCK_ADD_RULE | SYS_LANDLOCK_RESTRICT_SELF => {
            on_landlock(regs, nr, ret, tgid)
        }
        SYS_OPEN | SYS_OPENAT | SYS_OPENAT2 | SYS_CREAT => {
            if holds_rulesets(tgid) {
                emit_with(regs, nr, ret, reason::FD_PATH, |ev| {
                    if let Some(ptr) = arg_at(&ev.args, path_arg) {
                        read_user_str_into(ev, ptr);
                    }
                });
            }
        }
        SYS_WRITE | SYS_WRITEV if ret > 0 => on_write(regs, nr, ret, tgid, path_arg),
        SYS_DUP | SYS_DUP2 | SYS_DUP3 | SYS_FCNTL => {
            if on_dup(regs, nr, ret, tgid) && holds_rulesets(tgid) {
                emit_with(regs, nr, ret, reason::FD_DUP, |_| {});
            }
        }
        SYS_CLONE | SYS_CLONE3 | SYS_FORK | SYS_VFORK if ret > 0 => on_forked(regs, nr, ret, tgid),
        SYS_CLOSE => {
            let fd = regs_word(regs, REGS_ARGS[0]);
            // A lock-free lookup first: a delete takes the bucket lock, on every close.
            if fd > 2 && message_stream(tgid, fd).is_some() {
                let _ = MESSAGE_FDS.remove(fd_key(tgid, fd));
            }
            if holds_rulesets(tgid) {
                emit_with(regs, nr, ret, reason::FD_CLOSE, |_| {});
            }
        }
        _ => {}
    }
}

/// Whether a successful call changes what diag follows: a Landlock call, a dup (of stdout or
/// stderr, maybe), a message write, a close or open once their maps are in use, or a child's
/// first return from clone (where it joins the traced tree).
#[inline(always)]
fn matters_on_success(regs: *const u8, nr: u32, ret: i64) -> bool {
    match nr {
        SYS_LANDLOCK_CREATE_RULESET | SYS_LANDLOCK_ADD_RULE | SYS_LANDLOCK_RESTRICT_SELF => true,
        SYS_DUP | SYS_DUP2 | SYS_DUP3 | SYS_FCNTL => true,
        SYS_CLONE | SYS_CLONE3 | SYS_FORK | SYS_VFORK => true,
        SYS_OPEN | SYS_OPENAT | SYS_OPENAT2 | SYS_CREAT => in_use(RULESET_BUILDERS_IN_USE),
        SYS_CLOSE => in_use(MESSAGE_FDS_IN_USE) || in_use(RULESET_BUILDERS_IN_USE),
        SYS_WRITE | SYS_WRITEV if ret > 0 => {
            let fd = regs_word(regs, REGS_ARGS[0]);
            fd == 1 || fd == 2 || in_use(MESSAGE_FDS_IN_USE)
        }
        _ => false,
    }
}

#[inline(always)]
fn fd_key(tgid: u32, fd: u64) -> u64 {
    ((tgid as u64) << 32) | (fd & 0xffff_ffff)
}

/// Which standard stream `fd` writes to in this process (1, 2), if any.
#[inline(always)]
fn message_stream(tgid: u32, fd: u64) -> Option<u32> {
    if fd == 1 || fd == 2 {
        return Some(fd as u32);
    }
    if !in_use(MESSAGE_FDS_IN_USE) {
        return None;
    }
    // SAFETY: plain value read from the map.
    unsafe { MESSAGE_FDS.get(fd_key(tgid, fd)).copied() }
}

#[inline(always)]
fn holds_rulesets(tgid: u32) -> bool {
    in_use(RULESET_BUILDERS_IN_USE) && RULESET_BUILDERS.get_ptr(tgid).is_some()
}

/// Follows a dup of a message stream; false when the call was no dup (another fcntl).
#[inline(always)]
fn on_dup(regs: *const u8, nr: u32, ret: i64, tgid: u32) -> bool {
    if nr == SYS_FCNTL {
        let cmd = regs_word(regs, REGS_ARGS[1]);
        if cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC {
            return false;
        }
    }
    let old = regs_word(regs, REGS_ARGS[0]);
    let new = ret as u64;
    match message_stream(tgid, old) {
        Some(stream) if new > 2 => {
            mark_in_use(MESSAGE_FDS_IN_USE);
            let _ = MESSAGE_FDS.insert(fd_key(tgid, new), stream, 0);
        }
        // dup2 of something else over a tracked fd replaces it.
        None if new > 2 && in_use(MESSAGE_FDS_IN_USE) => {
            let _ = MESSAGE_FDS.remove(fd_key(tgid, new));
        }
        _ => {}
    }
    true
}

#[inline(always)]
fn on_landlock(regs: *const u8, nr: u32, ret: i64, tgid: u32) {
    if nr == SYS_LANDLOCK_CREATE_RULESET {
        mark_in_use(RULESET_BUILDERS_IN_USE);
        let _ = RULESET_BUILDERS.insert(tgid, 1, 0);
    }
    emit_with(regs, nr, ret, reason::LANDLOCK, |ev| match nr {
        // struct landlock_ruleset_attr (3 x u64, size in arg 1).
        SYS_LANDLOCK_CREATE_RULESET => read_user_bytes(ev, ev.args[0], ev.args[1].min(24)),
        // struct landlock_path_beneath_attr (12 bytes, packed) or landlock_net_port_attr (16).
        SYS_LANDLOCK_ADD_RULE => read_user_bytes(ev, ev.args[2], 16),
        _ => {}
    });
}

/// A token bucket per process: bursts of DIAG_MESSAGE_BURST, then MESSAGES_PER_SEC, so a
/// long-lived process that printed early still gets its later messages captured.
#[inline(always)]
fn take_message_token(tgid: u32) -> bool {
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let burst = cfg(&DIAG_MESSAGE_BURST) as u64;
    let Some(b) = MESSAGE_BUDGET.get_ptr_mut(tgid) else {
        let fresh = MessageBudget {
            tokens: burst.saturating_sub(1),
            last_ns: now,
        };
        let _ = MESSAGE_BUDGET.insert(tgid, fresh, 0);
        return true;
    };
    // SAFETY: map value pointer; a lost race between threads only miscounts one message.
    unsafe {
        let refill = (now.saturating_sub((*b).last_ns)) / (1_000_000_000 / MESSAGES_PER_SEC);
        if refill > 0 {
            (*b).tokens = ((*b).tokens + refill).min(burst);
            (*b).last_ns = now;
        }
        if (*b).tokens == 0 {
            return false;
        }
        (*b).tokens -= 1;
    }
    true
}

#[inline(always)]
fn on_write(regs: *const u8, nr: u32, ret: i64, tgid: u32, path_arg: u8) {
    let Some(stream) = message_stream(tgid, regs_word(regs, REGS_ARGS[0])) else {
        return;
    };
    if stream == 2 || cfg(&DIAG_STDOUT_COMPLAINS) != 0 {
        flush_recorder(tgid, flush::COMPLAINED);
    }
    if !take_message_token(tgid) {
        keep_in_tail(regs, nr, ret, tgid, path_arg, stream);
        return;
    }
    emit_with(regs, nr, ret, reason::MESSAGE, |ev| {
        fill_message(ev, ret, path_arg, stream)
    });
}

#[inline(always)]
fn fill_message(ev: &mut SyscallEvent, ret: i64, path_arg: u8, stream: u32) {
    // Report the stream, not the dup'd fd number.
    ev.args[0] = stream as u64;
    if path_arg == MESSAGE_WRITEV {
        // First iovec only: { void *base; size_t len }.
        // SAFETY: user pointer; probe_read checks the access.
        let iov: [u64; 2] =
            unsafe { bpf_probe_read_user(ev.args[1] as *const [u64; 2]).unwrap_or([0, 0]) };
        read_user_bytes(ev, iov[0], iov[1].min(ret as u64));
    } else if path_arg == MESSAGE_WRITE {
        read_user_bytes(ev, ev.args[1], ret as u64);
    }
}

/// A write past the budget takes the oldest slot of the process's tail; the write it
/// overwrites (or this one, when no tail can be had) is the one dropped.
#[inline(always)]
fn keep_in_tail(regs: *const u8, nr: u32, ret: i64, tgid: u32, path_arg: u8, stream: u32) {
    let Some(tail) = entry_or_zeroed(&MESSAGE_TAILS, &MESSAGE_TAIL_ZERO, tgid) else {
        bump(counter::MESSAGES_DROPPED);
        return;
    };
    // SAFETY: map value pointer; threads of one process racing only misplace a slot.
    let tail = unsafe { &mut *tail };
    if tail.next >= TAIL_SLOTS as u32 {
        bump(counter::MESSAGES_DROPPED);
    }
    let ev = &mut tail.slots[tail.next as usize & (TAIL_SLOTS - 1)];
    tail.next = tail.next.wrapping_add(1);
    fill_syscall_event(ev, regs, nr, ret, reason::MESSAGE, 0, -1);
    fill_message(ev, ret, path_arg, stream);
}

/// Sends the writes `tgid` kept past its budget, oldest first, and drops its tail.
#[inline(always)]
fn send_message_tail(tgid: u32) {
    let Some(tail) = MESSAGE_TAILS.get_ptr(tgid) else {
        return;
    };
    // SAFETY: map value pointer.
    let tail = unsafe { &*tail };
    let held = tail.next.min(TAIL_SLOTS as u32);
    let first = tail.next.wrapping_sub(held);
    let mut i = 0;
    while i < TAIL_SLOTS as u32 {
        if i >= held {
            break;
        }
        let slot = &tail.slots[first.wrapping_add(i) as usize & (TAIL_SLOTS - 1)];
        if EVENTS.output::<SyscallEvent>(slot, wakeup_flags()).is_err() {
            bump(counter::LOST_EVENTS);
        }
        i += 1;
    }
    let _ = MESSAGE_TAILS.remove(tgid);
}

#[inline(always)]
fn emit_with(regs: *const u8, nr: u32, ret: i64, why: u32, fill: impl FnOnce(&mut SyscallEvent)) {
    let Some(mut entry) = EVENTS.reserve::<SyscallEvent>(0) else {
        bump(counter::LOST_EVENTS);
        return;
    };
    // SAFETY: the reservation is exclusively ours until submit.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    fill_syscall_event(ev, regs, nr, ret, why, 0, -1);
    fill(ev);
    entry.submit(wakeup_flags());
}

// ---- process tree ------------------------------------------------------------------------------
//
// Raw tracepoints only: detaching a perf-event tracepoint waits for RCU grace periods (tens of
// ms each), which was most of `diag run -- true`; a raw tracepoint's detach does not wait.

#[inline(always)]
fn newborns_waiting() -> Option<*mut u64> {
    NEWBORNS_WAITING.get_ptr_mut(0)
}

/// Adds `delta` (wrapping) to the NEWBORNS count, atomically: parents and children run on
/// different CPUs.
#[inline(always)]
fn count_newborns(delta: u64) {
    if let Some(p) = newborns_waiting() {
        // SAFETY: map value pointer, 8-byte aligned; updated only atomically. The bpf target has
        // no `AtomicU64::fetch_add`; the intrinsic compiles to the BPF atomic add.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(p, delta) };
    }
}

#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn diag_sched_fork(ctx: RawTracePointContext) -> i32 {
    let (parent_tid, parent_tgid) = current_ids();
    if traced_task(parent_tid).is_none() {
        return 0;
    }
    // TP_PROTO(struct task_struct *parent, struct task_struct *child): the child's address is
    // only a key here, never dereferenced.
    let child: u64 = ctx.arg(1);
    let newborn = Newborn {
        parent_tgid,
        _pad: 0,
        // SAFETY: helper without arguments.
        fork_ns: unsafe { bpf_ktime_get_ns() },
    };
    if NEWBORNS.insert(child, newborn, 0).is_err() {
        bump(counter::UNTRACKED_TASKS);
        return 0;
    }
    count_newborns(1);
    0
}

/// The parent's report of a new process, as soon as its clone returns (see `kind::FORK`).
#[inline(always)]
fn on_forked(regs: *const u8, nr: u32, child: i64, tgid: u32) {
    let flags = match nr {
        SYS_CLONE => regs_word(regs, REGS_ARGS[0]),
        // SAFETY: user pointer to struct clone_args, whose first field is flags; probe_read checks.
        SYS_CLONE3 => unsafe {
            bpf_probe_read_user(regs_word(regs, REGS_ARGS[0]) as *const u64).unwrap_or(0)
        },
        _ => 0,
    };
    if flags & CLONE_THREAD != 0 || !in_diags_pid_namespace() {
        return;
    }
    emit_fork(tgid, child as u32, None);
}

#[inline(always)]
fn in_diags_pid_namespace() -> bool {
    ns_tgid().is_some()
}

/// Whether the current task is one of diag's own threads.
#[inline(always)]
fn is_diag() -> bool {
    ns_tgid() == Some(cfg(&DIAG_SELF_TGID))
}

/// The current task's tgid as diag's pid namespace sees it; None outside that namespace.
#[inline(always)]
fn ns_tgid() -> Option<u32> {
    let mut ids = aya_ebpf::bindings::bpf_pidns_info { pid: 0, tgid: 0 };
    // SAFETY: `ids` is a local of the size given.
    let rc = unsafe {
        aya_ebpf::helpers::generated::bpf_get_ns_current_pid_tgid(
            cfg(&DIAG_PIDNS_DEV),
            cfg(&DIAG_PIDNS_INO),
            &mut ids,
            core::mem::size_of::<aya_ebpf::bindings::bpf_pidns_info>() as u32,
        )
    };
    (rc == 0).then_some(ids.tgid)
}

#[inline(always)]
fn emit_fork(parent_tgid: u32, child: u32, fork_ns: Option<u64>) {
    let Some(mut entry) = EVENTS.reserve::<ProcEvent>(0) else {
        bump(counter::LOST_EVENTS);
        return;
    };
    // SAFETY: the reservation is exclusively ours until submit.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(&mut ev.header, kind::FORK);
    if let Some(t) = fork_ns {
        ev.header.ktime_ns = t;
    }
    ev.parent_tgid = parent_tgid;
    ev.child_tid = child;
    ev.filename_len = 0;
    ev.exit_status = -1;
    ev.signal = 0;
    ev.signal_code = 0;
    ev.signal_sender = 0;
    ev.signal_syscall = -1;
    entry.submit(wakeup_flags());
}

/// Makes the current task traced if a traced parent forked it and it has not run until now.
/// The kernel fires `sched_process_fork` before it wakes the child, so the entry is there.
#[inline(always)]
fn adopt_newborn(tid: u32) -> bool {
    // SAFETY: map value pointer; a plain read of the count.
    if newborns_waiting().is_none_or(|p| unsafe { *p } == 0) {
        return false;
    }
    // SAFETY: helper without arguments.
    let me = unsafe { bpf_get_current_task() };
    // SAFETY: plain value read from the map.
    let Some(newborn) = (unsafe { NEWBORNS.get(me) }).copied() else {
        return false;
    };
    if NEWBORNS.remove(me).is_err() {
        return false;
    }
    count_newborns(u64::MAX);
    track(tid);
    // A thread (CLONE_THREAD) joined its parent's thread group: counted, not reported.
    let (_, tgid) = current_ids();
    if tid != tgid {
        bump(counter::THREAD_FORKS);
        return true;
    }
    bump(counter::PROCESS_FORKS);
    if holds_rulesets(newborn.parent_tgid) {
        // The child's fd table is a copy of its parent's.
        let _ = RULESET_BUILDERS.insert(tgid, 1, 0);
    }
    emit_fork(newborn.parent_tgid, tid, Some(newborn.fork_ns));
    true
}

/// Keeps the filename a traced task passes to exec, for `sched_process_exec`.
#[inline(always)]
fn keep_exec_path(tid: u32, ptr: u64) {
    let Some(scratch) = EXEC_PATH_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch, no concurrent user on this CPU; the helper checks the user read.
    unsafe {
        (*scratch).len = read_user_str(&mut (*scratch).bytes, ptr);
        let _ = EXEC_PATHS.insert(tid, &*scratch, 0);
    }
}

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn diag_sched_exec(ctx: RawTracePointContext) -> i32 {
    let (tid, tgid) = current_ids();
    // TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm).
    let old: u64 = ctx.arg(1);
    let old = old as u32;
    if traced_task(tid).is_none() && traced_task(old).is_none() {
        return 0;
    }
    if old != tid {
        // A non-leader thread exec'd and took over the leader's pid.
        untrack(old);
        track(tid);
    }
    // Failures before the exec were the old program's (diag's own PATH search, between fork
    // and exec, among them): the new one starts with an empty recorder.
    if let Some(rec) = RECORDERS.get_ptr_mut(tgid) {
        // SAFETY: map value pointer.
        unsafe { (*rec).next = 0 };
    }
    // Ruleset fds are O_CLOEXEC: gone with the exec.
    if in_use(RULESET_BUILDERS_IN_USE) {
        let _ = RULESET_BUILDERS.remove(tgid);
    }
    let Some(mut entry) = EVENTS.reserve::<ProcEvent>(0) else {
        bump(counter::LOST_EVENTS);
        return 0;
    };
    // SAFETY: the reservation is exclusively ours until submit.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(&mut ev.header, kind::EXEC);
    ev.parent_tgid = 0;
    ev.child_tid = old;
    ev.filename_len = 0;
    ev.exit_status = -1;
    ev.signal = 0;
    ev.signal_code = 0;
    ev.signal_sender = 0;
    ev.signal_syscall = -1;
    // SAFETY: map value pointer, this task's own entry.
    if let Some(kept) = unsafe { EXEC_PATHS.get(old) } {
        ev.filename_len = kept.len;
        copy_data(&mut ev.filename, &kept.bytes);
    }
    entry.submit(wakeup_flags());
    let _ = EXEC_PATHS.remove(old);
    0
}

#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn diag_sched_exit(_ctx: RawTracePointContext) -> i32 {
    let (tid, tgid) = current_ids();
    // A child killed before it ever ran is adopted here, so its fork and exit are both seen.
    if traced_task(tid).is_none() && !adopt_newborn(tid) {
        return 0;
    }
    untrack(tid);
    if tid != tgid {
        return 0;
    }
    let _ = MESSAGE_BUDGET.remove(tgid);
    send_message_tail(tgid);
    let _ = RULESET_BUILDERS.remove(tgid);
    // SAFETY: plain value read from the map.
    let status = unsafe { EXIT_STATUS.get(tgid) }.copied().unwrap_or(-1);
    let _ = EXIT_STATUS.remove(tgid);
    // A process that exits 0 recovered from its failures: they are dropped unsent.
    match status {
        0 => {}
        s if s > 0 => flush_recorder(tgid, flush::FAILED_EXIT),
        _ => flush_recorder(tgid, flush::SIGNALED),
    }
    let _ = RECORDERS.remove(tgid);
    // SAFETY: plain value read from the map.
    let signal = unsafe { SIGNALS.get(tgid) }.copied().unwrap_or_default();
    let _ = SIGNALS.remove(tgid);
    let Some(mut entry) = EVENTS.reserve::<ProcEvent>(0) else {
        bump(counter::LOST_EVENTS);
        return 0;
    };
    // SAFETY: the reservation is exclusively ours until submit.
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    fill_header(&mut ev.header, kind::EXIT);
    ev.parent_tgid = 0;
    ev.child_tid = 0;
    ev.filename_len = 0;
    ev.exit_status = status;
    let died = status < 0;
    ev.signal = if died { signal.signal } else { 0 };
    ev.signal_code = signal.code;
    ev.signal_sender = signal.sender;
    ev.signal_syscall = signal.syscall;
    entry.submit(wakeup_flags());
    0
}

/// `si_code` of a seccomp SIGSYS; its siginfo then carries the syscall.
const SYS_SECCOMP: i32 = 1;
const SIGSYS: i32 = 31;
/// Offsets in `struct kernel_siginfo` (uapi layout): si_code, si_pid, and `_sigsys._syscall`.
const SI_CODE_OFF: usize = 8;
const SI_PID_OFF: usize = 16;
const SI_SYSCALL_OFF: usize = 24;

/// Keeps the last signal delivered to a traced process: when it dies without an exit status,
/// that signal ended it, and its `si_code` tells who sent it (the kernel, a sandbox, a process).
#[raw_tracepoint(tracepoint = "signal_deliver")]
pub fn diag_signal_deliver(ctx: RawTracePointContext) -> i32 {
    let (tid, tgid) = current_ids();
    if traced_task(tid).is_none() {
        return 0;
    }
    // TP_PROTO(int sig, struct kernel_siginfo *info, struct k_sigaction *ka); info is NULL
    // (SEND_SIG_NOINFO) for a SIGKILL, which carries no siginfo.
    let sig: u64 = ctx.arg(0);
    let info: u64 = ctx.arg(1);
    let read = |off: usize| -> i32 {
        if info < 4096 {
            return 0;
        }
        // SAFETY: kernel pointer from the tracepoint; probe_read checks the access.
        unsafe { bpf_probe_read_kernel((info as usize + off) as *const i32).unwrap_or(0) }
    };
    let code = read(SI_CODE_OFF);
    let sig = sig as i32;
    let delivered = DeliveredSignal {
        signal: sig,
        code: if info < 4096 { i32::MIN } else { code },
        sender: read(SI_PID_OFF) as u32,
        syscall: if sig == SIGSYS && code == SYS_SECCOMP {
            read(SI_SYSCALL_OFF)
        } else {
            -1
        },
    };
    let _ = SIGNALS.insert(tgid, delivered, 0);
    0
}

// ---- attribution evidence ------------------------------------------------------------------

/// Marks the current task's in-flight syscall with `bits`. Seccomp runs before `sys_enter`, so
/// its mark is kept even with nothing in flight; `sys_exit` clears marks either way.
#[inline(always)]
fn mark_inflight(bits: u32, cap: i32) {
    let (tid, _) = current_ids();
    if let Some(state) = traced_task(tid) {
        // SAFETY: map value pointer, written only by this task.
        unsafe {
            if (*state).inflight_nr != 0 || bits == evidence::SECCOMP_DENIED {
                (*state).evidence |= bits;
                if cap >= 0 {
                    (*state).denied_cap = cap;
                }
            }
        }
    }
}

/// `cap_capable`'s five raw arguments. Each is a volatile load at a constant offset: the
/// verifier rejects a context load at an offset computed from the argument's index.
#[inline(always)]
fn cap_capable_args(ctx: &RawTracePointContext) -> [u64; 5] {
    let base = ctx.as_ptr() as *const u64;
    // SAFETY: the tracepoint has five u64 argument slots; the verifier checks each offset.
    unsafe {
        [
            core::ptr::read_volatile(base),
            core::ptr::read_volatile(base.add(1)),
            core::ptr::read_volatile(base.add(2)),
            core::ptr::read_volatile(base.add(3)),
            core::ptr::read_volatile(base.add(4)),
        ]
    }
}

#[raw_tracepoint(tracepoint = "cap_capable")]
pub fn diag_cap_capable(ctx: RawTracePointContext) -> i32 {
    let args = cap_capable_args(&ctx);
    let pick = |i: u32| args.get(i as usize).copied().unwrap_or(0) as i32;
    let ret = pick(cfg(&DIAG_CAP_RET_ARG));
    if ret != 0 {
        let cap = pick(cfg(&DIAG_CAP_CAP_ARG));
        mark_inflight(evidence::CAP_DENIED, cap);
    }
    0
}

#[inline(always)]
fn tp_u32(ctx: &TracePointContext, off: u32) -> u32 {
    // SAFETY: offset read from tracefs for this kernel; read_at checks the access.
    unsafe { ctx.read_at::<u32>(off as usize).unwrap_or(0) }
}

/// A perf-event tracepoint (its `denied` flag is a record field); attached only where SELinux
/// is active, since its detach costs a grace period.
#[tracepoint(category = "avc", name = "selinux_audited")]
pub fn diag_selinux_audited(ctx: TracePointContext) -> u32 {
    if tp_u32(&ctx, cfg(&DIAG_AVC_DENIED_OFF)) != 0 {
        mark_inflight(evidence::SELINUX_DENIED, -1);
    }
    0
}

// Kernel-function probes: direct evidence where the kernel lets fexit load (best-effort).

#[inline(always)]
fn mark_if_failed(ctx: &FExitContext, bits: u32) -> i32 {
    if ctx.ret::<i64>().map(|r| r as i32 != 0).unwrap_or(false) {
        mark_inflight(bits, -1);
    }
    0
}

#[fexit(function = "security_file_open")]
pub fn diag_fexit_security_file_open(ctx: FExitContext) -> i32 {
    mark_if_failed(&ctx, evidence::LSM_FILE_OPEN_DENIED)
}

#[fexit(function = "hook_file_open")]
pub fn diag_fexit_landlock_file_open(ctx: FExitContext) -> i32 {
    mark_if_failed(&ctx, evidence::LANDLOCK_DENIED)
}

#[fexit(function = "generic_permission")]
pub fn diag_fexit_generic_permission(ctx: FExitContext) -> i32 {
    mark_if_failed(&ctx, evidence::DAC_DENIED)
}

#[fexit(function = "__secure_computing")]
pub fn diag_fexit_secure_computing(ctx: FExitContext) -> i32 {
    mark_if_failed(&ctx, evidence::SECCOMP_DENIED)
}

#[fexit(function = "pids_can_fork")]
pub fn diag_fexit_pids_can_fork(ctx: FExitContext) -> i32 {
    mark_if_failed(&ctx, evidence::PIDS_DENIED)
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
