//! Context read from procfs as the failing process sees the world, taken when the failure is
//! seen (before the process can exit). Offline backends have none.

pub mod cgroup;
pub mod dac;
pub mod filecaps;
pub mod host;
pub mod path;
pub mod process;
pub mod refusal;
pub mod support;

pub use host::HostFacts;
pub use path::PathFacts;
pub use process::{ProcessContext, TaskCounts};

/// Everything read for one failure.
#[derive(Clone, Debug, Default)]
pub struct FailureContext {
    pub process: Option<ProcessContext>,
    pub path: Option<PathFacts>,
    /// Why some context could not be read (the process had exited, ...).
    pub notes: Vec<String>,
    /// What only some refusals need (an exec's interpreter, the descriptor limit...).
    pub refusal: refusal::RefusalFacts,
}

/// Reads the context of a failure of `pid` on `path` (if any), right now. `ids` are the real
/// uid/gid the kernel reported with the failure, used when the process has already exited;
/// `relatives` (nearest first) lend their view of the filesystem in that case. `fresh_counts`
/// (a fork-like call): count the uid's tasks now rather than reuse the count `counts` holds, and
/// read an exited process's pids cgroup through a relative.
pub fn snapshot(
    pid: u32,
    ids: Option<(u32, u32)>,
    relatives: &[u32],
    path: Option<&[u8]>,
    counts: &mut TaskCounts,
    fresh_counts: bool,
) -> FailureContext {
    let mut ctx = FailureContext::default();
    match (ProcessContext::read(pid), ids) {
        (Ok(mut p), _) => {
            counts.fill(&mut p, fresh_counts);
            ctx.process = Some(p)
        }
        (Err(_), Some((uid, gid))) => {
            ctx.notes.push(format!(
                "process {pid} exited before its credentials could be read: using uid {uid} gid {gid} from the kernel event"
            ));
            let mut p = ProcessContext::from_event(pid, uid, gid);
            // A refused fork often ends the process (a shell's "can't fork"): its pids cgroup
            // is read through its nearest living relative, which shares it unless it moved.
            if fresh_counts {
                if let Some((r, pc)) = relatives.iter().find_map(|&r| {
                    let groups = procfs::process::Process::new(r as i32)
                        .ok()?
                        .cgroups()
                        .ok()?;
                    Some((r, cgroup::pids_cgroup(&groups)?))
                }) {
                    ctx.notes.push(format!(
                        "pids cgroup of {pid} read through pid {r}, its nearest living relative"
                    ));
                    p.pids = Some(pc);
                }
            }
            ctx.process = Some(p);
        }
        (Err(e), None) => ctx.notes.push(format!("process {pid}: {e}")),
    }
    if let Some(path) = path {
        match PathFacts::read(pid, relatives, path) {
            Ok(f) => {
                if let path::View::Relative(r) = f.view {
                    ctx.notes.push(format!("process {pid} exited before its view of the filesystem could be read: read through pid {r}, its nearest living relative in the traced tree"));
                }
                ctx.path = Some(f)
            }
            Err(e) => ctx.notes.push(format!("path: {e}")),
        }
    }
    ctx
}
