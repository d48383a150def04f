//! How `diag run` ends (issues 14 and 15): on a signal to diag, on diag's SIGKILL, and when the
//! command exits leaving daemons behind; with both backends, as root.

mod common;
use common::fixtures::{path_is, secret, Supervisor, AS_NOBODY};
use common::*;
use diag::cli::live::alive;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BACKENDS: [&str; 2] = ["ebpf", "ptrace"];

/// Waits for `child` at most `limit`; SIGKILLs it and fails the test past that.
fn wait_within(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{what}: diag still running after {limit:?}");
}

/// Waits (bounded) for a pid written to `file`.
fn pid_in(file: &Path) -> u32 {
    for _ in 0..400 {
        if let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{} never got a pid", file.display());
}

/// Waits up to 5 s for `pid` to be gone.
fn gone(pid: u32) -> bool {
    for _ in 0..250 {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// SIGKILLs the listed pids' process groups on drop (what a failing test leaves running).
struct Cleanup(Vec<u32>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: plain syscalls on pids this test started.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
    }
}

fn diag_run_spawn(json: &Path, args: &[&str], cmd: &[&str]) -> Child {
    diag_command()
        .args(["run", "--quiet", "--json", json.to_str().unwrap()])
        .args(args)
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

fn report_at(json: &Path) -> diag::report::Report {
    let text = std::fs::read_to_string(json).expect("no report written");
    assert_valid_report(&text);
    serde_json::from_str(&text).unwrap()
}

/// Each ending signal: a partial report, exit 128+N, and the tree gone: a busy command that
/// ignores the signal and a daemon in a session of its own that ignores it too are SIGKILLed
/// after the grace period. The ptrace backend honours the signal at once too.
#[test]
fn signals_to_diag_end_the_tree_and_exit_128_plus_n() {
    require_privileged!();
    for backend in BACKENDS {
        for (sig, n) in [("INT", 2), ("TERM", 15), ("HUP", 1), ("PIPE", 13)] {
            let what = format!("{backend} SIG{sig}");
            let scratch = Scratch::new(&format!("end-{backend}-{sig}"));
            let (root_pid, daemon_pid) = (scratch.path("root.pid"), scratch.path("daemon.pid"));
            let script = format!(
                "trap '' INT TERM HUP PIPE; echo $$ > {}; \
                 setsid sh -c 'echo $$ > {}; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 & \
                 while :; do ls /nonexistent >/dev/null 2>&1; done",
                root_pid.display(),
                daemon_pid.display()
            );
            let json = scratch.path("r.json");
            let mut diag = diag_run_spawn(&json, &["--backend", backend], &["sh", "-c", &script]);
            let (root, daemon) = (pid_in(&root_pid), pid_in(&daemon_pid));
            let _cleanup = Cleanup(vec![root, daemon]);
            let started = Instant::now();
            Command::new("kill")
                .args([&format!("-{sig}"), &diag.id().to_string()])
                .status()
                .unwrap();
            let status = wait_within(&mut diag, Duration::from_secs(30), &what);
            assert_eq!(status.code(), Some(128 + n), "{what}");
            assert!(report_at(&json).partial, "{what}: not marked partial");
            assert!(
                gone(root) && gone(daemon),
                "{what}: the tree was left running"
            );
            eprintln!("{what}: ended in {:?}", started.elapsed());
        }
    }
}

/// `diag run ARGS -- sh -c 'exec sleep 60'`, once the command runs.
struct Sleeper {
    _scratch: Scratch,
    json: std::path::PathBuf,
    diag: Child,
    cmd: u32,
    _cleanup: Cleanup,
}

fn run_sleeper(tag: &str, args: &[&str]) -> Sleeper {
    let scratch = Scratch::new(tag);
    let pid_file = scratch.path("cmd.pid");
    let script = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let json = scratch.path("r.json");
    let diag = diag_run_spawn(&json, args, &["sh", "-c", &script]);
    let cmd = pid_in(&pid_file);
    Sleeper {
        _scratch: scratch,
        json,
        diag,
        cmd,
        _cleanup: Cleanup(vec![cmd]),
    }
}

/// `--on-signal detach`: the report is written, and the command runs on.
#[test]
fn on_signal_detach_leaves_the_command_running() {
    require_privileged!();
    for backend in BACKENDS {
        let args = ["--backend", backend, "--on-signal", "detach"];
        let mut s = run_sleeper(&format!("detach-{backend}"), &args);
        let cmd = s.cmd;
        // Past the exec: the command is sleeping.
        while std::fs::read_to_string(format!("/proc/{cmd}/comm")).unwrap_or_default() != "sleep\n"
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        Command::new("kill")
            .args(["-TERM", &s.diag.id().to_string()])
            .status()
            .unwrap();
        let status = wait_within(&mut s.diag, Duration::from_secs(30), backend);
        assert_eq!(status.code(), Some(143), "{backend}");
        assert!(report_at(&s.json).partial, "{backend}");
        std::thread::sleep(Duration::from_millis(300));
        assert!(alive(cmd), "{backend}: the command did not run on");
        let status = std::fs::read_to_string(format!("/proc/{cmd}/status")).unwrap();
        assert!(
            status.contains("TracerPid:\t0"),
            "{backend}: still traced:\n{status}"
        );
    }
}

/// diag SIGKILLed: the command dies with it (PR_SET_PDEATHSIG; the ptrace backend's
/// PTRACE_O_EXITKILL as well).
#[test]
fn sigkill_of_diag_takes_the_command_with_it() {
    require_privileged!();
    for backend in BACKENDS {
        let mut s = run_sleeper(&format!("kill9-{backend}"), &["--backend", backend]);
        s.diag.kill().unwrap();
        s.diag.wait().unwrap();
        assert!(
            gone(s.cmd),
            "{backend}: the command outlived diag's SIGKILL"
        );
    }
}

/// A supervisor that leaves an orphan daemon behind: `run` returns once the supervisor has
/// exited, with its status and its denial, names the daemon it left running, and the daemon
/// runs on (the ptrace backend detached from it).
#[test]
fn run_ends_when_the_command_exits_and_names_the_daemon_it_left() {
    require_privileged!();
    for backend in BACKENDS {
        let scratch = Scratch::new(&format!("orphan-{backend}"));
        let sup = Supervisor::new(&scratch, "", "exec sleep 60");
        let json = scratch.path("r.json");
        let started = Instant::now();
        let mut diag = diag_run_spawn(&json, &["--backend", backend], &sup.command());
        let status = wait_within(&mut diag, Duration::from_secs(30), backend);
        assert_eq!(status.code(), Some(3), "{backend}: the supervisor's status");
        eprintln!("{backend}: returned in {:?}", started.elapsed());
        let r = report_at(&json);
        assert!(!r.partial, "{backend}");
        assert!(sup.denial_in(&r), "{backend}: {:#?}", r.failures);
        assert!(sup.named_left_running(&r), "{backend}: {:?}", r.warnings);
        std::thread::sleep(Duration::from_millis(300));
        assert!(sup.orphan_running(), "{backend}: the orphan did not run on");
    }
}

/// `--wait-tree` still follows the daemon to its end, with either backend.
#[test]
fn wait_tree_follows_the_daemon_to_its_end() {
    require_privileged!();
    for backend in BACKENDS {
        let scratch = Scratch::new(&format!("wait-tree-{backend}"));
        let later = secret(&scratch, "later");
        let orphan = format!("sleep 1; {AS_NOBODY} cat {} 2>/dev/null", later.display());
        let sup = Supervisor::new(&scratch, "", &orphan);
        let json = scratch.path("r.json");
        let mut diag = diag_run_spawn(
            &json,
            &["--backend", backend, "--wait-tree"],
            &sup.command(),
        );
        wait_within(&mut diag, Duration::from_secs(30), backend);
        let r = report_at(&json);
        assert!(sup.denial_in(&r), "{backend}");
        assert!(
            r.failures.iter().any(|f| path_is(f, &later)),
            "{backend}: the daemon's later denial is missing: {:#?}",
            r.failures
        );
        assert!(r.warnings.iter().all(|w| !w.starts_with("left running")));
    }
}
