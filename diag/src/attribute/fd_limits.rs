//! Descriptor exhaustion and the inotify limits: EMFILE is RLIMIT_NOFILE (or, for
//! inotify_init, fs.inotify.max_user_instances); ENFILE is fs.file-max; ENOSPC from
//! inotify_add_watch is fs.inotify.max_user_watches.

use super::Attribution;
use crate::context::FailureContext;
use crate::model::{Confidence, Failure, Layer};

const INOTIFY_INIT: &[&str] = &["inotify_init", "inotify_init1"];

pub(super) fn check(f: &Failure, ctx: &FailureContext, mut a: Attribution) -> Option<Attribution> {
    let userns_note = match ctx.refusal.namespaces {
        Some(n) if n.own_userns => " The process runs in a user namespace of its own, where this per-namespace limit may be lower than diag's value (diag cannot read it there).",
        _ => "",
    };
    if f.syscall == "inotify_add_watch" && f.errno == libc::ENOSPC {
        let host = read_sysctl("fs/inotify/max_user_watches");
        let why = format!("inotify_add_watch returns ENOSPC only when the user's inotify watches reach fs.inotify.max_user_watches (user.max_inotify_watches per user namespace; {host} in diag's namespace)");
        a.fix = Some(format!("Raise fs.inotify.max_user_watches (sysctl -w fs.inotify.max_user_watches=524288, persist in /etc/sysctl.d/), or watch fewer files (exclude node_modules, use polling).{userns_note}"));
        return Some(a.decide(Layer::Sysctl, Confidence::Inferred, why));
    }
    if f.errno == libc::ENFILE {
        let why = format!(
            "ENFILE: the system-wide file table is full (fs.file-max {})",
            read_sysctl("fs/file-max")
        );
        a.fix = Some("Raise fs.file-max (sysctl -w fs.file-max=N) or find the process holding the open files.".into());
        return Some(a.decide(Layer::Sysctl, Confidence::Inferred, why));
    }
    if f.errno != libc::EMFILE {
        return None;
    }
    let nofile = ctx.refusal.nofile;
    let limits = nofile.map(|n| {
        format!(
            "RLIMIT_NOFILE soft {} hard {}, {} descriptors open",
            shown(n.soft),
            shown(n.hard),
            n.open_fds.map_or("?".into(), |c| c.to_string())
        )
    });
    let below_limit = nofile.and_then(|n| Some(n.open_fds? + 1 < n.soft?));
    if INOTIFY_INIT.contains(&f.syscall.as_str()) {
        let instances = read_sysctl("fs/inotify/max_user_instances");
        match below_limit {
            Some(true) => {
                let why = format!("inotify_init returned EMFILE with the process below its descriptor limit ({}): the user's inotify instances reached fs.inotify.max_user_instances (user.max_inotify_instances per user namespace; {instances} in diag's namespace)", limits.unwrap_or_default());
                a.exclude(
                    Layer::Rlimit,
                    "the process had descriptors to spare under RLIMIT_NOFILE",
                );
                a.fix = Some(format!("Raise fs.inotify.max_user_instances (sysctl -w fs.inotify.max_user_instances=1024, persist in /etc/sysctl.d/), or close inotify instances the program no longer needs.{userns_note}"));
                return Some(a.decide(Layer::Sysctl, Confidence::Inferred, why));
            }
            Some(false) => {}
            None => {
                a.evidence.push(format!("inotify_init returns EMFILE for RLIMIT_NOFILE and for fs.inotify.max_user_instances ({instances} in diag's namespace); the process's descriptors could not be counted (it had exited)"));
                a.candidates = vec![Layer::Rlimit, Layer::Sysctl];
                a.fix = Some(format!("Raise fs.inotify.max_user_instances (sysctl -w fs.inotify.max_user_instances=1024) or the descriptor limit (ulimit -n, LimitNOFILE=).{userns_note}"));
                return Some(a);
            }
        }
    }
    let why = match &limits {
        Some(l) => format!("EMFILE: the process's descriptor table is at RLIMIT_NOFILE ({l})"),
        None => "EMFILE from a call that allocates a descriptor is returned only at the process's RLIMIT_NOFILE (its limits could not be read: it had exited)".into(),
    };
    let hard = nofile.and_then(|n| n.hard);
    a.fix = Some(match hard {
        Some(h) => format!("Raise the open-file limit: ulimit -n {h} (up to the hard limit {h}; beyond it LimitNOFILE= in the unit, --ulimit nofile= for a container, or limits.conf), or close descriptors the program leaks."),
        None => "Raise the open-file limit (ulimit -n, LimitNOFILE= in the unit, --ulimit nofile= for a container, limits.conf), or close descriptors the program leaks.".into(),
    });
    Some(a.decide(Layer::Rlimit, Confidence::Inferred, why))
}

fn shown(v: Option<u64>) -> String {
    v.map_or("unlimited".into(), |v| v.to_string())
}

/// A sysctl as diag reads it (its own namespaces), for the evidence.
pub(super) fn read_sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{name}"))
        .map(|s| s.trim().replace('\t', " "))
        .unwrap_or_else(|_| "unreadable".into())
}
