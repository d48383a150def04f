//! Capture backends. Each one turns what it sees into [`crate::model::Event`]s.

pub mod audit_log;
pub mod ebpf;
pub mod launch;
pub mod offline;
pub mod strace_log;

use crate::model::{errno::ErrnoSelection, syscalls};
use diag_ebpf::{MAX_SYSCALLS, MESSAGE_WRITE, MESSAGE_WRITEV, NO_PATH_ARG};

/// What to capture: the same for every live backend.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    pub errnos: ErrnoSelection,
    /// Watched syscall numbers.
    pub syscalls: Vec<u32>,
    /// Messages per process before its writes to fd 1/2 are only counted.
    pub message_burst: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            errnos: ErrnoSelection::default(),
            syscalls: syscalls::all_numbers().collect(),
            message_burst: 64,
        }
    }
}

impl CaptureConfig {
    /// Per syscall number: the path argument, or a message-write marker.
    pub fn path_arg_table(&self) -> [u8; MAX_SYSCALLS] {
        let mut table = [NO_PATH_ARG; MAX_SYSCALLS];
        for nr in syscalls::all_numbers().filter(|&n| (n as usize) < MAX_SYSCALLS) {
            let name = syscalls::name(nr);
            table[nr as usize] = match name.as_str() {
                "write" => MESSAGE_WRITE,
                "writev" => MESSAGE_WRITEV,
                n => syscalls::path_arg(n).unwrap_or(NO_PATH_ARG),
            };
        }
        table
    }
}

/// Which probes were attached, and which were not and why.
#[derive(Clone, Debug, Default)]
pub struct ProbeReport {
    pub attached: Vec<String>,
    pub missing: Vec<(String, String)>,
}
