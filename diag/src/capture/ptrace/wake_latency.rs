//! Keeps idle CPUs from sleeping while the ptrace backend traces. Every stop hands the CPU from
//! the tracee to diag and back; where the other side's CPU has gone idle, waking it is a host
//! round trip on a virtual machine (measured here: strace and diag alike ran 7× slower for it).
//! A PM QoS request of zero wake-up latency (`/dev/cpu_dma_latency`) makes the idle loop poll
//! instead. The kernel drops the request when the file is closed, so it never outlives diag.

use std::fs::File;
use std::io::Write;

/// The request, held for as long as this value lives.
pub struct WakeLatencyHold {
    _request: File,
}

const DEVICE: &str = "/dev/cpu_dma_latency";

impl WakeLatencyHold {
    /// Asks for zero wake-up latency; says why not where it cannot.
    pub fn acquire() -> Result<Self, String> {
        let mut f = File::options()
            .write(true)
            .open(DEVICE)
            .map_err(|e| format!("{DEVICE}: {e}"))?;
        // The device takes the latency in µs as a binary s32.
        f.write_all(&0i32.to_ne_bytes())
            .map_err(|e| format!("{DEVICE}: {e}"))?;
        Ok(WakeLatencyHold { _request: f })
    }
}
