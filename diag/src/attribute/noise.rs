//! Failures that did not change the outcome, labelled rather than hidden.

use crate::correlate::Trace;
use crate::model::{errno, syscalls, Failure};

/// `recorded`: a flight recorder handed the failure over when the process complained or died.
pub(super) fn label(f: &Failure, recorded: bool, trace: &Trace) -> Option<String> {
    if recorded && f.errno == libc::ENOENT && !named_in_a_message(f, trace) {
        return Some(
            "a lookup the program carried on from: its messages do not name this path".into(),
        );
    }
    if f.errno == libc::EAGAIN
        && !syscalls::is_clone(&f.syscall)
        && !matches!(
            f.syscall.as_str(),
            "execve" | "execveat" | "setuid" | "setresuid" | "setreuid"
        )
    {
        return Some("EAGAIN here means the call would block on a non-blocking descriptor".into());
    }
    if matches!(
        f.syscall.as_str(),
        "access"
            | "faccessat"
            | "faccessat2"
            | "stat"
            | "lstat"
            | "newfstatat"
            | "statx"
            | "readlink"
            | "readlinkat"
    ) {
        return Some(format!(
            "{} is a probe: the program checks and carries on",
            f.syscall
        ));
    }
    if f.syscall == "clone3" && f.errno == libc::ENOSYS {
        return clone3_fallback(f, trace);
    }
    // A PATH search tries each directory for the same name, then runs the one it finds.
    let searched = f.path.as_ref().map(|x| file_name(&x.lossy()));
    let same_name_ran_later = trace.processes.get(&f.origin.pid).is_some_and(|p| {
        p.execs
            .iter()
            .any(|(t, e)| *t > f.origin.time_ns && Some(file_name(&e.lossy())) == searched)
    });
    if syscalls::is_exec(&f.syscall) && same_name_ran_later {
        return Some("a PATH search: the command was found and executed elsewhere".into());
    }
    // A log of failed calls only (strace -Z, audit) cannot show the exec that succeeded; the
    // same name missed in several directories by one process is still a PATH search.
    let successes_unseen = trace.from_log.is_some_and(|l| !l.forks_recorded);
    if syscalls::is_exec(&f.syscall) && f.errno == libc::ENOENT && successes_unseen {
        let searched_elsewhere = trace.failures.iter().any(|g| {
            let o = &g.failure;
            o.origin.pid == f.origin.pid
                && syscalls::is_exec(&o.syscall)
                && o.path != f.path
                && o.path.as_ref().map(|x| file_name(&x.lossy())) == searched
        });
        if searched_elsewhere {
            return Some("a PATH search: the same name was tried in other directories (this log records no successful call)".into());
        }
    }
    if let Some(label) = went_on_to_exec(f, trace) {
        return Some(label);
    }
    if syscalls::is_open(&f.syscall) && f.path.as_ref().is_some_and(|p| p.as_bytes() == b"/dev/tty")
    {
        return tty_probe(f, trace);
    }
    None
}

/// A failure before the process exec'd something else: the program that failed is not the one
/// that ran on. It did not matter when what ran on succeeded; a refused set*id is the
/// privilege-drop self-check (a supervisor verifying it cannot regain root) whatever followed.
fn went_on_to_exec(f: &Failure, trace: &Trace) -> Option<String> {
    let p = trace.processes.get(&f.origin.pid)?;
    if p.exec_ns.is_none_or(|t| t <= f.origin.time_ns) || syscalls::is_exec(&f.syscall) {
        return None;
    }
    let exe = p.exe.as_ref().map_or_else(String::new, |e| e.escaped());
    let setid = matches!(
        f.syscall.as_str(),
        "setuid" | "setreuid" | "setresuid" | "setgid" | "setregid" | "setresgid"
    );
    if setid && f.errno == libc::EPERM {
        return Some(format!(
            "a privilege-drop self-check: {} was refused, as intended, and the process went on to exec {exe}",
            f.syscall
        ));
    }
    // A program that reported the failure before going on (nice's "cannot set niceness:
    // Permission denied", then the command) told its user something went wrong.
    let errno_text = crate::model::errno::message(f.errno);
    let reported = trace.messages.iter().any(|m| {
        m.origin.pid == f.origin.pid
            && m.origin.time_ns >= f.origin.time_ns
            && p.exec_ns.is_some_and(|t| m.origin.time_ns <= t)
            && m.text.lossy().contains(&errno_text)
    });
    (p.exit_status == Some(0) && !reported).then(|| {
        format!(
            "pid {} went on to exec {exe}, which exited 0: the failure did not stop it",
            f.origin.pid
        )
    })
}

/// Shells and terminal programs open /dev/tty to find their controlling terminal and carry on
/// without one; it mattered only if the process then complained about a terminal.
fn tty_probe(f: &Failure, trace: &Trace) -> Option<String> {
    let complained = trace.messages.iter().any(|m| {
        m.origin.pid == f.origin.pid
            && m.origin.time_ns >= f.origin.time_ns
            && m.text.lossy().to_lowercase().contains("tty")
    });
    (!complained).then(|| {
        format!(
            "a controlling-terminal probe: pid {} opened /dev/tty, carried on without it and said nothing about a terminal",
            f.origin.pid
        )
    })
}

/// glibc answers clone3's ENOSYS by retrying with clone. That fallback ran when the process
/// created a child afterwards, or when the tree created threads (threads are counted, not
/// attributed to a process) and the process did not report ENOSYS itself.
fn clone3_fallback(f: &Failure, trace: &Trace) -> Option<String> {
    let t = f.origin.time_ns;
    let pid = f.origin.pid;
    let later_child = trace
        .processes
        .values()
        .find(|p| p.ppid == Some(pid) && p.first_seen_ns > t);
    if let Some(child) = later_child {
        return Some(format!(
            "glibc fell back to clone when clone3 returned ENOSYS: pid {pid} then created pid {}",
            child.pid
        ));
    }
    let enosys_text = errno::message(libc::ENOSYS);
    let reported = trace
        .messages
        .iter()
        .any(|m| m.origin.pid == pid && m.origin.time_ns >= t && m.text.contains(&enosys_text));
    let threads = trace.stats.thread_forks;
    (threads > 0 && !reported).then(|| {
        format!("glibc falls back to clone when clone3 returns ENOSYS: the tree created {threads} thread(s) and pid {pid} reported no ENOSYS")
    })
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or_default().to_string()
}

/// Whether a message of the failing process, or of an ancestor relaying it, names the
/// failure's path (or its file name, as a word).
fn named_in_a_message(f: &Failure, trace: &Trace) -> bool {
    use crate::explain::{contains_word, names_path};
    let Some(path) = f.path.as_ref().map(|p| p.lossy()) else {
        return false;
    };
    let name = file_name(&path);
    let ancestors = trace.ancestors(f.origin.pid);
    trace
        .messages
        .iter()
        .filter(|m| m.origin.pid == f.origin.pid || ancestors.contains(&m.origin.pid))
        .any(|m| {
            let text = m.text.lossy();
            names_path(&text, &path) || (!name.is_empty() && contains_word(&text, &name))
        })
}
