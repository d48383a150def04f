//! The live capture loop shared by `run` and `attach`: pump kernel events into the trace until
//! a stop condition, then drain what is still in flight.

use crate::capture::ebpf::EbpfCapture;
use crate::correlate::{Procfs, Trace};
use anyhow::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(50);

/// Set by SIGINT, SIGTERM or SIGPIPE: stop tracing and still write the report, marked partial.
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    pub fn install() -> Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGPIPE,
        ] {
            signal_hook::flag::register(sig, Arc::clone(&flag))?;
        }
        Ok(Interrupt(flag))
    }

    pub fn fired(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Makes SIGINT/SIGTERM interrupt blocking calls with EINTR (signal-hook installs them with
    /// SA_RESTART), so a loop blocked in waitpid notices them.
    pub fn interrupt_blocking_calls(&self) {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            interrupts_blocking_calls(sig);
        }
    }
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

/// Feeds events into `trace` until `done()` says stop; returns early when interrupted.
pub fn pump(
    cap: &mut EbpfCapture,
    trace: &mut Trace,
    interrupt: &Interrupt,
    mut done: impl FnMut(&Trace, &EbpfCapture) -> bool,
) -> Result<bool> {
    loop {
        cap.poll(POLL, &mut |ev| trace.on_event(ev, &Procfs))?;
        if done(trace, cap) {
            return Ok(false);
        }
        if interrupt.fired() {
            return Ok(true);
        }
    }
}

/// Reads what the kernel has already queued (events of processes that just exited), then the
/// repeat counts of the failures it reported.
pub fn drain(cap: &mut EbpfCapture, trace: &mut Trace) -> Result<()> {
    let mut idle = 0;
    while idle < 2 {
        let n = cap.poll(Duration::from_millis(10), &mut |ev| {
            trace.on_event(ev, &Procfs)
        })?;
        idle = if n == 0 { idle + 1 } else { 0 };
    }
    cap.repeats(&mut |ev| trace.on_event(ev, &Procfs))
}

/// Whether `pid` still exists (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}
