//! Capture backends. Each one turns what it sees into [`crate::model::Event`]s.

pub mod audit_log;
pub mod container;
pub mod ebpf;
pub mod launch;
pub mod offline;
pub mod pod;
pub mod ptrace;
pub mod strace_log;
pub mod syscall_args;
pub mod targets;

use crate::model::{errno::ErrnoSelection, syscalls};
use diag_ebpf::{
    MAX_SYSCALLS, MESSAGE_WRITE, MESSAGE_WRITEV, NO_DIRFD_ARG, NO_FD_ARG, NO_PATH_ARG,
};

pub const DEFAULT_RING_BYTES: u32 = 8 << 20;

/// Checks a `--ring-buffer-kib` value: a power of two from 4 KiB (one page) to 1 GiB.
pub fn ring_bytes(kib: u32) -> Result<u32, String> {
    match kib.checked_mul(1024) {
        Some(b) if (4096..=MAX_RING_BYTES).contains(&b) && b.is_power_of_two() => Ok(b),
        _ => Err(format!(
            "--ring-buffer-kib {kib}: must be a power of two from 4 to {} (1 GiB, the kernel's limit)",
            MAX_RING_BYTES / 1024
        )),
    }
}

/// The kernel refuses BPF ring buffers above 1 GiB (RINGBUF_MAX_RECORD_SZ).
const MAX_RING_BYTES: u32 = 1 << 30;

/// What to capture: the same for every live backend.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    pub errnos: ErrnoSelection,
    /// Watched syscall numbers.
    pub syscalls: Vec<u32>,
    /// Messages per process before its writes to fd 1/2 are only counted.
    pub message_burst: u32,
    /// Ring buffer size in bytes (a power of two, at least one page).
    pub ring_bytes: u32,
    /// A write to stdout is a complaint (it is a terminal a person reads) and flushes the
    /// writer's flight recorder, as a write to stderr does.
    pub stdout_complains: bool,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            errnos: ErrnoSelection::default(),
            syscalls: syscalls::all_numbers().collect(),
            message_burst: 64,
            ring_bytes: DEFAULT_RING_BYTES,
            stdout_complains: false,
        }
    }
}

impl CaptureConfig {
    /// Per syscall number: the path argument, or a message-write marker.
    pub fn path_arg_table(&self) -> [u8; MAX_SYSCALLS] {
        per_syscall(NO_PATH_ARG, |name| match name {
            "write" => Some(MESSAGE_WRITE),
            "writev" => Some(MESSAGE_WRITEV),
            n => syscalls::path_arg(n),
        })
    }

    /// Per syscall number: the dirfd argument a relative path argument is resolved against.
    pub fn dirfd_arg_table(&self) -> [u8; MAX_SYSCALLS] {
        per_syscall(NO_DIRFD_ARG, syscalls::dirfd_arg)
    }

    /// Per syscall number: the descriptor argument whose file a failure is named by.
    pub fn fd_arg_table(&self) -> [u8; MAX_SYSCALLS] {
        per_syscall(NO_FD_ARG, syscall_args::fd_arg)
    }
}

/// A table the kernel indexes by syscall number: `of(name)` for each syscall, `none` elsewhere.
fn per_syscall(none: u8, of: impl Fn(&str) -> Option<u8>) -> [u8; MAX_SYSCALLS] {
    let mut table = [none; MAX_SYSCALLS];
    for nr in syscalls::all_numbers().filter(|&n| (n as usize) < MAX_SYSCALLS) {
        if let Some(v) = of(&syscalls::name(nr)) {
            table[nr as usize] = v;
        }
    }
    table
}

/// Which probes were attached, and which were not and why.
#[derive(Clone, Debug, Default)]
pub struct ProbeReport {
    pub attached: Vec<String>,
    pub missing: Vec<(String, String)>,
}
