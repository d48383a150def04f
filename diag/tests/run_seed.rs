//! The seed case and `diag run`'s contract (issue 2), end to end, as root: real eBPF, a real
//! Landlock sandbox, real tmux.

mod common;
use common::*;

#[test]
fn seed_case_pty_denied_by_landlock() {
    require_privileged!();
    let scratch = Scratch::new("seed");
    let tmux = TmuxSocket::new("seed");
    let cmd = seed_command(&tmux);
    let args = after_dashes(&cmd);
    let run = diag_json(&scratch, "run", &args);
    assert_eq!(
        run.code(),
        1,
        "diag must exit with tmux's status; stderr:\n{}",
        run.stderr()
    );
    let r = run.report();
    assert_eq!(r.schema, "diag.report/v1");
    assert_eq!((r.backend.as_str(), r.mode.as_str()), ("ebpf", "run"));
    assert_eq!(r.exit_status, Some(1));
    assert_eq!(r.lost_events, 0);

    let (i, f) = ptmx_failure(r)
        .unwrap_or_else(|| panic!("no openat /dev/ptmx EACCES in {:#?}", r.failures));
    let root = r.root_pids[0];
    assert_ne!(
        f.pid, root,
        "the failure is in a descendant, not the launched pid"
    );
    assert!(
        is_descendant(r, f.pid, root),
        "pid {} is not below {root}",
        f.pid
    );
    assert_eq!(f.comm.lossy(), "tmux: server");
    assert_eq!(f.flags.as_deref(), Some("O_RDWR"));

    // Issue 3: the layer, directly, with the domain's grants (no /dev/pts) as evidence.
    assert_eq!(f.layer.as_str(), "landlock");
    assert_eq!(f.confidence.as_str(), "direct");
    let ev = f.evidence.join("\n");
    assert!(
        ev.contains("Landlock domain 1") && ev.contains("/dev/ptmx needs"),
        "{ev}"
    );
    assert!(!r.landlock_domains.is_empty());
    let rules: Vec<String> = r.landlock_domains[0]
        .rules
        .iter()
        .filter_map(|x| x.path.as_ref().map(|p| p.lossy()))
        .collect();
    assert!(
        rules.contains(&"/dev/null".to_string())
            && !rules.iter().any(|p| p.starts_with("/dev/pts")),
        "{rules:?}"
    );

    // Issue 4: the finding explains the message.
    assert_seed_finding(r, i);
    let top = &r.findings[0];
    assert!(
        top.fix.contains("/dev/pts") && top.fix.contains("/dev/ptmx"),
        "{}",
        top.fix
    );
    // In the cause vocabulary, each with the layer it excludes.
    let ruled: Vec<(&str, Option<&str>)> = top
        .ruled_out
        .iter()
        .map(|x| (x.cause.as_str(), x.layer.map(|l| l.as_str())))
        .collect();
    for suspect in [
        ("seccomp-denied", Some("seccomp")),
        ("nproc-exhausted", Some("rlimit-nproc")),
        ("pty-denied", Some("dac")),
    ] {
        assert!(
            ruled.contains(&suspect),
            "{suspect:?} not ruled out: {:#?}",
            top.ruled_out
        );
    }
    let nproc = top
        .ruled_out
        .iter()
        .find(|x| x.cause == "nproc-exhausted")
        .unwrap();
    assert!(
        nproc.why.chars().any(|c| c.is_ascii_digit()) && nproc.why.contains("fork/clone"),
        "nproc without figures: {}",
        nproc.why
    );
    // The human report leads with the verdict.
    let err = run.stderr();
    let verdict = err.lines().find(|l| l.starts_with("diag: ")).unwrap_or("");
    assert!(
        verdict.contains("tmux said") && verdict.contains("Landlock"),
        "{err}"
    );
}

#[test]
fn granting_dev_pts_and_ptmx_makes_tmux_succeed() {
    require_privileged!();
    let scratch = Scratch::new("granted");
    let tmux = TmuxSocket::new("granted");
    let policy = scratch.path("granted.yaml");
    let base = std::fs::read_to_string(example("openclaw-sandbox.yaml")).unwrap();
    std::fs::write(
        &policy,
        base.replace(
            "    - /dev/null\n",
            "    - /dev/null\n    - /dev/pts\n    - /dev/ptmx\n",
        ),
    )
    .unwrap();
    let cmd = sandboxed(&policy, &tmux.new_session());
    let args = after_dashes(&cmd);
    let run = diag_json(&scratch, "run", &args);
    assert_eq!(run.code(), 0, "stderr:\n{}", run.stderr());
    let r = run.report();
    assert!(
        !r.failures.iter().any(|f| f
            .path
            .as_ref()
            .is_some_and(|p| p.lossy().starts_with("/dev/pt"))),
        "{:#?}",
        r.failures
    );
    assert!(r.findings.iter().all(|f| f.cause != "pty-denied"));
}

#[test]
fn exit_status_is_the_commands_own() {
    require_privileged!();
    assert_exit_statuses_are_the_commands_own(&Scratch::new("status"), "ebpf");
}

#[test]
fn a_missing_command_exits_127_with_one_line() {
    require_privileged!();
    let scratch = Scratch::new("missing");
    let run = diag_json(
        &scratch,
        "run",
        &["--quiet", "--", "/nonexistent/diag-no-such-command"],
    );
    assert_eq!(run.code(), 127);
    let err = run.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot run") && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn without_privilege_diag_says_what_is_needed_and_exits_2() {
    require_privileged!();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(diag_bin())
        .args(["run", "--backend", "ebpf", "--", "true"])
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("root") || err.contains("CAP_BPF"), "{err}");
}
