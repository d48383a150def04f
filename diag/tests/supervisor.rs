//! The seed case through an OpenShell-shaped supervisor (issue 15): the Landlock ruleset is
//! built in the supervisor and applied by the forked workload, among the supervisor's own
//! deliberate failures. Every mode (run and attach with both backends, analyze of a `strace -f`
//! log) must give the same verdict on each of three policies: the seed's (no /dev/pts), /dev/pts
//! only (still denied: /dev/ptmx is a device node here) and /dev/pts + /dev/ptmx (tmux works).
//!
//! The fixture's `dmesg --follow` orphan is bounded (`--monitor-seconds`) and attach runs with
//! `--duration`: run --backend ptrace and attach wait for the whole tree today.

mod common;
use common::*;
use diag::report::Report;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The fixture drops privileges and unshares a network namespace: analyze's runs need root too.
macro_rules! require_root {
    () => {
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: the supervisor fixture needs root");
            return;
        }
    };
}

#[derive(Clone, Copy, PartialEq)]
enum Policy {
    Seed,
    PtsOnly,
    PtsAndPtmx,
}

impl Policy {
    /// The policy file, made from the seed's.
    fn write(self, scratch: &Scratch) -> PathBuf {
        let grants = match self {
            Policy::Seed => "",
            Policy::PtsOnly => "    - /dev/pts\n",
            Policy::PtsAndPtmx => "    - /dev/pts\n    - /dev/ptmx\n",
        };
        let seed = std::fs::read_to_string(example("openclaw-sandbox.yaml")).unwrap();
        let path = scratch.path("policy.yaml");
        std::fs::write(
            &path,
            seed.replace("    - /dev/null\n", &format!("    - /dev/null\n{grants}")),
        )
        .unwrap();
        path
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Run(&'static str),
    Attach(&'static str),
    /// Attached after the supervisor built its ruleset, before the workload used it.
    AttachAfterRuleset(&'static str),
    AnalyzeStrace,
}

/// The tmux server of one test (its own socket in /tmp, where the run-as user may create it),
/// killed on drop.
struct TmuxServer(PathBuf);

impl Drop for TmuxServer {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.0)
            .arg("kill-server")
            .output();
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The workload of NemoClaw#5019's verification: a PTY from python, then tmux's session cycle.
fn workload(tmux: &TmuxServer) -> String {
    let t = format!("tmux -S {}", tmux.0.display());
    format!(
        "export TMUX_TMPDIR=/tmp; python3 -c 'import os; _, s = os.openpty(); print(os.ttyname(s))'; \
         {t} new-session -d -s smoke 'sleep 1' && {t} list-sessions && {t} kill-server"
    )
}

/// `python3 openshell_supervisor.py --policy P ... -- bash -lc WORKLOAD`.
fn supervisor(policy: &Path, tmux: &TmuxServer, extra: &[&str]) -> Vec<String> {
    let fixture = example("openshell_supervisor.py");
    let mut cmd: Vec<String> = vec![
        "/usr/bin/python3".into(),
        fixture.display().to_string(),
        "--policy".into(),
        policy.display().to_string(),
        "--monitor-seconds".into(),
        "3".into(),
    ];
    cmd.extend(extra.iter().map(|s| s.to_string()));
    cmd.extend(["--", "bash", "-lc"].map(String::from));
    cmd.push(workload(tmux));
    cmd
}

fn diagnose(mode: Mode, policy: Policy, tag: &str) -> (DiagRun, Scratch) {
    let scratch = Scratch::new(&format!("supervisor-{tag}"));
    let tmux = TmuxServer(
        std::env::temp_dir().join(format!("diag-supervisor-{tag}-{}.sock", std::process::id())),
    );
    let policy_file = policy.write(&scratch);
    let run = match mode {
        Mode::Run(backend) => {
            let cmd = supervisor(&policy_file, &tmux, &[]);
            let mut args = vec![
                "--quiet",
                "--backend",
                backend,
                "--policy-file-for-suggestions",
                policy_file.to_str().unwrap(),
            ];
            args.extend(after_dashes(&cmd));
            diag_json(&scratch, "run", &args)
        }
        Mode::Attach(backend) | Mode::AttachAfterRuleset(backend) => {
            // The supervisor is set up and waiting for a session when diag attaches to it.
            let go = scratch.path("go");
            let mut extra = vec!["--start-when", go.to_str().unwrap()];
            if let Mode::AttachAfterRuleset(_) = mode {
                extra.push("--ruleset-before-start");
            }
            let cmd = supervisor(&policy_file, &tmux, &extra);
            let sup = spawn_detached(&cmd);
            // Attaching in the middle of the set-up would see some of it: wait until it waits.
            let waiting = scratch.path("go.waiting");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !waiting.exists() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the supervisor never got set up"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let pid = sup.0.id().to_string();
            let args = ["--backend", backend, "--duration", "60s", "--pid", &pid];
            attach_with(&scratch, &args, |_| touch(&go))
        }
        Mode::AnalyzeStrace => {
            let log = scratch.path("strace.log");
            let cmd = supervisor(&policy_file, &tmux, &[]);
            let status = Command::new("strace")
                .args(["-f", "-s", "4096", "-o"])
                .arg(&log)
                .args(&cmd)
                .env_remove("LD_LIBRARY_PATH")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("strace");
            assert!(status.code().is_some(), "strace: {status}");
            diag_json(&scratch, "analyze", &["--quiet", log.to_str().unwrap()])
        }
    };
    (run, scratch)
}

fn lossy_path(f: &diag::report::model::FailureEntry) -> String {
    f.path.as_ref().map(|p| p.lossy()).unwrap_or_default()
}

/// The supervisor's deliberate failures and the shell's probes: listed, labelled noise, and in
/// no finding.
fn assert_plumbing_is_noise(r: &Report) {
    let plumbing = |f: &diag::report::model::FailureEntry| {
        let path = lossy_path(f);
        matches!(f.syscall.as_str(), "setuid" | "umount2")
            || path == "/dev/tty"
            || path.starts_with("/root/.local/bin/")
    };
    let seen: Vec<usize> = (0..r.failures.len())
        .filter(|&i| plumbing(&r.failures[i]))
        .collect();
    assert!(
        r.failures.iter().any(|f| f.syscall == "setuid") && seen.len() >= 3,
        "the supervisor's self-check, PATH search and the shell's /dev/tty probe: {:#?}",
        r.failures
    );
    for &i in &seen {
        let f = &r.failures[i];
        assert!(
            f.noise.is_some(),
            "{} {} {} is not labelled noise: {f:#?}",
            f.syscall,
            lossy_path(f),
            f.errno
        );
        assert!(
            r.findings.iter().all(|x| !x.failures.contains(&i)),
            "{f:#?} is in a finding: {:#?}",
            r.findings
        );
    }
}

fn assert_pty_denied(r: &Report, mode: Mode, policy: Policy) {
    let ptmx: Vec<usize> = (0..r.failures.len())
        .filter(|&i| r.failures[i].syscall == "openat" && lossy_path(&r.failures[i]) == "/dev/ptmx")
        .collect();
    let comms: Vec<String> = ptmx.iter().map(|&i| r.failures[i].comm.lossy()).collect();
    assert!(
        comms.contains(&"python3".to_string()) && comms.contains(&"tmux: server".to_string()),
        "{:#?}",
        r.failures
    );
    for &i in &ptmx {
        let f = &r.failures[i];
        assert_eq!(
            (f.errno.as_str(), f.layer.as_str(), f.confidence.as_str()),
            ("EACCES", "landlock", "direct"),
            "{f:#?}"
        );
        assert!(
            f.evidence.iter().any(|e| e.contains("/dev/ptmx needs")),
            "{f:#?}"
        );
    }
    let top = &r.findings[0];
    assert_eq!(
        (top.cause.as_str(), top.layer.as_str()),
        ("pty-denied", "landlock"),
        "{:#?}",
        r.findings
    );
    assert!(ptmx.iter().all(|i| top.failures.contains(i)), "{top:#?}");
    for said in ["PermissionError: [Errno 13] Permission denied", TMUX_FAIL] {
        let mi = r
            .messages
            .iter()
            .position(|m| m.text.lossy().trim_end() == said)
            .unwrap_or_else(|| panic!("no {said:?} in {:#?}", r.messages));
        assert!(
            top.explains.contains(&mi),
            "{said:?} not explained: {top:#?}"
        );
    }
    assert!(
        top.fix.contains("/dev/pts")
            && top.fix.contains("/dev/ptmx")
            && !top.fix.contains("/dev/tty"),
        "{}",
        top.fix
    );
    if let Mode::Run(_) = mode {
        let patch = top.policy_patch.as_deref().expect("a policy patch");
        let added: Vec<&str> = patch
            .lines()
            .filter(|l| l.starts_with("+    - "))
            .map(|l| l.trim_start_matches("+    - "))
            .collect();
        let expected: &[&str] = match policy {
            Policy::Seed => &["/dev/pts", "/dev/ptmx"],
            _ => &["/dev/ptmx"],
        };
        assert_eq!(added, expected, "{patch}");
        // No other finding asks for anything: the plumbing is noise.
        assert!(
            r.findings[1..].iter().all(|f| f.policy_patch.is_none()),
            "{:#?}",
            r.findings
        );
    }
    assert_plumbing_is_noise(r);
}

fn check(mode: Mode, policy: Policy, tag: &str) {
    let (run, _scratch) = diagnose(mode, policy, tag);
    let r = run.report();
    let expected_status = if policy == Policy::PtsAndPtmx { 0 } else { 1 };
    match mode {
        Mode::Run(_) => {
            assert_eq!(run.code(), expected_status, "{}", run.stderr());
            assert_eq!(r.exit_status, Some(expected_status));
        }
        Mode::Attach(_) | Mode::AttachAfterRuleset(_) => {
            assert_eq!(run.code(), 0, "{}", run.stderr())
        }
        Mode::AnalyzeStrace => {
            assert_eq!(run.code(), 0, "{}", run.stderr());
            assert_eq!(r.exit_status, Some(expected_status));
        }
    }
    // The supervisor built the ruleset; the workload child runs in the domain.
    let d = r
        .landlock_domains
        .first()
        .unwrap_or_else(|| panic!("no domain: {}", run.stderr()));
    assert!(!d.rules_unknown && !d.handled.is_empty(), "{d:#?}");
    let root = r.root_pids[0];
    assert_ne!(d.created_by, root, "restrict_self is the child's");
    if policy == Policy::PtsAndPtmx {
        assert!(r.findings.is_empty(), "{:#?}", r.findings);
        assert!(
            !r.failures
                .iter()
                .any(|f| lossy_path(f).starts_with("/dev/pt")),
            "{:#?}",
            r.failures
        );
        assert_plumbing_is_noise(r);
    } else {
        assert_pty_denied(r, mode, policy);
    }
}

#[test]
fn run_ebpf_seed_policy() {
    require_privileged!();
    check(Mode::Run("ebpf"), Policy::Seed, "run-ebpf-seed");
}

#[test]
fn run_ebpf_pts_only() {
    require_privileged!();
    check(Mode::Run("ebpf"), Policy::PtsOnly, "run-ebpf-pts");
}

#[test]
fn run_ebpf_pts_and_ptmx() {
    require_privileged!();
    check(Mode::Run("ebpf"), Policy::PtsAndPtmx, "run-ebpf-both");
}

#[test]
fn run_ptrace_seed_policy() {
    require_privileged!();
    check(Mode::Run("ptrace"), Policy::Seed, "run-ptrace-seed");
}

#[test]
fn run_ptrace_pts_only() {
    require_privileged!();
    check(Mode::Run("ptrace"), Policy::PtsOnly, "run-ptrace-pts");
}

#[test]
fn run_ptrace_pts_and_ptmx() {
    require_privileged!();
    check(Mode::Run("ptrace"), Policy::PtsAndPtmx, "run-ptrace-both");
}

#[test]
fn attach_ebpf_seed_policy() {
    require_privileged!();
    check(Mode::Attach("ebpf"), Policy::Seed, "attach-ebpf-seed");
}

#[test]
fn attach_ebpf_pts_only() {
    require_privileged!();
    check(Mode::Attach("ebpf"), Policy::PtsOnly, "attach-ebpf-pts");
}

#[test]
fn attach_ebpf_pts_and_ptmx() {
    require_privileged!();
    check(Mode::Attach("ebpf"), Policy::PtsAndPtmx, "attach-ebpf-both");
}

#[test]
fn attach_ptrace_seed_policy() {
    require_privileged!();
    check(Mode::Attach("ptrace"), Policy::Seed, "attach-ptrace-seed");
}

#[test]
fn attach_ptrace_pts_only() {
    require_privileged!();
    check(Mode::Attach("ptrace"), Policy::PtsOnly, "attach-ptrace-pts");
}

#[test]
fn attach_ptrace_pts_and_ptmx() {
    require_privileged!();
    check(
        Mode::Attach("ptrace"),
        Policy::PtsAndPtmx,
        "attach-ptrace-both",
    );
}

#[test]
fn analyze_strace_seed_policy() {
    require_root!();
    check(Mode::AnalyzeStrace, Policy::Seed, "analyze-seed");
}

#[test]
fn analyze_strace_pts_only() {
    require_root!();
    check(Mode::AnalyzeStrace, Policy::PtsOnly, "analyze-pts");
}

#[test]
fn analyze_strace_pts_and_ptmx() {
    require_root!();
    check(Mode::AnalyzeStrace, Policy::PtsAndPtmx, "analyze-both");
}

/// A ruleset built before diag attached: the workload's domain has unknown rules, which rule
/// nothing out. Landlock stays a candidate (singled out by elimination when the process is still
/// there to check DAC in its own view; a process already gone leaves it among the candidates).
#[test]
fn attach_after_the_ruleset_was_built_keeps_landlock_in() {
    require_privileged!();
    let (run, _scratch) = diagnose(
        Mode::AttachAfterRuleset("ebpf"),
        Policy::Seed,
        "attach-late",
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    let d = r
        .landlock_domains
        .first()
        .expect("the child's restrict_self is traced");
    assert!(d.rules_unknown && d.rules.is_empty(), "{d:#?}");
    let ptmx: Vec<_> = r
        .failures
        .iter()
        .filter(|f| lossy_path(f) == "/dev/ptmx")
        .collect();
    assert!(!ptmx.is_empty(), "{:#?}", r.failures);
    for f in ptmx {
        let landlock_kept = match f.layer.as_str() {
            "landlock" => f.confidence.as_str() == "inferred",
            "unknown" => f.candidates.iter().any(|c| c.as_str() == "landlock"),
            _ => false,
        };
        assert!(landlock_kept, "{f:#?}");
        assert!(
            f.evidence.iter().any(|e| e.contains("rules are unknown")),
            "{f:#?}"
        );
        assert!(
            f.ruled_out
                .iter()
                .all(|x| x.layer.is_none_or(|l| l.as_str() != "landlock")),
            "{f:#?}"
        );
    }
    assert_eq!(r.findings[0].cause, "pty-denied", "{:#?}", r.findings);
}
