//! `diag attach` (issue 6), end to end as root.

mod common;
use common::fixtures::{path_is, secret, Supervisor, AS_NOBODY};
use common::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A cgroup the test creates (v2 under the unified mount, or v1 under the pids controller) and
/// removes on drop, moving any leftover member out first.
struct TestCgroup {
    dir: PathBuf,
    parent_procs: PathBuf,
}

impl TestCgroup {
    fn new(mount: &str, tag: &str) -> Option<Self> {
        let root = PathBuf::from(mount);
        if !root.join("cgroup.procs").exists() {
            return None;
        }
        let dir = root.join(format!("diag-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).ok()?;
        Some(TestCgroup {
            dir,
            parent_procs: root.join("cgroup.procs"),
        })
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.lines() {
                let _ = Command::new("kill").args(["-9", pid]).status();
                let _ = std::fs::write(&self.parent_procs, pid);
            }
        }
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Waits (bounded) until `path` exists.
fn wait_for(path: &std::path::Path) {
    for _ in 0..600 {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never appeared", path.display());
}

/// Shell snippet: block until the test creates `go`.
fn wait_go(go: &std::path::Path) -> String {
    format!("while [ ! -e {} ]; do sleep 0.05; done; ", go.display())
}

fn sh(script: &str) -> Reaped {
    Reaped(
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn attach_by_pid_finds_the_seed_failure_in_a_later_child() {
    require_privileged!();
    seed_failure_in_a_later_child("ebpf");
}

/// The same through ptrace, which attaches to every thread of the running tree.
#[test]
fn attach_with_ptrace_finds_the_seed_failure_in_a_later_child() {
    require_privileged!();
    seed_failure_in_a_later_child("ptrace");
}

fn seed_failure_in_a_later_child(backend: &str) {
    let scratch = Scratch::new(&format!("attach-pid-{backend}"));
    let tmux = TmuxSocket::new(&format!("attach-{backend}"));
    let cmd = seed_command(&tmux);
    let quoted: Vec<String> = cmd.iter().map(|a| format!("'{a}'")).collect();
    let go = scratch.path("go");
    let parent = sh(&format!("{}{}", wait_go(&go), quoted.join(" ")));
    let pid = parent.0.id().to_string();
    let args = ["--backend", backend, "--duration", "60s", "--pid", &pid];
    let run = attach_with(&scratch, &args, |_| touch(&go));
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    assert_eq!((r.mode.as_str(), r.backend.as_str()), ("attach", backend));
    assert_eq!(r.root_pids, vec![parent.0.id()]);
    assert!(!r.partial);
    let f = r
        .failures
        .iter()
        .find(|f| {
            f.syscall == "openat" && f.path.as_ref().is_some_and(|p| p.lossy() == "/dev/ptmx")
        })
        .unwrap_or_else(|| panic!("{:#?}", r.failures));
    assert_eq!(
        (f.errno.as_str(), f.comm.lossy().as_str(), f.layer.as_str()),
        ("EACCES", "tmux: server", "landlock")
    );
    assert!(is_descendant(r, f.pid, parent.0.id()));
    assert!(r
        .messages
        .iter()
        .any(|m| m.text.lossy() == "create window failed: fork failed: Permission denied"));
    assert_eq!(
        (r.findings[0].cause.as_str(), r.findings[0].layer.as_str()),
        ("pty-denied", "landlock")
    );
    // Processes forked after attach carry when they were first seen.
    let server = r.processes.iter().find(|p| p.pid == f.pid).unwrap();
    assert!(server.first_seen_ns > 0);
}

/// A workload that fails `open` on a 0600 file as nobody once `go` exists; `joined` is created
/// after it entered its cgroup.
fn denied_workload(
    file: &std::path::Path,
    go: &std::path::Path,
    cgroup: Option<(&std::path::Path, &std::path::Path)>,
) -> Reaped {
    let join = cgroup
        .map(|(procs, joined)| {
            format!(
                "echo $$ > {}; touch {}; ",
                procs.display(),
                joined.display()
            )
        })
        .unwrap_or_default();
    sh(&format!(
        "{join}{}setpriv --reuid=65534 --regid=65534 --clear-groups cat {}; sleep 0.5",
        wait_go(go),
        file.display()
    ))
}

fn cgroup_isolation(mount: &str, tag: &str) {
    let scratch = Scratch::new(tag);
    let Some(cg) = TestCgroup::new(mount, tag) else {
        eprintln!("SKIPPED: no cgroup hierarchy at {mount}");
        return;
    };
    let inside = scratch.path("inside-secret");
    let outside = scratch.path("outside-secret");
    for f in [&inside, &outside] {
        std::fs::write(f, "x").unwrap();
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    std::fs::set_permissions(
        &scratch.0,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (go, joined) = (scratch.path("go"), scratch.path("joined"));
    let _a = denied_workload(&inside, &go, Some((&cg.dir.join("cgroup.procs"), &joined)));
    let _b = denied_workload(&outside, &go, None);
    wait_for(&joined);
    let run = attach_with(
        &scratch,
        &["--duration", "3s", "--cgroup", cg.dir.to_str().unwrap()],
        |_| touch(&go),
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    let paths: Vec<String> = r
        .failures
        .iter()
        .filter_map(|f| f.path.as_ref().map(|p| p.lossy()))
        .collect();
    assert!(
        paths.contains(&inside.display().to_string()),
        "{mount}: {paths:?}"
    );
    assert!(
        !paths.contains(&outside.display().to_string()),
        "{mount}: saw the outside workload: {paths:?}"
    );
    let f = r
        .failures
        .iter()
        .find(|f| {
            f.path
                .as_ref()
                .is_some_and(|p| p.lossy() == inside.display().to_string())
        })
        .unwrap();
    assert_eq!(
        (f.syscall.as_str(), f.errno.as_str(), f.layer.as_str()),
        ("openat", "EACCES", "dac")
    );
}

#[test]
fn attach_by_cgroup_v2_sees_only_its_members() {
    require_privileged!();
    cgroup_isolation("/sys/fs/cgroup/unified", "cg2");
}

#[test]
fn attach_by_cgroup_v1_sees_only_its_members() {
    require_privileged!();
    cgroup_isolation("/sys/fs/cgroup/pids", "cg1");
}

#[test]
fn duration_on_an_idle_process_gives_an_empty_valid_report() {
    require_privileged!();
    let scratch = Scratch::new("attach-idle");
    let idle = sh("sleep 60");
    let pid = idle.0.id().to_string();
    let run = diag_json(
        &scratch,
        "attach",
        &["--quiet", "--duration", "2s", "--pid", &pid],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    assert!(
        r.failures.is_empty() && r.findings.is_empty() && !r.partial,
        "{:#?}",
        r.failures
    );
    assert_eq!(r.exit_status, None);
}

/// A signal to diag: a partial report, exit 128+N, and the attached process left running (attach
/// launched nothing: by default it only stops tracing).
#[test]
fn signals_write_a_partial_report_and_leave_the_process_running() {
    require_privileged!();
    for (sig, n) in [("INT", 2), ("TERM", 15), ("HUP", 1)] {
        let scratch = Scratch::new(&format!("attach-sig{sig}"));
        let mut idle = sh("sleep 60");
        let pid = idle.0.id().to_string();
        let run = attach_with(&scratch, &["--pid", &pid], |diag| {
            Command::new("kill")
                .args([&format!("-{sig}"), &diag.to_string()])
                .status()
                .unwrap();
        });
        assert_eq!(run.code(), 128 + n, "SIG{sig}: {}", run.stderr());
        assert!(run.report().partial, "SIG{sig}: report not marked partial");
        assert!(
            idle.0.try_wait().unwrap().is_none(),
            "SIG{sig}: the attached process did not run on"
        );
    }
}

/// `diag attach --backend BACKEND ARGS --pid` a [`Supervisor`] leaving `orphan` behind.
fn attach_to_supervisor(
    scratch: &Scratch,
    backend: &str,
    args: &[&str],
    orphan: &str,
) -> (Supervisor, DiagRun) {
    let go = scratch.path("go");
    let sup = Supervisor::new(scratch, &wait_go(&go), orphan);
    let supervisor = sh(sup.command()[2]);
    let pid = supervisor.0.id().to_string();
    let mut all = vec!["--backend", backend];
    all.extend(args);
    all.extend(["--pid", &pid]);
    let run = attach_with(scratch, &all, |_| touch(&go));
    assert_eq!(run.code(), 0, "{backend}: {}", run.stderr());
    (sup, run)
}

/// A supervisor that leaves an orphan daemon behind: attach ends once the supervisor has
/// exited, with its denial, names the daemon, and the daemon runs on (ptrace let go of it).
#[test]
fn attach_ends_when_the_attached_process_exits() {
    require_privileged!();
    for backend in ["ebpf", "ptrace"] {
        let scratch = Scratch::new(&format!("attach-orphan-{backend}"));
        let started = std::time::Instant::now();
        let (sup, run) = attach_to_supervisor(&scratch, backend, &[], "exec sleep 60");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(20),
            "{backend}: attach ran {took:?} after the supervisor's exit"
        );
        let r = run.report();
        assert!(!r.partial, "{backend}");
        assert!(sup.denial_in(r), "{backend}: {:#?}", r.failures);
        assert!(sup.named_left_running(r), "{backend}: {:?}", r.warnings);
        assert!(sup.orphan_running(), "{backend}: the orphan did not run on");
        let status = std::fs::read_to_string(format!("/proc/{}/status", sup.orphan())).unwrap();
        assert!(status.contains("TracerPid:\t0"), "{backend}: {status}");
    }
}

/// `--until-tree-exits`: attach follows the orphan to its end, and sees its later denial.
#[test]
fn until_tree_exits_follows_the_orphan_to_its_end() {
    require_privileged!();
    for backend in ["ebpf", "ptrace"] {
        let scratch = Scratch::new(&format!("attach-tree-{backend}"));
        let later = secret(&scratch, "later");
        let orphan = format!("sleep 1; {AS_NOBODY} cat {} 2>/dev/null", later.display());
        let (sup, run) = attach_to_supervisor(&scratch, backend, &["--until-tree-exits"], &orphan);
        let r = run.report();
        assert!(sup.denial_in(r), "{backend}");
        assert!(
            r.failures.iter().any(|f| path_is(f, &later)),
            "{backend}: the orphan's later denial is missing: {:#?}",
            r.failures
        );
    }
}

/// Attached to diag's own ancestor (by pid), or to a cgroup diag is in: diag traces none of
/// its own calls, and `--duration 3s` ends it in time. Short-lived failing children keep diag
/// busy reading the procfs of processes already gone: with every errno watched, a diag that
/// traced itself would record (and feed on) its own failed reads.
#[test]
fn diag_never_traces_itself_and_duration_is_a_hard_deadline() {
    require_privileged!();
    let v2 = diag::context::cgroup::mounts().1;
    let cgroup = v2.and_then(|m| TestCgroup::new(m.to_str().unwrap(), "attach-self"));
    let mut targets = vec![("pid", "--pid $$".to_string(), String::new())];
    match &cgroup {
        Some(cg) => targets.push((
            "cgroup",
            format!("--cgroup {}", cg.dir.display()),
            format!("echo $$ > {}/cgroup.procs; ", cg.dir.display()),
        )),
        None => eprintln!("SKIPPED (cgroup part): no cgroup v2 mount to make a cgroup in"),
    }
    for (what, target, join) in targets {
        let scratch = Scratch::new(&format!("attach-self-{what}"));
        let (json, pid_file) = (scratch.path("r.json"), scratch.path("diag.pid"));
        let script = format!(
            "{join}{} attach --quiet --errno all --duration 3s {target} --json {} & echo $! > {}; \
             sleep 1; i=0; while [ $i -lt 300 ]; do cat /nonexistent 2>/dev/null; i=$((i+1)); done; wait $!",
            diag_bin(),
            json.display(),
            pid_file.display()
        );
        let started = std::time::Instant::now();
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        let took = started.elapsed();
        assert!(out.status.success(), "{what}: {out:?}");
        assert!(
            took < Duration::from_secs(3 + 5),
            "{what}: --duration 3s took {took:?}"
        );
        let diag: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let r: diag::report::Report =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert!(
            r.processes.iter().all(|p| p.pid != diag),
            "{what}: diag is in its own report: {:#?}",
            r.processes
        );
        let own: Vec<_> = r.failures.iter().filter(|f| f.pid == diag).collect();
        assert!(own.is_empty(), "{what}: diag's own calls: {own:#?}");
    }
}

#[test]
fn two_instances_attached_at_once_both_work() {
    require_privileged!();
    let scratch = Scratch::new("attach-two");
    let secret = scratch.path("secret");
    std::fs::write(&secret, "x").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::set_permissions(
        &scratch.0,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let go = scratch.path("go");
    let w = denied_workload(&secret, &go, None);
    let pid = w.0.id().to_string();
    // The second instance attaches while the first is attached; the workload starts after both.
    let b_ready = scratch.path("b-ready");
    let run_a = std::thread::scope(|s| {
        let a = s.spawn(|| attach_with(&scratch, &["--pid", &pid], |_| touch(&b_ready)));
        wait_for(&b_ready);
        let run_b = attach_with(&scratch, &["--duration", "30s", "--pid", &pid], |_| {
            touch(&go)
        });
        (a.join().unwrap(), run_b)
    });
    for run in [run_a.0, run_a.1] {
        assert_eq!(run.code(), 0, "{}", run.stderr());
        let r = run.report();
        assert!(
            r.failures.iter().any(|f| f
                .path
                .as_ref()
                .is_some_and(|p| p.lossy() == secret.display().to_string())),
            "{:#?}",
            r.failures
        );
    }
}

/// ptrace attach leaves no trace behind: after `--duration` the process has no tracer, is not
/// left stopped, and runs on to its own end with its own status (attached tasks carry no
/// EXITKILL, which would kill it when diag exits).
#[test]
fn ptrace_attach_lets_go_of_a_process_that_outlives_it() {
    require_privileged!();
    let scratch = Scratch::new("attach-ptrace-detach");
    let done = scratch.path("done");
    let mut p = sh(&format!("sleep 1.5; touch {}", done.display()));
    let pid = p.0.id();
    let args = [
        "--backend",
        "ptrace",
        "--duration",
        "300ms",
        "--pid",
        &pid.to_string(),
    ];
    let run = attach_with(&scratch, &args, |_| {});
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.report().backend, "ptrace");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap()
    };
    assert_eq!(field("TracerPid:"), "0", "still traced:\n{status}");
    assert!(!field("State:").starts_with('t'), "left stopped:\n{status}");
    assert!(
        p.0.wait().unwrap().success(),
        "the process was not left to finish"
    );
    assert!(done.exists());
}

#[test]
fn bad_targets_get_one_line_and_exit_2() {
    require_privileged!();
    for args in [
        &["--pid", "0"][..],
        &["--pid", "-3"],
        &["--pid", "2147483647"],
        &["--pid", "2"],
        &["--cgroup", "/etc/hostname"],
        &[],
    ] {
        let out = Command::new(diag_bin())
            .arg("attach")
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn landlock_by_elimination_when_the_domain_predates_the_attach() {
    require_privileged!();
    let scratch = Scratch::new("attach-elim");
    let go = scratch.path("go");
    // The sandbox (and its Landlock domain) exists before diag attaches; only the PTY open after
    // `go` is traced, so no landlock_* call is seen and the layer must come from elimination.
    // The shell outlives python briefly, so the sandbox's view of the filesystem can be read.
    let script = format!(
        "{}/usr/bin/python3 -c 'import os; os.openpty()'; sleep 1",
        wait_go(&go)
    );
    let sandbox = sandboxed(&example("openclaw-sandbox.yaml"), &["sh", "-c", &script]);
    let parent = spawn_detached(&sandbox);
    let pid = parent.0.id().to_string();
    let run = attach_with(&scratch, &["--duration", "60s", "--pid", &pid], |_| {
        touch(&go)
    });
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    assert!(
        r.landlock_domains.is_empty(),
        "the domain was created before the attach"
    );
    let (_, f) = ptmx_failure(r).unwrap_or_else(|| panic!("{:#?}", r.failures));
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("landlock", "inferred"),
        "{:#?}",
        f.evidence
    );
    let ev = f.evidence.join("\n");
    assert!(ev.contains("by elimination"), "{ev}");
    let ruled: Vec<&str> = f
        .ruled_out
        .iter()
        .filter_map(|x| Some(x.layer?.as_str()))
        .collect();
    for suspect in ["seccomp", "dac"] {
        assert!(
            ruled.contains(&suspect),
            "{suspect} not excluded: {:#?}",
            f.ruled_out
        );
    }
}
