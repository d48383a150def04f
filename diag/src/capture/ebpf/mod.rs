//! The eBPF backend: kernel-side tree tracking and errno filtering (see `diag-ebpf`).

mod decode;
mod kernel_offsets;
mod loader;
pub mod tracefs;
mod tracing_probe;

pub use loader::{btf_path, missing_reason, probe_plan, Closing, EbpfCapture, ProbeSpec};
