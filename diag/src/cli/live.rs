//! The live capture loop shared by `run` and `attach`: pump kernel events into the trace until
//! a stop condition, then drain what is still in flight.

use super::args::OnSignal;
use crate::capture::ebpf::EbpfCapture;
use crate::capture::ptrace::{PtraceCapture, Step};
use crate::correlate::{Procfs, Trace};
use anyhow::Result;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(50);

/// The signals that end tracing with a partial report, diag exiting 128+N.
const ENDING_SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE];

/// Set by SIGINT, SIGTERM, SIGHUP or SIGPIPE: stop tracing and still write the report, marked
/// partial. Remembers which signal came last.
pub struct Interrupt(Arc<AtomicUsize>);

impl Interrupt {
    pub fn install() -> Result<Self> {
        let received = Arc::new(AtomicUsize::new(0));
        for sig in ENDING_SIGNALS {
            signal_hook::flag::register_usize(sig, Arc::clone(&received), sig as usize)?;
        }
        Ok(Interrupt(received))
    }

    /// The signal diag received, if any.
    pub fn signal(&self) -> Option<Signal> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n => Signal::try_from(n as libc::c_int).ok(),
        }
    }

    pub fn fired(&self) -> bool {
        self.signal().is_some()
    }

    /// diag's exit status after the signal: 128+N, as a shell reports a process signal N ended.
    pub fn exit_code(&self) -> Option<i32> {
        self.signal().map(|s| 128 + s as i32)
    }

    /// Makes the ending signals interrupt blocking calls with EINTR (signal-hook installs them
    /// with SA_RESTART), so a loop blocked in waitpid notices them.
    pub fn interrupt_blocking_calls(&self) {
        for sig in ENDING_SIGNALS {
            interrupts_blocking_calls(sig);
        }
    }
}

/// How long a tree that was passed diag's signal has to exit before it is SIGKILLed.
const GRACE: Duration = Duration::from_secs(2);
/// How long SIGKILLed processes are then waited for (one in uninterruptible sleep may linger).
const KILL_WAIT: Duration = Duration::from_secs(1);

/// `--on-signal end`: the signal diag received is passed on to every process of the tree, and
/// whatever is left after [`GRACE`] is SIGKILLed.
pub struct Ending {
    started: Instant,
    killed: bool,
}

impl Ending {
    /// After a signal to diag under `--on-signal end`: the tree, passed the signal.
    pub fn after(interrupt: &Interrupt, on_signal: OnSignal, trace: &Trace) -> Option<Self> {
        let sig = interrupt.signal()?;
        (on_signal == OnSignal::End).then(|| Ending::start(sig, &live_tree(trace)))
    }

    fn start(sig: Signal, tree: &[u32]) -> Self {
        signal_all(tree, sig);
        Ending {
            started: Instant::now(),
            killed: false,
        }
    }

    /// Whether waiting is over: the tree is gone, or was SIGKILLed and given [`KILL_WAIT`].
    /// SIGKILLs what is left once the grace period is up.
    pub fn done(&mut self, tree: &[u32]) -> bool {
        if tree.is_empty() {
            return true;
        }
        let waited = self.started.elapsed();
        if waited >= GRACE && !self.killed {
            signal_all(tree, Signal::SIGKILL);
            self.killed = true;
        }
        waited >= GRACE + KILL_WAIT
    }
}

fn signal_all(pids: &[u32], sig: Signal) {
    for &pid in pids {
        // ESRCH: it exited meanwhile.
        let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), sig);
    }
}

/// Processes of the traced tree still running (a zombie counts as gone).
pub fn live_tree(trace: &Trace) -> Vec<u32> {
    let mut pids = trace.live_pids();
    pids.retain(|&p| alive(p));
    pids.sort_unstable();
    pids
}

/// How long tracing goes on after the roots exited, for children finishing their work: what
/// still runs then is a daemon that outlives them.
const SETTLE: Duration = Duration::from_millis(200);

/// When tracing ends once the roots (the launched command, or the processes attached by pid)
/// have exited: when nothing of the tree is left, or, unless the whole tree is waited for, when
/// only daemons are left ([`SETTLE`] after the roots' exit).
pub struct AfterRoots {
    whole_tree: bool,
    gone_at: Cell<Option<Instant>>,
}

impl AfterRoots {
    pub fn new(whole_tree: bool) -> Self {
        AfterRoots {
            whole_tree,
            gone_at: Cell::new(None),
        }
    }

    /// Call once the roots are gone: whether tracing ends now.
    pub fn over(&self, trace: &Trace) -> bool {
        let gone_at = self.gone_at.get().unwrap_or_else(Instant::now);
        self.gone_at.set(Some(gone_at));
        (!self.whole_tree && gone_at.elapsed() >= SETTLE) || live_tree(trace).is_empty()
    }
}

/// How many left-running processes a warning names.
const NAMED: usize = 8;

/// The warning naming the processes of the tree that were still running when
/// tracing ended (daemons the command left behind), with what that means for them.
pub fn left_running(trace: &Trace, consequence: &str) -> Option<String> {
    let left = live_tree(trace);
    if left.is_empty() {
        return None;
    }
    let mut names: Vec<String> = left
        .iter()
        .take(NAMED)
        .map(|&p| format!("{p} ({})", trace.comm_of(p).escaped()))
        .collect();
    if left.len() > NAMED {
        names.push(format!("and {} more", left.len() - NAMED));
    }
    Some(format!(
        "left running when tracing ended: {}{consequence}",
        names.join(", ")
    ))
}

/// The ptrace backend's own interference: a program's ptrace calls refused because diag
/// already traces the task they name.
pub fn diag_was_the_tracer(trace: &Trace) -> Option<String> {
    let refused: Vec<u32> = trace
        .failures
        .iter()
        .filter(|g| g.failure.evidence.traced_by_diag)
        .map(|g| g.failure.origin.pid)
        .collect();
    let first = *refused.first()?;
    Some(format!(
        "{} ptrace call(s) failed (first in pid {first}, {}) because diag's ptrace backend already traces the task they name (a task has one tracer): those failures are diag's, not the program's; --backend ebpf does not use ptrace",
        refused.len(),
        trace.comm_of(first).escaped(),
    ))
}

/// Reinstalls `sig`'s handler with SA_RESTART cleared: a blocking call it lands in fails with
/// EINTR instead of resuming.
fn interrupts_blocking_calls(sig: libc::c_int) {
    // SAFETY: reads the installed action and reinstalls it with SA_RESTART cleared.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(sig, std::ptr::null(), &mut action) == 0 {
            action.sa_flags &= !libc::SA_RESTART;
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// A periodic SIGALRM that interrupts blocking calls, so a loop blocked in waitpid on an idle
/// tree still looks at its clock. Disarmed when dropped.
pub struct Ticker(signal_hook::SigId);

impl Ticker {
    pub fn start(every: Duration) -> Result<Self> {
        // SAFETY: the action does nothing, which is async-signal-safe.
        let id = unsafe { signal_hook::low_level::register(libc::SIGALRM, || {}) }?;
        interrupts_blocking_calls(libc::SIGALRM);
        let tick = libc::timeval {
            tv_sec: every.as_secs() as libc::time_t,
            tv_usec: every.subsec_micros() as libc::suseconds_t,
        };
        set_timer(tick);
        Ok(Ticker(id))
    }
}

fn set_timer(tick: libc::timeval) {
    let timer = libc::itimerval {
        it_interval: tick,
        it_value: tick,
    };
    // SAFETY: a valid itimerval; the old value is not wanted.
    unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) };
}

impl Drop for Ticker {
    fn drop(&mut self) {
        set_timer(libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        });
        signal_hook::low_level::unregister(self.0);
    }
}

/// diag's reader runs at this nice value, set after the command was forked (so the command
/// keeps its own): with more busy threads than CPUs, a traced burst of failures otherwise
/// starves the reader at equal priority and the ring buffer overflows.
const READER_NICE: i32 = -10;

/// Raises the calling (reader) thread's priority; best-effort, as only root may do it.
pub fn prioritise_reader() {
    // SAFETY: plain syscall on the calling thread (who = 0).
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, READER_NICE) };
}

/// The eBPF backend's capture: feeds events into `trace` until `over` says stop or a signal
/// came; after a signal under `--on-signal end`, until the tree it was passed to is gone.
pub fn pump_until(
    cap: &mut EbpfCapture,
    trace: &mut Trace,
    interrupt: &Interrupt,
    on_signal: OnSignal,
    mut over: impl FnMut(&Trace, &EbpfCapture) -> bool,
) -> Result<()> {
    pump(cap, trace, |t, c| interrupt.fired() || over(t, c))?;
    if let Some(mut ending) = Ending::after(interrupt, on_signal, trace) {
        pump(cap, trace, |t, c| {
            over(t, c);
            ending.done(&live_tree(t))
        })?;
    }
    Ok(())
}

/// Ticks that wake the tracer's waitpid on an idle tree, to look at the clock.
const TRACER_TICK: Duration = Duration::from_millis(100);

/// The ptrace backend's capture, as [`pump_until`]; then lets go of what is left.
pub fn step_until(
    cap: &mut PtraceCapture,
    trace: &mut Trace,
    interrupt: &Interrupt,
    on_signal: OnSignal,
    mut over: impl FnMut(&Trace, &PtraceCapture) -> bool,
) -> Result<()> {
    interrupt.interrupt_blocking_calls();
    let _tick = Ticker::start(TRACER_TICK)?;
    let mut ending: Option<Ending> = None;
    loop {
        if cap.step(&mut |ev| trace.on_event(ev, &Procfs))? == Step::TreeGone {
            break;
        }
        let done = match &mut ending {
            Some(e) => e.done(&live_tree(trace)),
            None if interrupt.fired() => {
                ending = Ending::after(interrupt, on_signal, trace);
                ending.is_none()
            }
            None => over(trace, cap),
        };
        if done {
            break;
        }
    }
    cap.detach_all(&mut |ev| trace.on_event(ev, &Procfs));
    Ok(())
}

/// Feeds events into `trace` until `done()` says stop.
fn pump(
    cap: &mut EbpfCapture,
    trace: &mut Trace,
    mut done: impl FnMut(&Trace, &EbpfCapture) -> bool,
) -> Result<()> {
    loop {
        cap.poll(POLL, &mut |ev| trace.on_event(ev, &Procfs))?;
        if done(trace, cap) {
            return Ok(());
        }
    }
}

/// How long the drain may take after a hard deadline (`attach --duration`): a tree still busy
/// refills the ring as fast as it is read.
pub const DRAIN_AT_DEADLINE: Duration = Duration::from_secs(1);
/// How long it may take otherwise (the tree is gone, or only daemons are left).
pub const DRAIN_UNHURRIED: Duration = Duration::from_secs(10);

/// Reads what the kernel has already queued (events of processes that just exited), within
/// `limit`, then the repeat counts of the failures it reported. Returns the warning for records
/// left unread, if any were.
pub fn drain(cap: &mut EbpfCapture, trace: &mut Trace, limit: Duration) -> Result<Option<String>> {
    let deadline = Instant::now() + limit;
    let mut idle = 0;
    while idle < 2 && Instant::now() < deadline {
        let n = cap.poll(Duration::from_millis(10), &mut |ev| {
            trace.on_event(ev, &Procfs)
        })?;
        idle = if n == 0 { idle + 1 } else { 0 };
    }
    let unread = cap.discard_queued();
    cap.repeats(&mut |ev| trace.on_event(ev, &Procfs))?;
    cap.held_back(&mut |ev| trace.on_event(ev, &Procfs))?;
    Ok((unread > 0).then(|| {
        format!("tracing stopped with {unread} or more events still queued: they are not in this report (the tree was still busy)")
    }))
}

/// Whether `pid` still exists (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}
