//! The eBPF backend: kernel-side tree tracking and errno filtering (see `diag-ebpf`).

mod decode;
mod loader;
pub mod tracefs;

pub use loader::{missing_reason, EbpfCapture};
