//! Message linking across the tree, folding of symptoms into one finding, and ranking.

use super::*;
use crate::correlate::ProcessInfo;
use crate::model::{CaptureStats, Failure, Message, Origin};

fn origin(pid: u32, t: u64) -> Origin {
    Origin {
        pid,
        tid: pid,
        time_ns: t,
        comm: Text::from("tmux"),
        ..Default::default()
    }
}

fn attribution(layer: Layer, confidence: Confidence) -> Attribution {
    Attribution {
        layer,
        confidence,
        evidence: vec![format!("{layer} said so")],
        ruled_out: vec![],
        candidates: vec![],
        noise: None,
        needed: None,
        decoded: None,
        fix: None,
    }
}

/// A tmux-shaped tree: client 19 forks server 20.
fn trace() -> Trace {
    let mut tr = Trace::new();
    for (pid, ppid) in [(19, None), (20, Some(19))] {
        tr.processes.insert(
            pid,
            ProcessInfo {
                pid,
                ppid,
                comm: Text::from("tmux"),
                exe: Some(Text::from("/usr/bin/tmux")),
                ..Default::default()
            },
        );
    }
    tr.stats = CaptureStats {
        process_forks: 2,
        ..Default::default()
    };
    tr
}

fn fail(tr: &mut Trace, pid: u32, t: u64, syscall: &str, errno: i32, path: Option<&str>) {
    tr.failures.push(FailureGroup {
        failure: Failure {
            origin: origin(pid, t),
            syscall: syscall.into(),
            errno,
            path: path.map(Text::from),
            ..Default::default()
        },
        count: 1,
        other_pids: 0,
        first_ns: t,
        last_ns: t,
        context: None,
        flush: None,
    });
}

fn say(tr: &mut Trace, pid: u32, t: u64, text: &str) {
    tr.messages.push(Message {
        origin: origin(pid, t),
        fd: 2,
        text: Text::from(text),
        truncated: false,
    });
}

fn explain(tr: &Trace, a: &[Attribution]) -> Vec<Finding> {
    findings(tr, a, catalog::builtin())
}

#[test]
fn the_clients_message_is_linked_to_the_servers_failure() {
    let mut tr = trace();
    say(&mut tr, 19, 50, "starting");
    fail(&mut tr, 20, 100, "openat", libc::EACCES, Some("/dev/ptmx"));
    say(
        &mut tr,
        19,
        200,
        "create window failed: fork failed: Permission denied",
    );
    let f = explain(&tr, &[attribution(Layer::Landlock, Confidence::Direct)]);
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].cause.as_str(), f[0].layer),
        ("pty-denied", Layer::Landlock)
    );
    // Printed before anything failed: not an explanation.
    assert_eq!(f[0].explains, vec![1]);
    let s = &f[0].summary;
    assert!(
        s.starts_with("tmux said \"create window failed: fork failed: Permission denied\"")
            && s.contains("openat /dev/ptmx")
            && s.contains("pid 20")
            && s.contains("fork/clone succeeded 2 times"),
        "{s}"
    );
}

#[test]
fn symptoms_of_one_cause_fold_into_one_finding() {
    let mut tr = trace();
    fail(&mut tr, 20, 100, "openat", libc::EACCES, Some("/dev/ptmx"));
    fail(&mut tr, 20, 110, "openat", libc::EACCES, Some("/dev/pts/3"));
    fail(&mut tr, 20, 120, "chown", libc::EPERM, Some("/dev/pts/3"));
    let a = vec![attribution(Layer::Landlock, Confidence::Direct); 3];
    let f = explain(&tr, &a);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].failures, vec![0, 1, 2]);
    assert!(f[0]
        .evidence
        .contains(&"3 distinct failing calls fold into this finding".to_string()));
}

#[test]
fn the_cause_with_an_explained_message_ranks_first_and_noise_makes_no_finding() {
    let mut tr = trace();
    // An earlier, unexplained DAC failure; a clone3 probe that glibc survived; then the cause
    // of the message.
    fail(&mut tr, 20, 10, "openat", libc::EACCES, Some("/etc/shadow"));
    fail(&mut tr, 20, 20, "clone3", libc::ENOSYS, None);
    fail(&mut tr, 19, 100, "clone", libc::EAGAIN, None);
    say(
        &mut tr,
        19,
        200,
        "bash: fork: retry: Resource temporarily unavailable",
    );
    let mut noise = attribution(Layer::Seccomp, Confidence::Direct);
    noise.noise = Some("glibc falls back to clone".into());
    let a = vec![
        attribution(Layer::Dac, Confidence::Inferred),
        noise,
        attribution(Layer::RlimitNproc, Confidence::Inferred),
    ];
    let f = explain(&tr, &a);
    let causes: Vec<&str> = f.iter().map(|x| x.cause.as_str()).collect();
    assert_eq!(causes, vec!["nproc-exhausted", "file-denied"]);
    assert_eq!(f[0].explains, vec![0]);
    assert!(f.iter().all(|x| !x.failures.contains(&1)));
    // A limit cause does not list its own layer among the suspects it excluded.
    assert!(f[0]
        .ruled_out
        .iter()
        .all(|r| r.layer != Some(Layer::RlimitNproc)));
}

#[test]
fn an_unmatched_failure_is_an_honest_unknown_ranked_after_known_causes() {
    let mut tr = trace();
    fail(&mut tr, 20, 10, "setsid", libc::EPERM, None);
    fail(&mut tr, 20, 20, "openat", libc::EACCES, Some("/srv/secret"));
    let a = vec![
        attribution(Layer::Unknown, Confidence::Unknown),
        attribution(Layer::Dac, Confidence::Direct),
    ];
    let f = explain(&tr, &a);
    assert_eq!(f.len(), 2);
    assert_eq!(
        (f[0].cause.as_str(), f[0].layer),
        ("file-denied", Layer::Dac)
    );
    assert_eq!(
        (f[1].cause.as_str(), f[1].layer),
        ("unknown", Layer::Unknown)
    );
    assert_eq!(f[1].failures, vec![0]);
    assert!(
        f[1].summary.contains("setsid failed with EPERM"),
        "{}",
        f[1].summary
    );
}
