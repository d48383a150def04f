//! Turns ring buffer records (the ABI in `diag-ebpf`) into model events.

use crate::capture::syscall_args;
use crate::model::{
    syscalls, Event, Exec, Exit, Failure, Fork, KernelEvidence, LandlockCall, Message, Origin, Text,
};
use diag_ebpf::{
    evidence, kind, read_record, reason, EventHeader, FailureKey, ProcEvent, Repeats, SyscallEvent,
};

pub fn record(bytes: &[u8]) -> Option<Event> {
    let header: EventHeader = read_record(bytes)?;
    match header.kind {
        kind::SYSCALL => syscall(&read_record::<SyscallEvent>(bytes)?),
        kind::FORK | kind::EXEC | kind::EXIT => process(&read_record::<ProcEvent>(bytes)?),
        _ => None,
    }
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

fn syscall(ev: &SyscallEvent) -> Option<Event> {
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
    Failure {
        errno: (-ev.ret) as i32,
        flags: syscalls::flag_arg(&name).map(|i| ev.args[i]),
        args: Some(ev.args),
        ..failure_of(origin, name, data(ev), ev.evidence, ev.denied_cap)
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
    Some(Event::Repeated {
        failure: Failure {
            errno: key.errno as i32,
            ..failure_of(origin, name, path, key.evidence, key.denied_cap)
        },
        times: repeats.count,
    })
}

fn failure_of(origin: Origin, name: String, path: &[u8], bits: u32, denied_cap: i32) -> Failure {
    Failure {
        origin,
        path: syscalls::path_arg(&name)
            .filter(|_| !path.is_empty())
            .map(|_| Text::from_c(path)),
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
        })),
        _ => None,
    }
}
