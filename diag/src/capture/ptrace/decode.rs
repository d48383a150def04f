//! Turns a syscall-exit stop into model events, with the per-process state that needs: which
//! fds write to stdout/stderr, each process's message budget, and who builds Landlock rulesets.
//! Memory is read only for calls that produce an event, never for ordinary successes.

use super::memory::{self, PATH_MAX};
use crate::capture::syscall_args::{self, landlock_attr, landlock_op};
use crate::capture::CaptureConfig;
use crate::model::syscalls::flag_arg;
use crate::model::{
    errno::ErrnoSelection, syscalls, CaptureStats, DeathSignal, Event, EvidenceSource, Failure,
    Flush, KernelEvidence, LandlockCall, Message, Origin, PathCut, Text,
};
use diag_ebpf::{DATA_LEN, MAX_SYSCALLS, RECENT_SLOTS, TAIL_SLOTS};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use std::collections::{HashMap, VecDeque};

/// One syscall as the registers show it at its exit stop.
#[derive(Clone, Copy, Debug)]
pub struct Syscall {
    pub nr: u32,
    pub ret: i64,
    pub args: [u64; 6],
}

impl Syscall {
    pub fn from_regs(r: &libc::user_regs_struct) -> Self {
        Syscall {
            nr: r.orig_rax as u32,
            ret: r.rax as i64,
            args: [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9],
        }
    }

    /// The errno of a failed call (the kernel returns -4095..-1).
    fn errno(&self) -> Option<i32> {
        (-4095..0).contains(&self.ret).then_some(-self.ret as i32)
    }

    /// ERESTARTSYS .. ERESTART_RESTARTBLOCK (512-516): a call a signal interrupted, seen at
    /// its exit stop before the kernel restarts it or turns it into EINTR. No program sees it.
    fn will_restart(&self) -> bool {
        (-516..=-512).contains(&self.ret)
    }
}

/// Which stops the call went through before its exit stop.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stops {
    pub entry: bool,
    pub seccomp: bool,
    /// The call is a ptrace request on a task diag traces (see [`KernelEvidence`]).
    pub names_traced_task: bool,
}

impl Stops {
    fn evidence(self) -> KernelEvidence {
        KernelEvidence {
            source: EvidenceSource::CallOnly,
            seccomp_passed: self.seccomp,
            traced_by_diag: self.names_traced_task,
            // Every syscall is TRACE'd when entry stops are on: only a refusal skips the stop.
            seccomp_denied: self.entry && !self.seccomp,
            ..KernelEvidence::default()
        }
    }
}

#[derive(Clone, Default)]
struct ProcState {
    /// fds dup'd from stdout/stderr, with the stream they write to (tmux writes its errors
    /// through a dup of fd 2).
    message_fds: Vec<(u64, u32)>,
    messages_sent: u32,
    /// It created a Landlock ruleset, or its parent held one when it forked, and it has not
    /// exec'd since (ruleset fds are O_CLOEXEC): its opens, dups and closes are reported.
    holds_rulesets: bool,
    /// Its flight recorder, as the kernel keeps one: the last failures not reported at once,
    /// with their repeats, sent when the process complains or dies.
    recent: VecDeque<(Failure, u64)>,
    /// The last signal delivered to it (seen at its signal-delivery stop).
    signal: Option<DeathSignal>,
    /// The newest writes past its message budget, sent when it ends (as the kernel's tail).
    message_tail: VecDeque<Message>,
}

/// Who a thread is, read once from procfs and kept until exec, prctl(PR_SET_NAME) or a
/// set*id call changes it: two procfs reads per failure would cost more than the stops.
#[derive(Clone)]
struct Identity {
    comm: Text,
    uid: Option<u32>,
    gid: Option<u32>,
}

/// Successful calls after which a thread's cached [`Identity`] is stale.
const IDENTITY_CHANGES: &[i64] = &[
    libc::SYS_prctl,
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setfsuid,
    libc::SYS_setfsgid,
];

pub struct Decoder {
    errnos: ErrnoSelection,
    watched: Box<[bool; MAX_SYSCALLS]>,
    path_arg: Box<[u8; MAX_SYSCALLS]>,
    message_burst: u32,
    stdout_complains: bool,
    procs: HashMap<u32, ProcState>,
    identities: HashMap<i32, Identity>,
    buf: Box<[u8; DATA_LEN]>,
    /// A failure's path argument: PATH_MAX bytes, the most the kernel takes, so that a path
    /// fills it only when the call itself could not have used it whole.
    path_buf: Box<[u8; PATH_MAX]>,
    pub stats: CaptureStats,
    /// Processes whose flight recorder holds failures.
    recording: usize,
}

/// Processes that may hold a flight recorder at once (the kernel's `RECORDERS` map size).
const RECORDING_PROCESSES: usize = 1024;

const F_DUPFD: u64 = libc::F_DUPFD as u64;
const F_DUPFD_CLOEXEC: u64 = libc::F_DUPFD_CLOEXEC as u64;

impl Decoder {
    pub fn new(config: &CaptureConfig) -> Self {
        let mut watched = Box::new([false; MAX_SYSCALLS]);
        for &nr in config
            .syscalls
            .iter()
            .filter(|&&n| (n as usize) < MAX_SYSCALLS)
        {
            watched[nr as usize] = true;
        }
        Decoder {
            errnos: config.errnos.clone(),
            watched,
            path_arg: Box::new(config.path_arg_table()),
            message_burst: config.message_burst,
            stdout_complains: config.stdout_complains,
            procs: HashMap::new(),
            identities: HashMap::new(),
            buf: Box::new([0; DATA_LEN]),
            path_buf: Box::new([0; PATH_MAX]),
            stats: CaptureStats::default(),
            recording: 0,
        }
    }

    /// A new process inherits its parent's descriptors, so its message fds and rulesets too.
    pub fn fork(&mut self, parent: u32, child: u32) {
        let Some(p) = self.procs.get(&parent) else {
            return;
        };
        let (fds, holds_rulesets) = (p.message_fds.clone(), p.holds_rulesets);
        if !fds.is_empty() || holds_rulesets {
            let c = self.procs.entry(child).or_default();
            c.message_fds = fds;
            c.holds_rulesets = holds_rulesets;
        }
    }

    /// Thread `tid` ended; `pid` too when it was the process's last thread.
    pub fn exit(&mut self, pid: Option<u32>, tid: Pid) {
        self.identities.remove(&tid.as_raw());
        let gone = pid.and_then(|pid| self.procs.remove(&pid));
        if gone.is_some_and(|p| !p.recent.is_empty()) {
            self.recording -= 1;
        }
    }

    /// A `close(fd)` seen at its seccomp stop: the fd is released whatever the call returns.
    pub fn closed(&mut self, pid: u32, fd: u64, sink: &mut dyn FnMut(Event)) {
        self.forget_fd(pid, fd);
        if self.holds_rulesets(pid) {
            sink(Event::FdClosed { pid, fd: fd as i32 });
        }
    }

    fn forget_identity(&mut self, tid: Pid) {
        self.identities.remove(&tid.as_raw());
    }

    /// After exec the thread has a new name (and maybe new ids), and no close-on-exec fds.
    pub fn exec(&mut self, pid: u32, tid: Pid) {
        self.forget_identity(tid);
        if let Some(p) = self.procs.get_mut(&pid) {
            p.holds_rulesets = false;
            // The failures were the old program's.
            if !p.recent.is_empty() {
                p.recent.clear();
                self.recording -= 1;
            }
        }
    }

    /// A signal is about to be delivered to `tid` (its signal-delivery stop).
    pub fn signal_delivered(&mut self, pid: u32, tid: Pid, sig: nix::sys::signal::Signal) {
        let info = nix::sys::ptrace::getsiginfo(tid).ok();
        let code = info.map(|i| i.si_code);
        let sender = info
            .filter(|i| [libc::SI_USER, libc::SI_TKILL, libc::SI_QUEUE].contains(&i.si_code))
            // SAFETY: si_code says the kill member of the union is the one filled in.
            .map(|i| unsafe { i.si_pid() } as u32);
        // _sigsys._syscall: after si_signo, si_errno, si_code, padding and _call_addr.
        let syscall = info
            .filter(|i| {
                sig == nix::sys::signal::Signal::SIGSYS && i.si_code == crate::model::SYS_SECCOMP
            })
            .map(|i| {
                // SAFETY: siginfo_t is plain data of at least 32 bytes.
                let bytes: &[u8; 32] = unsafe { &*(&i as *const libc::siginfo_t).cast() };
                u32::from_ne_bytes(bytes[24..28].try_into().unwrap())
            });
        self.procs.entry(pid).or_default().signal = Some(DeathSignal {
            signal: sig as i32,
            code,
            sender,
            syscall,
        });
    }

    /// A task of `pid` is dying of a SIGSYS no signal-delivery stop showed, in syscall `nr`: a
    /// seccomp filter's kill.
    pub fn killed_on(&mut self, pid: u32, nr: u32) {
        let p = self.procs.entry(pid).or_default();
        if p.signal.is_none_or(|s| s.signal != libc::SIGSYS) {
            p.signal = seccomp_kill(nix::sys::signal::Signal::SIGSYS).map(|s| DeathSignal {
                syscall: Some(nr),
                ..s
            });
        }
    }

    /// Process `pid` is gone with `status`: its recorder is sent if it failed or was killed
    /// (dropped if it exited 0), and the signal that ended it returned.
    pub fn ended(
        &mut self,
        pid: u32,
        status: WaitStatus,
        sink: &mut dyn FnMut(Event),
    ) -> Option<DeathSignal> {
        let p = self.procs.remove(&pid)?;
        if !p.recent.is_empty() {
            self.recording -= 1;
        }
        send_tail(p.message_tail, sink);
        let (flush, signal) = match status {
            WaitStatus::Exited(_, 0) => return None,
            WaitStatus::Exited(..) => (Flush::FailedExit, None),
            WaitStatus::Signaled(_, sig, _) => {
                let seen = p.signal.filter(|s| s.signal == sig as i32);
                (Flush::Signaled, seen.or_else(|| seccomp_kill(sig)))
            }
            _ => return None,
        };
        send_recent(p.recent, flush, sink);
        signal
    }

    /// Tracing ended: what the recorders of processes still alive hold.
    pub fn trace_ended(&mut self, sink: &mut dyn FnMut(Event)) {
        self.recording = 0;
        for (_, p) in self.procs.drain() {
            send_tail(p.message_tail, sink);
            send_recent(p.recent, Flush::TraceEnd, sink);
        }
    }

    /// Who made the call: from procfs while the thread is stopped at it, then cached.
    pub fn origin(&mut self, pid: u32, tid: Pid) -> Origin {
        let id = self
            .identities
            .entry(tid.as_raw())
            .or_insert_with(|| read_identity(pid, tid));
        Origin {
            time_ns: now_ns(),
            pid,
            tid: tid.as_raw() as u32,
            comm: id.comm.clone(),
            uid: id.uid,
            gid: id.gid,
        }
    }

    pub fn syscall_exit(
        &mut self,
        pid: u32,
        tid: Pid,
        sc: &Syscall,
        stops: Stops,
        sink: &mut dyn FnMut(Event),
    ) {
        if sc.nr as usize >= MAX_SYSCALLS {
            return;
        }
        if sc.will_restart() {
            return;
        }
        match sc.errno() {
            Some(errno) => self.failed(pid, tid, sc, errno, stops, sink),
            None => self.succeeded(pid, tid, sc, sink),
        }
    }

    fn failed(
        &mut self,
        pid: u32,
        tid: Pid,
        sc: &Syscall,
        errno: i32,
        stops: Stops,
        sink: &mut dyn FnMut(Event),
    ) {
        let nr = sc.nr as usize;
        let path_arg = self.path_arg[nr] as usize;
        let has_path = path_arg < 6;
        let name = syscalls::name(sc.nr);
        let mut path_cut = None;
        let path = has_path.then(|| {
            let n = memory::read_cstr(tid, sc.args[path_arg], &mut self.path_buf[..]);
            if n == self.path_buf.len() {
                path_cut = Some(PathCut {
                    head: n,
                    ..PathCut::default()
                });
            }
            Text::new(&self.path_buf[..n])
        });
        let reported = self.watched[nr]
            && self
                .errnos
                .watches(&name, errno, path.as_ref().map(Text::as_bytes));
        let failure = Failure {
            origin: self.origin(pid, tid),
            errno,
            path,
            path_cut,
            flags: flag_arg(&name).map(|i| sc.args[i]),
            flags_text: None,
            args: Some(sc.args),
            evidence: stops.evidence(),
            syscall: name,
            signal: None,
            at_failure: None,
        };
        if reported {
            sink(Event::Failure(failure));
        } else {
            let p = self.procs.entry(pid).or_default();
            if p.recent.is_empty() {
                // As the kernel's recorder map: a bounded number of processes hold one.
                if self.recording >= RECORDING_PROCESSES {
                    self.stats.unrecorded_failures += 1;
                    return;
                }
                self.recording += 1;
            }
            record(&mut p.recent, failure);
        }
    }

    fn succeeded(&mut self, pid: u32, tid: Pid, sc: &Syscall, sink: &mut dyn FnMut(Event)) {
        match sc.nr as i64 {
            libc::SYS_write | libc::SYS_writev if sc.ret > 0 => self.message(pid, tid, sc, sink),
            libc::SYS_open | libc::SYS_openat | libc::SYS_openat2 | libc::SYS_creat => {
                self.forget_fd(pid, sc.ret as u64);
                let arg = self.path_arg[sc.nr as usize] as usize;
                if arg < 6 && self.holds_rulesets(pid) {
                    let n = memory::read_cstr(tid, sc.args[arg], &mut self.buf[..]);
                    sink(Event::FdOpened {
                        pid,
                        fd: sc.ret as i32,
                        path: Text::new(&self.buf[..n]),
                    });
                }
            }
            libc::SYS_dup | libc::SYS_dup2 | libc::SYS_dup3 | libc::SYS_fcntl => {
                self.dup(pid, sc);
                let dup = syscall_args::dup(&syscalls::name(sc.nr), &sc.args, sc.ret);
                if let Some((old, new, cloexec)) = dup.filter(|_| self.holds_rulesets(pid)) {
                    sink(Event::FdDup {
                        pid,
                        old,
                        new,
                        cloexec,
                    });
                }
            }
            libc::SYS_close => self.closed(pid, sc.args[0], sink),
            nr if IDENTITY_CHANGES.contains(&nr) => self.forget_identity(tid),
            libc::SYS_landlock_create_ruleset
            | libc::SYS_landlock_add_rule
            | libc::SYS_landlock_restrict_self => self.landlock(pid, tid, sc, sink),
            _ => {}
        }
    }

    fn holds_rulesets(&self, pid: u32) -> bool {
        self.procs.get(&pid).is_some_and(|p| p.holds_rulesets)
    }

    fn stream_of(&self, pid: u32, fd: u64) -> Option<u32> {
        if fd == 1 || fd == 2 {
            return Some(fd as u32);
        }
        let p = self.procs.get(&pid)?;
        p.message_fds
            .iter()
            .find(|(f, _)| *f == fd)
            .map(|&(_, s)| s)
    }

    fn forget_fd(&mut self, pid: u32, fd: u64) {
        if let Some(p) = self.procs.get_mut(&pid) {
            p.message_fds.retain(|(f, _)| *f != fd);
        }
    }

    fn dup(&mut self, pid: u32, sc: &Syscall) {
        if sc.nr as i64 == libc::SYS_fcntl && !matches!(sc.args[1], F_DUPFD | F_DUPFD_CLOEXEC) {
            return;
        }
        let new = sc.ret as u64;
        if new <= 2 {
            return;
        }
        // dup2 of something else over a tracked fd replaces it.
        self.forget_fd(pid, new);
        if let Some(stream) = self.stream_of(pid, sc.args[0]) {
            self.procs
                .entry(pid)
                .or_default()
                .message_fds
                .push((new, stream));
        }
    }

    fn message(&mut self, pid: u32, tid: Pid, sc: &Syscall, sink: &mut dyn FnMut(Event)) {
        let Some(stream) = self.stream_of(pid, sc.args[0]) else {
            return;
        };
        let burst = self.message_burst;
        let p = self.procs.entry(pid).or_default();
        if (stream == 2 || self.stdout_complains) && !p.recent.is_empty() {
            send_recent(std::mem::take(&mut p.recent), Flush::Complained, sink);
            self.recording -= 1;
        }
        let past_budget = p.messages_sent >= burst;
        p.messages_sent = p.messages_sent.saturating_add(1);
        let written = sc.ret as u64;
        let (base, len) = if sc.nr as i64 == libc::SYS_writev {
            // First iovec only: { void *base; size_t len }, as the eBPF backend reads it.
            let mut iov = [0u8; 16];
            memory::read(tid, sc.args[1], &mut iov);
            let field = |i: usize| u64::from_ne_bytes(iov[i * 8..i * 8 + 8].try_into().unwrap());
            (field(0), field(1).min(written))
        } else {
            (sc.args[1], written)
        };
        let want = (len as usize).min(DATA_LEN);
        let n = memory::read(tid, base, &mut self.buf[..want]);
        let message = Message {
            origin: self.origin(pid, tid),
            fd: stream as i32,
            text: Text::new(&self.buf[..n]),
            truncated: len as usize > DATA_LEN,
        };
        if !past_budget {
            sink(Event::Message(message));
            return;
        }
        let tail = &mut self.procs.entry(pid).or_default().message_tail;
        if tail.len() == TAIL_SLOTS {
            tail.pop_front();
            self.stats.messages_dropped += 1;
        }
        tail.push_back(message);
    }

    fn landlock(&mut self, pid: u32, tid: Pid, sc: &Syscall, sink: &mut dyn FnMut(Event)) {
        let name = syscalls::name(sc.nr);
        let n = match landlock_attr(&name, &sc.args) {
            Some((addr, len)) => memory::read(tid, addr, &mut self.buf[..len.min(DATA_LEN)]),
            None => 0,
        };
        let Some(op) = landlock_op(&name, &sc.args, sc.ret, &self.buf[..n]) else {
            return;
        };
        if sc.nr as i64 == libc::SYS_landlock_create_ruleset {
            self.procs.entry(pid).or_default().holds_rulesets = true;
        }
        sink(Event::Landlock(LandlockCall {
            origin: self.origin(pid, tid),
            op,
        }));
    }
}

/// Monotonic nanoseconds, the clock the eBPF backend's events use.
/// Keeps `f` in a recorder: a repeat of the last call (same thread, call, result, arguments)
/// is counted, and the oldest failure makes room past [`RECENT_SLOTS`].
fn record(recent: &mut VecDeque<(Failure, u64)>, f: Failure) {
    if let Some((last, times)) = recent.back_mut() {
        if last.origin.tid == f.origin.tid
            && last.syscall == f.syscall
            && last.errno == f.errno
            && last.args == f.args
        {
            *times += 1;
            last.origin.time_ns = f.origin.time_ns;
            return;
        }
    }
    if recent.len() == RECENT_SLOTS {
        recent.pop_front();
    }
    recent.push_back((f, 1));
}

/// A seccomp filter's SECCOMP_RET_KILL is forced on the task without a signal-delivery stop
/// (the kernel skips the tracer for it), so a SIGSYS death never seen at a stop is one; a SIGSYS
/// any process sent would have stopped there first.
fn seccomp_kill(sig: nix::sys::signal::Signal) -> Option<DeathSignal> {
    (sig == nix::sys::signal::Signal::SIGSYS).then_some(DeathSignal {
        signal: libc::SIGSYS,
        code: Some(crate::model::SYS_SECCOMP),
        sender: None,
        syscall: None,
    })
}

fn send_tail(tail: VecDeque<Message>, sink: &mut dyn FnMut(Event)) {
    for m in tail {
        sink(Event::Message(m));
    }
}

fn send_recent(recent: VecDeque<(Failure, u64)>, flush: Flush, sink: &mut dyn FnMut(Event)) {
    for (failure, times) in recent {
        sink(Event::Recent {
            failure,
            times,
            flush,
        });
    }
}

pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn read_identity(pid: u32, tid: Pid) -> Identity {
    let task = format!("/proc/{pid}/task/{tid}");
    let comm = std::fs::read(format!("{task}/comm")).unwrap_or_default();
    let status = std::fs::read_to_string(format!("{task}/status")).unwrap_or_default();
    // "Uid:\treal\teffective\t...": the effective id is what access checks use.
    let effective = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Identity {
        comm: Text::new(comm.strip_suffix(b"\n").unwrap_or(&comm)),
        uid: effective("Uid:"),
        gid: effective("Gid:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, ret: i64, args: [u64; 6]) -> Syscall {
        Syscall {
            nr: syscalls::number(name).unwrap(),
            ret,
            args,
        }
    }

    #[test]
    fn messages_follow_dups_of_stderr_and_forget_closed_fds() {
        let me = nix::unistd::getpid();
        let pid = me.as_raw() as u32;
        let mut d = Decoder::new(&CaptureConfig::default());
        let mut events = vec![];
        let text = b"create window failed\n";
        let write5 = call(
            "write",
            text.len() as i64,
            [5, text.as_ptr() as u64, 21, 0, 0, 0],
        );
        d.syscall_exit(pid, me, &write5, Stops::default(), &mut |e| events.push(e));
        assert!(events.is_empty(), "fd 5 is not a message stream yet");

        d.syscall_exit(
            pid,
            me,
            &call("dup", 5, [2, 0, 0, 0, 0, 0]),
            Stops::default(),
            &mut |e| events.push(e),
        );
        d.syscall_exit(pid, me, &write5, Stops::default(), &mut |e| events.push(e));
        match events.as_slice() {
            [Event::Message(m)] => {
                assert_eq!(m.fd, 2);
                assert_eq!(m.text.as_bytes(), text);
                assert_eq!(m.origin.pid, pid);
            }
            other => panic!("{other:?}"),
        }
        d.syscall_exit(
            pid,
            me,
            &call("close", 0, [5, 0, 0, 0, 0, 0]),
            Stops::default(),
            &mut |e| events.push(e),
        );
        d.syscall_exit(pid, me, &write5, Stops::default(), &mut |e| events.push(e));
        assert_eq!(
            events.len(),
            1,
            "a closed dup is no longer a message stream"
        );
    }

    #[test]
    fn ruleset_holders_report_dups_and_closes_until_exec() {
        let me = nix::unistd::getpid();
        let (parent, child) = (me.as_raw() as u32, 1_000_000);
        let mut d = Decoder::new(&CaptureConfig::default());
        let mut events = vec![];
        let mut exit = |d: &mut Decoder, pid: u32, sc: Syscall| {
            d.syscall_exit(pid, me, &sc, Stops::default(), &mut |e| events.push(e))
        };
        let attr = [4u64, 0, 0];
        let create = [attr.as_ptr() as u64, 8, 0, 0, 0, 0];
        exit(&mut d, parent, call("dup", 9, [5, 0, 0, 0, 0, 0]));
        exit(&mut d, parent, call("landlock_create_ruleset", 3, create));
        exit(&mut d, parent, call("dup", 9, [3, 0, 0, 0, 0, 0]));
        d.fork(parent, child);
        exit(&mut d, child, call("close", 0, [3, 0, 0, 0, 0, 0]));
        d.exec(child, me);
        exit(&mut d, child, call("close", 0, [9, 0, 0, 0, 0, 0]));
        let fds: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                Event::FdDup { pid, old, new, .. } => Some(format!("{pid} dup {old}->{new}")),
                Event::FdClosed { pid, fd } => Some(format!("{pid} close {fd}")),
                _ => None,
            })
            .collect();
        // Not before the ruleset exists, and not after the exec that closed its fds.
        assert_eq!(
            fds,
            [format!("{parent} dup 3->9"), format!("{child} close 3")]
        );
    }

    #[test]
    fn failures_carry_path_flags_and_what_the_stops_showed() {
        let me = nix::unistd::getpid();
        let pid = me.as_raw() as u32;
        let mut d = Decoder::new(&CaptureConfig::default());
        let path = b"/dev/ptmx\0";
        let mut events = vec![];
        let openat = call(
            "openat",
            -(libc::EACCES as i64),
            [
                libc::AT_FDCWD as u64,
                path.as_ptr() as u64,
                libc::O_RDWR as u64,
                0,
                0,
                0,
            ],
        );
        let passed = Stops {
            entry: false,
            seccomp: true,
            ..Stops::default()
        };
        d.syscall_exit(pid, me, &openat, passed, &mut |e| events.push(e));
        let refused = Stops {
            entry: true,
            seccomp: false,
            ..Stops::default()
        };
        d.syscall_exit(pid, me, &openat, refused, &mut |e| events.push(e));
        // Unwatched errno: nothing.
        let einval = Syscall {
            ret: -(libc::EINVAL as i64),
            ..openat
        };
        d.syscall_exit(pid, me, &einval, passed, &mut |e| events.push(e));
        let [Event::Failure(a), Event::Failure(b)] = events.as_slice() else {
            panic!("{events:?}");
        };
        assert_eq!(a.syscall, "openat");
        assert_eq!(a.errno, libc::EACCES);
        assert_eq!(a.path.as_ref().unwrap().as_bytes(), b"/dev/ptmx");
        assert_eq!(a.flags, Some(libc::O_RDWR as u64));
        assert_eq!(a.evidence.source, EvidenceSource::CallOnly);
        assert!(a.evidence.seccomp_passed && !a.evidence.seccomp_denied);
        assert!(b.evidence.seccomp_denied && !b.evidence.seccomp_passed);
    }

    #[test]
    fn paths_are_read_whole_up_to_path_max_and_marked_cut_beyond() {
        let me = nix::unistd::getpid();
        let mut d = Decoder::new(&CaptureConfig::default());
        let long = format!("/{}\0", "d/".repeat(1000));
        let endless = vec![b'e'; PATH_MAX + 10];
        let mut events = vec![];
        for path in [long.as_bytes(), &endless] {
            let args = [libc::AT_FDCWD as u64, path.as_ptr() as u64, 0, 0, 0, 0];
            let openat = call("openat", -(libc::EACCES as i64), args);
            let stops = Stops {
                entry: true,
                seccomp: true,
                ..Stops::default()
            };
            d.syscall_exit(me.as_raw() as u32, me, &openat, stops, &mut |e| {
                events.push(e)
            });
        }
        let [Event::Failure(whole), Event::Failure(cut)] = events.as_slice() else {
            panic!("{events:?}");
        };
        assert_eq!(
            whole.path.as_ref().unwrap().as_bytes(),
            &long.as_bytes()[..long.len() - 1]
        );
        assert!(whole.path_cut.is_none());
        assert_eq!(cut.path.as_ref().unwrap().as_bytes(), &endless[..PATH_MAX]);
        assert!(cut.path_truncated());
    }
}
