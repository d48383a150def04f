//! diag: tells an operator why a sandboxed program was denied.
//!
//! Data flows one way: capture (eBPF | ptrace | strace log | audit log) → one event model
//! ([`model`]) → correlate (process tree, time, fds) → explain (layer attribution and the cause
//! catalog) → report (table | JSON | Markdown).

pub mod attribute;
pub mod capture;
pub mod cli;
pub mod context;
pub mod correlate;
pub mod explain;
pub mod model;
pub mod pipeline;
pub mod report;
pub mod sandbox;
