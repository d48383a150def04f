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

use crate::model::FactsAtFailure;

/// What was read of a process and its relatives while they were alive (each at its exec or
/// fork), for a failure examined after the process exited.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub own: Option<ProcessContext>,
    /// The traced relatives' pids cgroups as seen, nearest first.
    pub relatives_pids: Vec<(u32, cgroup::PidsCgroup)>,
}

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
/// `sighted` is the process as read when it was first seen alive (its exec), used then too;
/// `relatives` (nearest first) lend their view of the filesystem in that case. `fresh_counts`
/// (a fork-like call): count the uid's tasks now rather than reuse the count `counts` holds, and
/// read an exited process's pids cgroup again (the one it was seen in, else a relative's).
/// `at_failure`: what the kernel read at the failure, which takes precedence over procfs.
#[allow(clippy::too_many_arguments)]
pub fn snapshot(
    pid: u32,
    ids: Option<(u32, u32)>,
    relatives: &[u32],
    seen: &Seen,
    path: Option<&[u8]>,
    counts: &mut TaskCounts,
    fresh_counts: bool,
    at_failure: Option<&FactsAtFailure>,
) -> FailureContext {
    let mut ctx = FailureContext::default();
    match (ProcessContext::read(pid), ids) {
        (Ok(mut p), _) => {
            counts.fill(&mut p, fresh_counts, at_failure.is_some());
            ctx.process = Some(p)
        }
        (Err(_), Some((uid, gid))) => {
            let mut p = match &seen.own {
                Some(seen) => {
                    ctx.notes.push(format!(
                        "process {pid} exited before the failure was examined: its limits, capabilities and cgroup are those read when it exec'd, its real uid {uid} and gid {gid} from the kernel event"
                    ));
                    ProcessContext {
                        ruid: uid,
                        egid: gid,
                        from_event: true,
                        sighted: true,
                        uid_tasks: None,
                        threads: None,
                        ..seen.clone()
                    }
                }
                None => {
                    ctx.notes.push(format!(
                        "process {pid} exited before its credentials could be read: using uid {uid} gid {gid} from the kernel event"
                    ));
                    ProcessContext::from_event(pid, uid, gid)
                }
            };
            if fresh_counts {
                counts.fill(&mut p, true, at_failure.is_some());
                p.pids = exited_pids_cgroup(pid, p.pids.take(), relatives, seen, &mut ctx.notes);
            }
            ctx.process = Some(p);
        }
        (Err(e), None) => ctx.notes.push(format!("process {pid}: {e}")),
    }
    if let (Some(p), Some(k)) = (ctx.process.as_mut(), at_failure) {
        p.apply_at_failure(k);
        if let Some(pids) = k.pids.filter(|_| fresh_counts) {
            p.pids = cgroup::at_failure(pids, p.pids.take());
        }
        ctx.notes.push(format!(
            "capabilities, no_new_privs, RLIMIT_NPROC and the uid's task count{} of {pid} as the kernel saw them at the failure",
            if fresh_counts { ", and the pids cgroup," } else { "" }
        ));
    }
    // A relative path is the kernel's at the failure: relative to the dirfd or cwd it named then.
    let absolute = path
        .zip(at_failure.and_then(|k| k.base_dir.as_ref()))
        .filter(|(p, _)| !p.starts_with(b"/"))
        .map(|(p, base)| {
            base.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(p))
                .into_os_string()
                .into_encoded_bytes()
        });
    let path = absolute.as_deref().or(path);
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
        if let Some(file) = at_failure.and_then(|k| k.file.as_ref()) {
            let read = ctx.path.take();
            ctx.path = Some(PathFacts::at_failure(path, file, read));
        }
    }
    ctx
}

/// The pids cgroup of `pid`, which has exited: the one it was seen in, read again now (the
/// directory outlives its members), with the refusals counted since; else, as a refused fork
/// often ends the process (a shell's "can't fork"), its nearest living relative's, which shares
/// it unless it moved; else the one its nearest relative was seen in.
fn exited_pids_cgroup(
    pid: u32,
    own: Option<cgroup::PidsCgroup>,
    relatives: &[u32],
    seen: &Seen,
    notes: &mut Vec<String>,
) -> Option<cgroup::PidsCgroup> {
    let again = |pc: &cgroup::PidsCgroup| {
        cgroup::read(&pc.dir).map(|now| {
            let since = now.refused.saturating_sub(pc.refused);
            (now, since)
        })
    };
    if let Some((now, since)) = own.as_ref().and_then(again) {
        notes.push(format!(
            "pids cgroup of {pid}: the one it was in when it exec'd, read again now ({since} forks refused since then)"
        ));
        return Some(now);
    }
    let living = relatives.iter().find_map(|&r| {
        let groups = procfs::process::Process::new(r as i32)
            .ok()?
            .cgroups()
            .ok()?;
        Some((r, cgroup::pids_cgroup(&groups)?))
    });
    if let Some((r, pc)) = living {
        notes.push(format!(
            "pids cgroup of {pid} read through pid {r}, its nearest living relative"
        ));
        return Some(pc);
    }
    let (r, (now, since)) = seen
        .relatives_pids
        .iter()
        .find_map(|(r, pc)| Some((*r, again(pc)?)))?;
    notes.push(format!(
        "pids cgroup of {pid}: the one pid {r}, its nearest traced relative, was in when diag saw it alive, read again now ({since} forks refused since then)"
    ));
    Some(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exited_process_takes_the_pids_cgroup_its_relative_was_seen_in_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("pids.current", "0\n");
        write("pids.max", "16\n");
        write("pids.events", "max 3\n");
        let seen = Seen {
            own: None,
            relatives_pids: vec![(
                7,
                cgroup::PidsCgroup {
                    dir: dir.path().to_path_buf(),
                    current: 16,
                    max: Some(16),
                    refused: 1,
                },
            )],
        };
        let mut notes = Vec::new();
        let pc = exited_pids_cgroup(5, None, &[], &seen, &mut notes).unwrap();
        assert_eq!((pc.max, pc.refused), (Some(16), 3));
        assert!(notes[0].contains("pid 7") && notes[0].contains("2 forks refused since"));
        // Nothing seen, nobody alive: unknown, not "no pids controller".
        assert!(exited_pids_cgroup(5, None, &[], &Seen::default(), &mut notes).is_none());
    }
}
