//! Turns ring buffer records (the ABI in `diag-ebpf`) into model events.

use crate::capture::ptrace::memory::{self, PATH_MAX};
use crate::capture::syscall_args;
use crate::model::{
    syscalls, DeathSignal, Event, EvidenceSource, Exec, Exit, FactsAtFailure, Failure,
    FileAtFailure, Flush, Fork, KernelEvidence, LandlockCall, Message, MountFlags, Origin, PathCut,
    PidsAtFailure, Text,
};
use diag_ebpf::{
    evidence, facts, flush, kind, path_tail_hash, read_record, reason, EventHeader, FailureKey,
    ProcEvent, RecentFailure, Repeats, SyscallEvent, TaskFacts, PATH_HEAD,
};

pub fn record(bytes: &[u8]) -> Option<Event> {
    let header: EventHeader = read_record(bytes)?;
    match header.kind {
        kind::SYSCALL => syscall(&read_record::<SyscallEvent>(bytes)?),
        kind::FORK | kind::EXEC | kind::EXIT => process(&read_record::<ProcEvent>(bytes)?),
        kind::RECENT => recent(&read_record::<RecentFailure>(bytes)?),
        _ => None,
    }
}

/// A flight recorder's failure, as the process's fate judged it.
pub fn recent(r: &RecentFailure) -> Option<Event> {
    let flush = match r.flush {
        flush::COMPLAINED => Flush::Complained,
        flush::FAILED_EXIT => Flush::FailedExit,
        flush::SIGNALED => Flush::Signaled,
        flush::TRACE_END => Flush::TraceEnd,
        _ => return None,
    };
    let mut origin = origin(&r.event.header);
    origin.gid = Some(r.event.gid);
    let mut failure = failure(&r.event, origin, syscalls::name(r.event.nr));
    // The call's entry was not followed: what the kernel saw during it is unknown.
    failure.evidence.source = EvidenceSource::CallOnly;
    if r.repeats > 0 {
        failure.origin.time_ns = r.last_ns;
    }
    Some(Event::Recent {
        failure,
        times: 1 + r.repeats,
        flush,
    })
}

/// The slots a kernel ring (a recorder, a message tail) holds, oldest first: `next` counts
/// every slot ever written, the oldest overwritten.
pub fn held<T>(slots: &mut [T], next: u32) -> impl Iterator<Item = &mut T> {
    let held = (next as usize).min(slots.len());
    let first = next as usize - held;
    let (older, newer) = slots.split_at_mut(first % slots.len());
    newer.iter_mut().chain(older.iter_mut()).take(held)
}

fn origin(h: &EventHeader) -> Origin {
    Origin {
        time_ns: h.ktime_ns,
        pid: h.tgid,
        tid: h.tid,
        comm: Text::from_c(&h.comm),
        uid: Some(h.uid),
        gid: None,
    }
}

fn data(ev: &SyscallEvent) -> &[u8] {
    &ev.data[..(ev.data_len as usize).min(ev.data.len())]
}

pub fn syscall(ev: &SyscallEvent) -> Option<Event> {
    let mut origin = origin(&ev.header);
    origin.gid = Some(ev.gid);
    let name = syscalls::name(ev.nr);
    match ev.reason {
        reason::FAILED => Some(Event::Failure(failure(ev, origin, name))),
        reason::MESSAGE => Some(Event::Message(Message {
            origin,
            fd: ev.args[0] as i32,
            text: Text::new(data(ev)),
            truncated: ev.evidence & evidence::DATA_TRUNCATED != 0,
        })),
        reason::LANDLOCK => landlock(ev, origin, &name),
        reason::FD_PATH => Some(Event::FdOpened {
            pid: origin.pid,
            fd: ev.ret as i32,
            path: Text::from_c(data(ev)),
        }),
        reason::FD_DUP => {
            let (old, new, cloexec) = syscall_args::dup(&name, &ev.args, ev.ret)?;
            Some(Event::FdDup {
                pid: origin.pid,
                old,
                new,
                cloexec,
            })
        }
        reason::FD_CLOSE => Some(Event::FdClosed {
            pid: origin.pid,
            fd: ev.args[0] as i32,
        }),
        _ => None,
    }
}

fn failure(ev: &SyscallEvent, origin: Origin, name: String) -> Failure {
    let tail = (ev.path_full_len, ev.path_tail_hash);
    let mut f = Failure {
        errno: (-ev.ret) as i32,
        flags: syscalls::flag_arg(&name).map(|i| ev.args[i]),
        args: Some(ev.args),
        ..failure_of(origin, name, data(ev), tail, ev.evidence, ev.denied_cap)
    };
    read_back_cut_path(&mut f);
    let named_fd = syscall_args::named_fd(&f.syscall, &ev.args).is_some();
    if let Some(mut k) = facts_at_failure(&ev.task) {
        if named_fd && ev.task.known & facts::FILE != 0 {
            let walked = (ev.task.known & facts::FILE_NAME_WHOLE != 0)
                .then(|| walked_path(data(ev)))
                .flatten();
            let file = &ev.file;
            k.file = Some(FileAtFailure {
                mount: MountFlags::from_kernel(file.mnt_flags),
                mount_point: walked.as_ref().map(|(_, m)| m.clone()),
                mode: file.mode,
                uid: file.uid,
                gid: file.gid,
                fs_type: Text::from_c(&file.fs_type).lossy(),
            });
            if f.path.is_none() {
                f.path = walked.map(|(p, _)| Text::new(p.as_os_str().as_encoded_bytes()));
            }
        }
        if ev.task.known & (facts::BASE_NAME | facts::FILE_NAME_WHOLE)
            == facts::BASE_NAME | facts::FILE_NAME_WHOLE
        {
            let end = (ev.task.names_end as usize).min(ev.data.len());
            let start = (ev.data_len as usize + 1).min(end);
            k.base_dir = walked_path(&ev.data[start..end]).map(|(dir, _)| dir);
        }
        f.at_failure = Some(Box::new(k));
    }
    f
}

/// `pids_cgroup::limit` of a cgroup whose pids.max is "max" (PID_MAX_LIMIT + 1).
const PIDS_MAX: i64 = 4 * 1024 * 1024 + 1;

fn facts_at_failure(t: &TaskFacts) -> Option<FactsAtFailure> {
    if t.known & facts::TASK == 0 {
        return None;
    }
    Some(FactsAtFailure {
        cap_effective: t.cap_effective,
        cap_bounding: t.cap_bounding,
        cap_inheritable: t.cap_inheritable,
        no_new_privs: t.no_new_privs != 0,
        nproc_limit: (t.nproc_cur != libc::RLIM_INFINITY).then_some(t.nproc_cur),
        uid_tasks: t.uid_tasks,
        exe_mount: (t.known & facts::EXE != 0).then(|| MountFlags::from_kernel(t.exe_mnt_flags)),
        pids: (t.known & facts::PIDS != 0).then(|| PidsAtFailure {
            current: t.pids_current.max(0) as u64,
            limit: (t.pids_limit < PIDS_MAX).then(|| t.pids_limit.max(0) as u64),
            cgroup_id: t.pids_cgroup_id,
        }),
        file: None,
        base_dir: None,
    })
}

/// The path and the mount point of a file from the kernel's walk up its dentries: names leaf
/// first, each ending in NUL, an empty name where the walk crossed from a mount's root to its
/// mount point. What follows the last NUL was cut by the buffer's end and is dropped.
fn walked_path(data: &[u8]) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let mut names: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    names.pop();
    if names.is_empty() {
        return None;
    }
    let join = |names: &[&[u8]]| {
        let mut p = std::path::PathBuf::from("/");
        for n in names.iter().rev().filter(|n| !n.is_empty()) {
            p.push(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(n));
        }
        p
    };
    let mount_point = match names.iter().position(|n| n.is_empty()) {
        Some(i) => join(&names[i + 1..]),
        None => std::path::PathBuf::from("/"),
    };
    Some((join(&names), mount_point))
}

/// Reads a cut path whole from the failing thread's memory, while it may still live, and keeps
/// it only when it is the string the kernel measured (same head, length and tail hash): the
/// process may have reused the buffer since.
fn read_back_cut_path(f: &mut Failure) {
    let (Some(cut), Some(args), Some(path)) = (f.path_cut.as_mut(), f.args, f.path.as_mut()) else {
        return;
    };
    let Some(addr) = syscalls::path_arg(&f.syscall).and_then(|i| args.get(i as usize)) else {
        return;
    };
    let mut buf = vec![0u8; PATH_MAX];
    let tid = nix::unistd::Pid::from_raw(f.origin.tid as i32);
    let n = memory::read_cstr(tid, *addr, &mut buf);
    let whole = &buf[..n];
    if whole.starts_with(path.as_bytes()) && cut.tail == Some(path_tail_hash(whole)) {
        *path = Text::new(whole);
        cut.resolved = true;
    }
}

/// The kernel's count of calls identical to a failure it reported (a `REPEATS` entry). It
/// carries what identifies the failure; the reported record carries the rest.
pub fn repeated(key: &FailureKey, repeats: &Repeats) -> Option<Event> {
    if repeats.count == 0 {
        return None;
    }
    let origin = Origin {
        time_ns: repeats.last_ns,
        pid: key.tgid,
        tid: key.tid,
        comm: Text::from_c(&key.comm),
        ..Origin::default()
    };
    let path = &key.path[..(key.path_len as usize).min(key.path.len())];
    let name = syscalls::name(key.nr);
    let tail = (key.path_full_len, key.path_tail_hash);
    Some(Event::Repeated {
        failure: Failure {
            errno: key.errno as i32,
            ..failure_of(origin, name, path, tail, key.evidence, key.denied_cap)
        },
        times: repeats.count,
    })
}

/// `tail`: the path's whole length and tail hash, as the kernel measured them.
fn failure_of(
    origin: Origin,
    name: String,
    path: &[u8],
    tail: (u32, u64),
    bits: u32,
    denied_cap: i32,
) -> Failure {
    let path = syscalls::path_arg(&name)
        .filter(|_| !path.is_empty())
        .map(|_| Text::from_c(path));
    let cut = path.is_some() && tail.0 as usize > PATH_HEAD;
    Failure {
        origin,
        path,
        path_cut: cut.then_some(PathCut {
            head: PATH_HEAD,
            tail: Some(tail),
            resolved: false,
        }),
        evidence: KernelEvidence {
            no_enter: bits & evidence::NO_ENTER != 0,
            denied_capability: (bits & evidence::CAP_DENIED != 0 && denied_cap >= 0)
                .then_some(denied_cap as u32),
            selinux_denied: bits & evidence::SELINUX_DENIED != 0,
            lsm_file_open_denied: bits & evidence::LSM_FILE_OPEN_DENIED != 0,
            dac_denied: bits & evidence::DAC_DENIED != 0,
            landlock_denied: bits & evidence::LANDLOCK_DENIED != 0,
            seccomp_denied: bits & evidence::SECCOMP_DENIED != 0,
            pids_denied: bits & evidence::PIDS_DENIED != 0,
            ..KernelEvidence::default()
        },
        syscall: name,
        ..Failure::default()
    }
}

fn landlock(ev: &SyscallEvent, origin: Origin, name: &str) -> Option<Event> {
    let op = syscall_args::landlock_op(name, &ev.args, ev.ret, data(ev))?;
    Some(Event::Landlock(LandlockCall { origin, op }))
}

fn process(ev: &ProcEvent) -> Option<Event> {
    let h = &ev.header;
    match h.kind {
        // Sent by the parent and by the child (see `kind::FORK`); the correlator keeps the first.
        kind::FORK => Some(Event::Fork(Fork {
            time_ns: h.ktime_ns,
            parent_pid: ev.parent_tgid,
            child_pid: ev.child_tid,
            comm: Text::from_c(&h.comm),
        })),
        kind::EXEC => Some(Event::Exec(Exec {
            origin: origin(h),
            filename: Text::from_c(
                &ev.filename[..(ev.filename_len as usize).min(ev.filename.len())],
            ),
        })),
        kind::EXIT => Some(Event::Exit(Exit {
            time_ns: h.ktime_ns,
            pid: h.tgid,
            status: (ev.exit_status >= 0).then_some(ev.exit_status),
            signal: death_signal(ev),
        })),
        _ => None,
    }
}

/// `si_code`s under which `si_pid` names the sending process.
const SENT_BY_A_PROCESS: [i32; 3] = [libc::SI_USER, libc::SI_TKILL, libc::SI_QUEUE];

fn death_signal(ev: &ProcEvent) -> Option<DeathSignal> {
    if ev.exit_status >= 0 || ev.signal <= 0 {
        return None;
    }
    // The kernel sends i32::MIN for a signal without siginfo (SIGKILL).
    let code = (ev.signal_code != i32::MIN).then_some(ev.signal_code);
    Some(DeathSignal {
        signal: ev.signal,
        code,
        sender: code
            .filter(|c| SENT_BY_A_PROCESS.contains(c))
            .map(|_| ev.signal_sender),
        syscall: u32::try_from(ev.signal_syscall).ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use diag_ebpf::DATA_LEN;

    /// The kernel's walk from a library up to the root: names leaf first, an empty one where
    /// it left the noexec tmpfs for the mount point's filesystem.
    #[test]
    fn walked_path_names_the_file_and_its_mount_point() {
        let walked = b"lib.so\0media\0\0scratch\0tmp\0";
        let (path, mount) = walked_path(walked).unwrap();
        assert_eq!(path, std::path::Path::new("/tmp/scratch/media/lib.so"));
        assert_eq!(mount, std::path::Path::new("/tmp/scratch"));
        // On the root mount: no crossing.
        let (path, mount) = walked_path(b"passwd\0etc\0").unwrap();
        assert_eq!(
            (path.to_str(), mount.to_str()),
            (Some("/etc/passwd"), Some("/"))
        );
        // A name the buffer's end cut (no NUL) is dropped (such a walk is never marked whole,
        // and only whole ones name the file).
        let (path, _) = walked_path(b"lib.so\0media\0scra").unwrap();
        assert_eq!(path, std::path::Path::new("/media/lib.so"));
        assert!(walked_path(b"").is_none());
    }

    #[test]
    fn facts_at_failure_read_limits_and_pids_as_the_kernel_keeps_them() {
        let mut t = TaskFacts {
            known: facts::TASK | facts::PIDS,
            nproc_cur: libc::RLIM_INFINITY,
            pids_current: 4,
            pids_limit: 4,
            pids_cgroup_id: 77,
            no_new_privs: 1,
            ..TaskFacts::default()
        };
        let k = facts_at_failure(&t).unwrap();
        assert_eq!(k.nproc_limit, None);
        assert!(k.no_new_privs);
        assert_eq!(
            k.pids,
            Some(PidsAtFailure {
                current: 4,
                limit: Some(4),
                cgroup_id: 77
            })
        );
        // pids.max "max" is PIDS_MAX in the kernel.
        t.pids_limit = PIDS_MAX;
        assert_eq!(facts_at_failure(&t).unwrap().pids.unwrap().limit, None);
        t.known = 0;
        assert!(facts_at_failure(&t).is_none());
    }

    /// The record the kernel sends for a failed `openat` of `path` (at `addr` in this process),
    /// measured as the kernel measures it.
    fn cut_openat(path: &[u8], addr: u64) -> Vec<u8> {
        let me = std::process::id();
        let (full_len, tail_hash) = path_tail_hash(path);
        let mut ev = SyscallEvent {
            header: EventHeader {
                kind: kind::SYSCALL,
                tid: me,
                tgid: me,
                ..EventHeader::default()
            },
            nr: libc::SYS_openat as u32,
            reason: reason::FAILED,
            ret: -i64::from(libc::EACCES),
            args: [libc::AT_FDCWD as u64, addr, 0, 0, 0, 0],
            evidence: evidence::DATA_TRUNCATED,
            denied_cap: -1,
            cgroup_id: 0,
            data_len: PATH_HEAD as u32,
            gid: 0,
            path_full_len: full_len,
            _pad: 0,
            path_tail_hash: tail_hash,
            data: [0; DATA_LEN],
            task: TaskFacts::default(),
            file: diag_ebpf::FileFacts::default(),
        };
        ev.data[..PATH_HEAD].copy_from_slice(&path[..PATH_HEAD]);
        // SAFETY: SyscallEvent is plain old data.
        unsafe {
            std::slice::from_raw_parts(
                (&ev as *const SyscallEvent).cast::<u8>(),
                std::mem::size_of::<SyscallEvent>(),
            )
        }
        .to_vec()
    }

    fn decoded(record: &[u8]) -> Failure {
        match super::record(record) {
            Some(Event::Failure(f)) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cut_path_is_read_back_whole_only_when_it_is_what_the_kernel_measured() {
        let long = |tail: &str| format!("/{}/{tail}\0", "d".repeat(300)).into_bytes();
        let path = long("secret.key");
        let whole = &path[..path.len() - 1];
        let f = decoded(&cut_openat(whole, path.as_ptr() as u64));
        assert_eq!(f.path.as_ref().unwrap().as_bytes(), whole);
        assert!(!f.path_truncated());
        assert_eq!(
            f.path_cut.unwrap().tail,
            Some((whole.len() as u32, path_tail_hash(whole).1))
        );

        // The buffer now holds another path with the same head: kept cut, never mixed up.
        let other = long("other.key");
        let f = decoded(&cut_openat(whole, other.as_ptr() as u64));
        assert_eq!(f.path.as_ref().unwrap().as_bytes(), &whole[..PATH_HEAD]);
        assert!(f.path_truncated());
        // And the process's memory is gone: cut as well.
        let f = decoded(&cut_openat(whole, 0));
        assert!(f.path_truncated());
    }
}
