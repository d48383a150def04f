//! The tracer loop: one `waitpid` per stop, each stop handled and the task resumed at once.
//!
//! Per task it remembers whether a syscall is in flight (so the task is resumed with
//! PTRACE_SYSCALL until its exit stop) and which stops the call went through. Tasks enter the
//! table through [`Tracer::seize`] (the launched child today; every thread of a running process
//! for `attach` later) or as auto-attached children of fork, vfork and clone.

use super::decode::{self, Decoder, Stops, Syscall};
use super::prefilter::{Mode, Prefilter, SETTLED_AT_ENTRY};
use crate::model::{CaptureStats, Event, Exec, Exit, Fork, Text};
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::ptrace::{self, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::HashMap;

#[derive(Clone, Copy, Default)]
struct Task {
    /// Its process (thread group) id; 0 until known.
    pid: u32,
    in_syscall: bool,
    stops: Stops,
    /// Auto-attached tasks report one PTRACE_EVENT_STOP first: that one only needs a resume.
    started: bool,
    /// Its process has a seccomp filter besides diag's: every syscall stops at entry too, so a
    /// call that filter refuses (no seccomp stop follows) is seen at its exit.
    filtered: bool,
}

/// What one [`Tracer::step`] saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Stopped,
    /// A signal interrupted the wait.
    Interrupted,
    /// No traced task is left.
    TreeGone,
}

pub struct Tracer {
    mode: Mode,
    /// By syscall number: whether diag's filter stops the call (run); empty when attached.
    stops_at_seccomp: Vec<bool>,
    /// How many of a task's seccomp filters are diag's.
    own_filters: u32,
    decoder: Decoder,
    tasks: HashMap<i32, Task>,
    root: Option<Pid>,
    root_status: Option<WaitStatus>,
    stats: CaptureStats,
}

impl Tracer {
    pub fn new(mode: Mode, decoder: Decoder, prefilter: Option<&Prefilter>) -> Self {
        Tracer {
            mode,
            stops_at_seccomp: prefilter.map_or_else(Vec::new, |f| f.stops_at_seccomp.clone()),
            own_filters: prefilter.map_or(0, Prefilter::programs),
            decoder,
            tasks: HashMap::new(),
            root: None,
            root_status: None,
            stats: CaptureStats::default(),
        }
    }

    /// The options every traced task gets. For `run`: diag's filter cannot be removed, and a
    /// TRACE'd syscall without a tracer fails with ENOSYS, so a tree that outlives diag's death
    /// is killed rather than left broken (EXITKILL), as `strace --seccomp-bpf` does; daemons
    /// diag lets go of on purpose are detached (which clears it) and named in the report. An attached process
    /// has no filter of diag's and simply runs on when diag lets go.
    fn options(&self) -> Options {
        let options = Options::PTRACE_O_TRACESYSGOOD
            | Options::PTRACE_O_TRACEFORK
            | Options::PTRACE_O_TRACEVFORK
            | Options::PTRACE_O_TRACECLONE
            | Options::PTRACE_O_TRACEEXEC
            | Options::PTRACE_O_TRACESECCOMP
            | Options::PTRACE_O_TRACEEXIT;
        if self.mode == Mode::Attached {
            options
        } else {
            options | Options::PTRACE_O_EXITKILL
        }
    }

    /// Starts tracing thread `tid` of process `pid` without stopping it. The first task seized
    /// is the root whose exit status [`Tracer::root_status`] reports.
    pub fn seize(&mut self, tid: Pid, pid: u32) -> nix::Result<()> {
        self.seize_task(tid, pid)?;
        self.root.get_or_insert(tid);
        Ok(())
    }

    /// Starts tracing thread `tid` of a running process `pid`: seized, then interrupted, so that
    /// its first stop resumes it with syscall stops on.
    pub fn seize_running(&mut self, tid: Pid, pid: u32) -> nix::Result<()> {
        self.seize_task(tid, pid)?;
        ptrace::interrupt(tid)
    }

    fn seize_task(&mut self, tid: Pid, pid: u32) -> nix::Result<()> {
        ptrace::seize(tid, self.options())?;
        self.tasks.insert(
            tid.as_raw(),
            Task {
                pid,
                started: true,
                ..Task::default()
            },
        );
        Ok(())
    }

    /// Lets every traced task go (the end of tracing): each is interrupted and detached at its
    /// next stop, a pending signal passed on. Within `limit`; the kernel detaches the rest when
    /// diag exits (or, with EXITKILL, kills them).
    pub fn detach_all(&mut self, limit: std::time::Duration, sink: &mut dyn FnMut(Event)) {
        for &tid in self.tasks.keys() {
            let _ = ptrace::interrupt(Pid::from_raw(tid));
        }
        let deadline = std::time::Instant::now() + limit;
        while !self.tasks.is_empty() && std::time::Instant::now() < deadline {
            let status = match waitpid(None, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                Ok(s) => s,
                Err(_) => return,
            };
            let (tid, sig) = match status {
                WaitStatus::Exited(tid, _) | WaitStatus::Signaled(tid, ..) => {
                    self.gone(tid, status, sink);
                    continue;
                }
                WaitStatus::Stopped(tid, sig) => (tid, Some(sig)),
                WaitStatus::PtraceEvent(tid, ..) | WaitStatus::PtraceSyscall(tid) => (tid, None),
                _ => continue,
            };
            // ESRCH: it died meanwhile; its exit is not ours to report any more.
            let _ = ptrace::detach(tid, sig);
            self.tasks.remove(&tid.as_raw());
        }
        self.decoder.trace_ended(sink);
    }

    pub fn root_status(&self) -> Option<WaitStatus> {
        self.root_status
    }

    /// Tasks still traced.
    pub fn tasks(&self) -> usize {
        self.tasks.len()
    }

    pub fn stats(&self) -> CaptureStats {
        CaptureStats {
            messages_dropped: self.decoder.stats.messages_dropped,
            ..self.stats.clone()
        }
    }

    /// Waits for the next stop of any traced task and handles it.
    pub fn step(&mut self, sink: &mut dyn FnMut(Event)) -> Result<Step> {
        let status = match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(s) => s,
            Err(Errno::EINTR) => return Ok(Step::Interrupted),
            Err(Errno::ECHILD) => return Ok(Step::TreeGone),
            Err(e) => return Err(e).context("waiting for traced tasks"),
        };
        match status {
            WaitStatus::PtraceSyscall(tid) => self.syscall_stop(tid, sink),
            WaitStatus::PtraceEvent(tid, sig, event) => self.event_stop(tid, sig, event, sink),
            // Signal-delivery stop: note it (it may end the process), pass it on.
            WaitStatus::Stopped(tid, sig) => {
                let pid = self.pid_of(tid);
                self.decoder.signal_delivered(pid, tid, sig);
                self.resume(tid, Some(sig))
            }
            WaitStatus::Exited(tid, _) | WaitStatus::Signaled(tid, ..) => {
                self.gone(tid, status, sink)
            }
            _ => {}
        }
        Ok(Step::Stopped)
    }

    fn task(&mut self, tid: Pid) -> &mut Task {
        self.tasks.entry(tid.as_raw()).or_default()
    }

    fn pid_of(&mut self, tid: Pid) -> u32 {
        let t = self.task(tid);
        if t.pid == 0 {
            t.pid = read_tgid(tid).unwrap_or(tid.as_raw() as u32);
        }
        t.pid
    }

    fn resume(&mut self, tid: Pid, sig: Option<Signal>) {
        let t = *self.task(tid);
        // ESRCH means the task was killed meanwhile; its exit is reported next.
        let _ = if self.mode != Mode::Prefilter || t.in_syscall || t.filtered {
            ptrace::syscall(tid, sig)
        } else {
            ptrace::cont(tid, sig)
        };
    }

    fn syscall_stop(&mut self, tid: Pid, sink: &mut dyn FnMut(Event)) {
        let mode = self.mode;
        // An attached task may have been inside a syscall when diag arrived: ask the kernel
        // which stop this is rather than count them.
        let exit_stop = (mode == Mode::Attached).then(|| at_syscall_exit(tid));
        let t = self.task(tid);
        if let Some(exit) = exit_stop {
            t.in_syscall = exit;
        }
        if !t.in_syscall {
            // Entry stop (every-stop mode): the seccomp stop, if any filter lets it, comes next.
            // Without diag's filter (attach) a missing seccomp stop says nothing.
            t.in_syscall = true;
            t.stops = Stops {
                entry: mode != Mode::Attached,
                ..Stops::default()
            };
            return self.resume(tid, None);
        }
        t.in_syscall = false;
        let mut stops = std::mem::take(&mut t.stops);
        if let Ok(regs) = ptrace::getregs(tid) {
            let pid = self.pid_of(tid);
            let sc = Syscall::from_regs(&regs);
            // A call diag's filter lets run without a stop says nothing by its missing stop.
            stops.entry &= self.stops_at_seccomp.get(sc.nr as usize) == Some(&true);
            stops.names_traced_task = ptrace_target(&sc, tid).is_some_and(|t| {
                sc.ret == -(libc::EPERM as i64) && self.tasks.contains_key(&t.as_raw())
            });
            self.decoder.syscall_exit(pid, tid, &sc, stops, sink);
            if let Some(all_threads) = installs_filter(&sc) {
                self.filter_installed(tid, pid, all_threads);
            }
        }
        self.resume(tid, None);
    }

    /// A task of `pid` installed a seccomp filter: from now on its refusals must be seen.
    fn filter_installed(&mut self, tid: Pid, pid: u32, all_threads: bool) {
        if self.mode != Mode::Prefilter {
            return;
        }
        self.task(tid).filtered = true;
        if all_threads {
            for t in self.tasks.values_mut().filter(|t| t.pid == pid) {
                t.filtered = true;
            }
        }
    }

    /// Whether `tid` has a seccomp filter that is not diag's: read from procfs where a task
    /// may have gained one unseen (its first stop, after exec).
    fn has_own_filter(&self, tid: Pid) -> bool {
        self.mode == Mode::Prefilter && seccomp_filters(tid).is_some_and(|n| n > self.own_filters)
    }

    fn event_stop(&mut self, tid: Pid, sig: Signal, event: i32, sink: &mut dyn FnMut(Event)) {
        match event {
            // An attached process's own RET_TRACE filter: nothing of diag's, it just runs on.
            libc::PTRACE_EVENT_SECCOMP if self.mode == Mode::Attached => {}
            libc::PTRACE_EVENT_SECCOMP => {
                let settled = ptrace::getevent(tid).is_ok_and(|d| d as u64 == SETTLED_AT_ENTRY);
                if settled && !self.task(tid).filtered {
                    // A close: its effect is known now, so it runs on without an exit stop.
                    if let Ok(regs) = ptrace::getregs(tid) {
                        let pid = self.pid_of(tid);
                        self.decoder.closed(pid, regs.rdi, sink);
                    }
                    return self.resume(tid, None);
                }
                let t = self.task(tid);
                t.in_syscall = true;
                t.stops.seccomp = true;
            }
            libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                self.fork(tid, event, sink)
            }
            libc::PTRACE_EVENT_EXEC => self.exec(tid, sink),
            // A seccomp kill skips the signal-delivery stop: its syscall is named here, where
            // the dying task's registers still hold it.
            libc::PTRACE_EVENT_EXIT => {
                let status = ptrace::getevent(tid).unwrap_or(0) as i32;
                if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS {
                    if let Ok(regs) = ptrace::getregs(tid) {
                        let pid = self.pid_of(tid);
                        self.decoder.killed_on(pid, regs.orig_rax as u32);
                    }
                }
            }
            libc::PTRACE_EVENT_STOP => {
                let t = self.task(tid);
                if t.started && is_stop_signal(sig) {
                    // Group-stop: stay stopped until SIGCONT, without a resume.
                    // SAFETY: PTRACE_LISTEN on a seized tracee in group-stop; no pointers.
                    unsafe { libc::ptrace(libc::PTRACE_LISTEN, tid.as_raw(), 0, 0) };
                    return;
                }
                if !t.started {
                    let filtered = self.has_own_filter(tid);
                    let t = self.task(tid);
                    t.started = true;
                    t.filtered = filtered;
                }
            }
            _ => {}
        }
        self.resume(tid, None);
    }

    fn fork(&mut self, tid: Pid, event: i32, sink: &mut dyn FnMut(Event)) {
        let Ok(child) = ptrace::getevent(tid) else {
            return;
        };
        let parent_pid = self.pid_of(tid);
        let thread = event == libc::PTRACE_EVENT_CLONE && creates_thread(tid);
        let child_pid = if thread { parent_pid } else { child as u32 };
        self.tasks.entry(child as i32).or_default().pid = child_pid;
        if thread {
            self.stats.thread_forks += 1;
            return;
        }
        self.stats.process_forks += 1;
        self.decoder.fork(parent_pid, child_pid);
        sink(Event::Fork(Fork {
            time_ns: decode::now_ns(),
            parent_pid,
            child_pid,
            comm: self.decoder.origin(parent_pid, tid).comm,
        }));
    }

    fn exec(&mut self, tid: Pid, sink: &mut dyn FnMut(Event)) {
        // A non-leader thread that exec'd takes over the leader's id.
        if let Ok(former) = ptrace::getevent(tid) {
            if former as i32 != tid.as_raw() {
                if let Some(t) = self.tasks.remove(&(former as i32)) {
                    self.tasks.insert(tid.as_raw(), t);
                }
            }
        }
        let pid = tid.as_raw() as u32;
        let filtered = self.has_own_filter(tid);
        let t = self.task(tid);
        t.pid = pid;
        t.filtered = filtered;
        let filename = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map(|p| Text::new(p.into_os_string().into_encoded_bytes()))
            .unwrap_or_default();
        self.decoder.exec(pid, tid);
        sink(Event::Exec(Exec {
            origin: self.decoder.origin(pid, tid),
            filename,
        }));
    }

    fn gone(&mut self, tid: Pid, status: WaitStatus, sink: &mut dyn FnMut(Event)) {
        let pid = self.tasks.remove(&tid.as_raw()).map_or(0, |t| t.pid);
        if Some(tid) == self.root {
            self.root_status = Some(status);
        }
        let leader = pid == 0 || pid == tid.as_raw() as u32;
        let pid = tid.as_raw() as u32;
        let signal = leader
            .then(|| self.decoder.ended(pid, status, sink))
            .flatten();
        self.decoder.exit(leader.then_some(pid), tid);
        if leader {
            sink(Event::Exit(Exit {
                time_ns: decode::now_ns(),
                pid,
                status: crate::capture::launch::exit_code(status),
                signal,
            }));
        }
    }
}

fn is_stop_signal(sig: Signal) -> bool {
    matches!(
        sig,
        Signal::SIGSTOP | Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU
    )
}

/// Whether the clone this task is stopped in makes a thread (CLONE_THREAD).
fn creates_thread(tid: Pid) -> bool {
    let Ok(regs) = ptrace::getregs(tid) else {
        return false;
    };
    let flags = match regs.orig_rax as i64 {
        libc::SYS_clone => regs.rdi,
        // struct clone_args starts with its flags.
        libc::SYS_clone3 => {
            let mut b = [0u8; 8];
            super::memory::read(tid, regs.rdi, &mut b);
            u64::from_ne_bytes(b)
        }
        _ => 0,
    };
    flags & libc::CLONE_THREAD as u64 != 0
}

/// Whether `tid` is stopped at a syscall's exit (PTRACE_GET_SYSCALL_INFO); entry if unsure.
fn at_syscall_exit(tid: Pid) -> bool {
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut info: libc::ptrace_syscall_info = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes at most `size` bytes into `info`.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_GET_SYSCALL_INFO,
            tid.as_raw(),
            std::mem::size_of::<libc::ptrace_syscall_info>(),
            &mut info as *mut libc::ptrace_syscall_info,
        )
    };
    rc > 0 && info.op == libc::PTRACE_SYSCALL_INFO_EXIT
}

/// Whether this successful call installed a seccomp filter, and if so whether on every thread
/// of the process (SECCOMP_FILTER_FLAG_TSYNC).
fn installs_filter(sc: &Syscall) -> Option<bool> {
    if sc.ret != 0 {
        return None;
    }
    let filter = libc::SECCOMP_MODE_FILTER as u64;
    match sc.nr as i64 {
        libc::SYS_seccomp if sc.args[0] == libc::SECCOMP_SET_MODE_FILTER as u64 => {
            Some(sc.args[1] & libc::SECCOMP_FILTER_FLAG_TSYNC != 0)
        }
        libc::SYS_prctl if sc.args[0] == libc::PR_SET_SECCOMP as u64 && sc.args[1] == filter => {
            Some(false)
        }
        _ => None,
    }
}

/// The task a ptrace request by `tid` would make a tracee: the caller for PTRACE_TRACEME, the
/// named task for PTRACE_ATTACH and PTRACE_SEIZE.
fn ptrace_target(sc: &Syscall, tid: Pid) -> Option<Pid> {
    if sc.nr as i64 != libc::SYS_ptrace {
        return None;
    }
    match sc.args[0] as u32 {
        libc::PTRACE_TRACEME => Some(tid),
        libc::PTRACE_ATTACH | libc::PTRACE_SEIZE => Some(Pid::from_raw(sc.args[1] as i32)),
        _ => None,
    }
}

/// `Seccomp_filters:` of /proc/TID/status (Linux 5.9+): how many filters the task has.
fn seccomp_filters(tid: Pid) -> Option<u32> {
    status_field(tid, "Seccomp_filters:")
}

fn read_tgid(tid: Pid) -> Option<u32> {
    status_field(tid, "Tgid:")
}

fn status_field(tid: Pid, field: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .parse()
        .ok()
}
