//! Context read from procfs as the failing process sees the world, taken when the failure is
//! seen (before the process can exit). Offline backends have none.

pub mod cgroup;
pub mod dac;
pub mod host;
pub mod path;
pub mod process;
pub mod support;

pub use host::HostFacts;
pub use path::PathFacts;
pub use process::ProcessContext;

/// Everything read for one failure.
#[derive(Clone, Debug, Default)]
pub struct FailureContext {
    pub process: Option<ProcessContext>,
    pub path: Option<PathFacts>,
    /// Why some context could not be read (the process had exited, ...).
    pub notes: Vec<String>,
}

/// Reads the context of a failure of `pid` on `path` (if any), right now.
pub fn snapshot(pid: u32, path: Option<&[u8]>, want_process_counts: bool) -> FailureContext {
    let mut ctx = FailureContext::default();
    match ProcessContext::read(pid, want_process_counts) {
        Ok(p) => ctx.process = Some(p),
        Err(e) => ctx.notes.push(format!("process {pid}: {e}")),
    }
    if let Some(path) = path {
        match PathFacts::read(pid, path) {
            Ok(f) => ctx.path = Some(f),
            Err(e) => ctx.notes.push(format!("path: {e}")),
        }
    }
    ctx
}
