//! Faults, hostile strings and privilege (issue 10), end to end as root.

mod common;
use common::fixtures::{secret, AS_NOBODY};
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

fn has_failure_on(r: &diag::report::Report, path: &std::path::Path) -> bool {
    r.failures.iter().any(|f| {
        f.path
            .as_ref()
            .is_some_and(|p| p.lossy() == path.display().to_string())
    })
}

#[test]
fn follows_2000_short_lived_children_to_the_last_one() {
    require_privileged!();
    let scratch = Scratch::new("forks");
    let s = secret(&scratch, "secret");
    let script = format!(
        "i=0; while [ $i -lt 2000 ]; do /bin/true; i=$((i+1)); done; {AS_NOBODY} cat {}",
        s.display()
    );
    let run = diag_json(&scratch, "run", &["--quiet", "--", "sh", "-c", &script]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.report();
    assert!(
        r.stats.process_forks >= 2001,
        "forks seen: {}",
        r.stats.process_forks
    );
    assert_eq!(r.lost_events, 0);
    assert!(has_failure_on(r, &s), "the last child's failure is missing");
}

#[test]
fn run_waits_for_the_root_and_wait_tree_for_the_whole_tree() {
    require_privileged!();
    let scratch = Scratch::new("daemon");
    let s = secret(&scratch, "secret");
    let script = format!(
        "(sleep 1; {AS_NOBODY} cat {}) >/dev/null 2>&1 & exit 0",
        s.display()
    );
    let root_only = diag_json(&scratch, "run", &["--quiet", "--", "sh", "-c", &script]);
    assert_eq!(root_only.code(), 0);
    assert!(
        !has_failure_on(root_only.report(), &s),
        "default run returns when the root exits"
    );
    let whole = diag_json(
        &scratch,
        "run",
        &["--quiet", "--wait-tree", "--", "sh", "-c", &script],
    );
    assert_eq!(whole.code(), 0);
    assert!(
        has_failure_on(whole.report(), &s),
        "--wait-tree follows the daemonized child"
    );
}

#[test]
fn a_command_that_closes_stdout_and_stderr_is_still_diagnosed() {
    require_privileged!();
    let scratch = Scratch::new("closed");
    let s = secret(&scratch, "secret");
    // cat would stop at the closed stdout before opening the file; a redirection opens it first.
    let script = format!("exec >&- 2>&-; {AS_NOBODY} sh -c 'exec 3< {}'", s.display());
    let run = diag_json(&scratch, "run", &["--", "sh", "-c", &script]);
    assert_eq!(run.code(), 2, "dash exits 2 when a redirection fails");
    assert!(has_failure_on(run.report(), &s));
    assert!(
        run.stderr().starts_with("diag: "),
        "diag's own stderr still works: {}",
        run.stderr()
    );
}

#[test]
fn ring_buffer_overflow_is_counted_and_shown() {
    require_privileged!();
    let scratch = Scratch::new("overflow");
    let s = secret(&scratch, "secret");
    // Distinct paths (under a directory nobody may search) each need a record of their own: a
    // 4 KiB ring overflows. The secret, denied as often, is counted in the kernel after its
    // first record, so none of its calls may go missing.
    let locked = scratch.path("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let burst = format!(
        "import os\nfor i in range(100000):\n    for p in ({:?}, {:?} + str(i)):\n        try:\n            os.close(os.open(p, os.O_RDONLY))\n        except PermissionError:\n            pass\n",
        s.display().to_string(),
        format!("{}/", locked.display()),
    );
    let cmd = format!("{AS_NOBODY} /usr/bin/python3 -c '{burst}'");
    let run = diag_json(
        &scratch,
        "run",
        &["--ring-buffer-kib", "4", "--", "sh", "-c", &cmd],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    assert!(
        r.lost_events > 0,
        "a 4 KiB ring buffer should overflow under 100k distinct failures"
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("lost")),
        "{:?}",
        r.warnings
    );
    assert!(
        run.stderr().contains("warning") && run.stderr().contains("lost"),
        "{}",
        run.stderr()
    );
    let f = r
        .failures
        .iter()
        .find(|f| {
            f.path
                .as_ref()
                .is_some_and(|p| p.lossy() == s.display().to_string())
        })
        .unwrap();
    assert_eq!(f.count, 100_000, "repeats are counted, never lost");
}

/// Nested directories under `scratch` making a path of at least `len` bytes, ending in a
/// root-only directory: opening anything in it as nobody is EACCES. Returns it with a `/`.
fn long_locked_dir(scratch: &Scratch, len: usize, last: &str) -> String {
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut dir = scratch.0.clone();
    while dir.as_os_str().len() + last.len() + 1 < len {
        dir.push("d".repeat(100));
    }
    dir.push(last);
    let locked = dir.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    format!("{}/", locked.display())
}

/// Opens `argv[1] + "kept-N"` for N < `argv[2]` from memory it keeps (diag can read each back
/// whole), then as many `gone-N` through one buffer rewritten right after each call (by the
/// time diag reads it, it holds something else), then waits for diag to catch up.
const LONG_PATHS: &str = r#"
import ctypes, os, sys, time
pre, n = sys.argv[1].encode(), int(sys.argv[2])
libc = ctypes.CDLL(None)
kept = [pre + b"kept-%05d" % i for i in range(n)]
for p in kept:
    try:
        os.close(os.open(p, os.O_RDONLY))
    except PermissionError:
        pass
buf = ctypes.create_string_buffer(len(pre) + 16)
for i in range(n):
    buf.value = pre + b"gone-%05d" % i
    libc.open(buf, os.O_RDONLY)
    buf.value = b"x"
time.sleep(3)
"#;

/// [`LONG_PATHS`] in a file nobody may change but everyone may read.
fn long_paths_script(scratch: &Scratch) -> std::path::PathBuf {
    let script = scratch.path("long.py");
    std::fs::write(&script, LONG_PATHS).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    script
}

#[test]
fn distinct_long_paths_stay_distinct_and_are_read_back_whole_or_marked_cut() {
    require_privileged!();
    let scratch = Scratch::new("long-paths");
    let dir = long_locked_dir(&scratch, 300, "x");
    let script = long_paths_script(&scratch);
    let cmd = format!(
        "{AS_NOBODY} /usr/bin/python3 {} {dir} 4000",
        script.display()
    );
    let run = diag_json(&scratch, "run", &["--", "sh", "-c", &cmd]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    let head = &dir.as_bytes()[..255];
    let ours: Vec<_> = r
        .failures
        .iter()
        .filter(|f| {
            f.path
                .as_ref()
                .is_some_and(|p| p.as_bytes().starts_with(head))
        })
        .collect();
    // 8000 distinct paths: one entry each up to the report's bound, the rest counted.
    assert!(ours.len() > 4000, "{} entries", ours.len());
    assert!(
        ours.iter().all(|f| f.count == 1),
        "distinct paths were folded"
    );
    assert_eq!(
        ours.len() as u64 + r.stats.failures_dropped,
        8000,
        "every call is an entry or counted"
    );
    let (cut, whole): (Vec<&&diag::report::model::FailureEntry>, Vec<_>) =
        ours.iter().partition(|f| f.path_truncated);
    for f in &whole {
        let p = f.path.as_ref().unwrap().lossy();
        let name = p.strip_prefix(&dir).unwrap_or_else(|| panic!("{p}"));
        assert!(
            (name.starts_with("kept-") || name.starts_with("gone-")) && name.len() == 10,
            "{p}"
        );
    }
    let mut names: Vec<_> = whole.iter().map(|f| f.path.as_ref().unwrap()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), whole.len(), "a whole path named twice");
    assert!(
        whole
            .iter()
            .any(|f| f.path.as_ref().unwrap().lossy().contains("/kept-")),
        "no path kept in memory was read back"
    );
    assert!(!cut.is_empty(), "no rewritten buffer left its path cut");
    for f in &cut {
        assert_eq!(f.path.as_ref().unwrap().as_bytes(), head);
    }
    assert!(run.stderr().contains("…"), "the human report marks the cut");
}

#[test]
fn a_secret_cut_by_the_kernel_does_not_leak_through_redact() {
    require_privileged!();
    let scratch = Scratch::new("cut-secret");
    // "hunter2" straddles byte 255, where the kernel cuts: "hunt" before, "er2" after.
    let filler = 252 - scratch.0.as_os_str().len() - 2;
    let last = format!("{}/hunter2-{}", "d".repeat(filler), "s".repeat(60));
    let dir = long_locked_dir(&scratch, 0, &last);
    let at = dir.find("hunter2").unwrap();
    assert!(at < 255 && at + 7 > 255, "secret at {at}");
    let script = long_paths_script(&scratch);
    let cmd = format!("{AS_NOBODY} /usr/bin/python3 {} {dir} 3", script.display());
    let run = diag_json(
        &scratch,
        "run",
        &["--redact", "hunter2", "--", "sh", "-c", &cmd],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    let json = serde_json::to_string(r).unwrap();
    assert!(r.failures.iter().any(|f| f.path_truncated), "{json}");
    for (what, text) in [("json", json.as_str()), ("stderr", &run.stderr())] {
        assert!(
            !text.contains("/hunt"),
            "{what} leaks the secret's head: {text}"
        );
        assert!(text.contains("[redacted]"), "{what}: {text}");
    }
}

#[test]
fn hostile_paths_comm_and_output_never_reach_the_terminal_raw() {
    require_privileged!();
    let scratch = Scratch::new("hostile");
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut name = scratch.0.as_os_str().as_encoded_bytes().to_vec();
    name.extend_from_slice(b"/\x1b[2J\nevil\xff");
    let path = std::path::PathBuf::from(
        <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&name),
    );
    std::fs::write(&path, "x").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let script = format!(
        "import ctypes, os, sys\nctypes.CDLL(None).prctl(15, b'\\x1b[31mevil', 0, 0, 0)\nsys.stderr.write('\\x1b]0;pwned\\x07 \\x1b[2J gone\\n'); sys.stderr.flush()\ntry:\n    os.open(bytes.fromhex('{}'), os.O_RDONLY)\nexcept PermissionError:\n    pass\n",
        name.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let py = scratch.path("hostile.py");
    std::fs::write(&py, script).unwrap();
    let run = diag_json(
        &scratch,
        "run",
        &[
            "--",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            py.to_str().unwrap(),
        ],
    );
    let err = run.stderr();
    // The program's own stderr passes through untouched (that is its output, not diag's): check
    // only diag's report, which starts at its first "diag:" line.
    let report_text = &err[err.find("diag:").expect("a report")..];
    assert!(
        !report_text.contains('\x1b'),
        "raw ESC in diag's terminal report:\n{report_text:?}"
    );
    assert!(
        !report_text.contains('\x07'),
        "raw BEL in diag's terminal report"
    );
    let r = run.report();
    let f = r
        .failures
        .iter()
        .find(|f| f.path_hex.is_some())
        .expect("a failure with the raw path in hex");
    let hex = f.path_hex.as_deref().unwrap();
    let raw: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(raw, name, "the hex field keeps the exact bytes");
    assert!(
        f.comm.lossy().contains("\u{1b}[31mevil"),
        "JSON keeps the comm as it was: {:?}",
        f.comm
    );
    assert!(r.messages.iter().any(|m| m.text.lossy().contains("pwned")));
    // The JSON round-trips.
    let again: diag::report::Report =
        serde_json::from_str(&serde_json::to_string(r).unwrap()).unwrap();
    assert_eq!(again.failures.len(), r.failures.len());
}

#[test]
fn report_files_are_0600_and_never_written_through_a_symlink() {
    require_privileged!();
    let scratch = Scratch::new("files");
    let report_true_into = |path: &std::path::Path| {
        Command::new(diag_bin())
            .args([
                "run",
                "--quiet",
                "--json",
                path.to_str().unwrap(),
                "--",
                "true",
            ])
            .output()
            .unwrap()
    };
    let json = scratch.path("r.json");
    assert!(report_true_into(&json).status.success());
    assert_eq!(
        std::fs::metadata(&json).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let target = scratch.path("target");
    std::fs::write(&target, "keep").unwrap();
    let link = scratch.path("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = report_true_into(&link);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
}

/// Another user pre-creates a world-writable file at the report's path and keeps it open: the
/// report goes to a new private file renamed over it, so the planted file receives nothing.
#[test]
fn a_planted_report_file_receives_nothing() {
    require_privileged!();
    let scratch = Scratch::new("planted");
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let json = scratch.path("r.json");
    std::fs::write(&json, "planted").unwrap();
    std::fs::set_permissions(&json, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&json, Some(65534), Some(65534)).unwrap();
    let mut held = std::fs::File::open(&json).unwrap();
    let out = Command::new(diag_bin())
        .args([
            "run",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = String::new();
    std::io::Read::read_to_string(&mut held, &mut seen).unwrap();
    assert_eq!(
        seen, "planted",
        "the report went into the other user's file"
    );
    let meta = std::fs::metadata(&json).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
    assert!(std::fs::read_to_string(&json)
        .unwrap()
        .contains("diag.report/v1"));
}

/// In CI under sudo the reports belong to the runner's user, so its next steps can read them.
#[test]
fn ci_reports_belong_to_the_sudo_user() {
    require_privileged!();
    let scratch = Scratch::new("ci-owner");
    let summary = scratch.path("summary.md");
    std::fs::write(&summary, "").unwrap();
    let out = Command::new(diag_bin())
        .args(["run", "--quiet", "--ci", "--", "true"])
        .env("RUNNER_TEMP", &scratch.0)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = std::fs::metadata(scratch.path("diag-report.json")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (65534, 65534, 0o600)
    );
    assert!(std::fs::read_to_string(&summary).unwrap().contains("diag"));
}

/// A report file that cannot be written is said on stderr; diag's status stays the command's.
#[test]
fn a_report_write_failure_keeps_the_commands_status() {
    require_privileged!();
    let scratch = Scratch::new("write-fails");
    let json = scratch.path("r.json");
    // The directory goes away while the command runs.
    let gone = scratch.0.to_str().unwrap().to_string();
    let out = Command::new(diag_bin())
        .args(["run", "--quiet", "--json", json.to_str().unwrap(), "--"])
        .args(["sh", "-c", &format!("rm -rf '{gone}'; exit 3")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("diag: error: writing the report"), "{err}");
}

#[test]
fn user_gets_the_users_identity_groups_and_home_and_sudo_is_noted() {
    require_privileged!();
    let scratch = Scratch::new("user");
    let json = scratch.path("r.json");
    let out = Command::new(diag_bin())
        .args([
            "run",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
            "--user",
            "nobody",
            "--",
            "sh",
            "-c",
            "id -u; id -G; echo $HOME",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "65534");
    assert!(
        !lines[1].split(' ').any(|g| g == "0"),
        "root's groups leaked: {}",
        lines[1]
    );
    assert_eq!(lines[2], "/nonexistent");
    // Under sudo without --user, the report says the workload ran as root.
    let out = Command::new(diag_bin())
        .env("SUDO_USER", "alice")
        .args([
            "run",
            "--quiet",
            "--json",
            json.to_str().unwrap(),
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let r: diag::report::Report =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("ran as root") && w.contains("--user alice")),
        "{:?}",
        r.warnings
    );
}

/// bpffs mounted at /sys/fs/bpf for the test when the host has none, unmounted after: without
/// it, "nothing new is pinned" would hold whatever diag did.
struct Bpffs {
    mounted_here: bool,
}

impl Bpffs {
    fn ensure() -> Self {
        let mounted = std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .any(|l| {
                l.split(' ').nth(1) == Some("/sys/fs/bpf") && l.split(' ').nth(2) == Some("bpf")
            });
        if mounted {
            return Bpffs {
                mounted_here: false,
            };
        }
        let ok = Command::new("mount")
            .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot mount bpffs at /sys/fs/bpf");
        Bpffs { mounted_here: true }
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        if self.mounted_here {
            let _ = Command::new("umount").arg("/sys/fs/bpf").status();
        }
    }
}

#[test]
fn no_maps_are_pinned() {
    require_privileged!();
    let _bpffs = Bpffs::ensure();
    let pinned = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir("/sys/fs/bpf")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = pinned();
    let scratch = Scratch::new("pins");
    let run = diag_json(&scratch, "run", &["--quiet", "--", "true"]);
    assert_eq!(run.code(), 0);
    assert_eq!(pinned(), before, "diag pinned something in bpffs");
}

#[test]
fn message_capture_is_rate_bounded_but_refills() {
    require_privileged!();
    let scratch = Scratch::new("msgrate");
    let script = "i=0; while [ $i -lt 200 ]; do echo early $i; i=$((i+1)); done; sleep 1; echo late-message >&2";
    let out = std::process::Command::new(diag_bin())
        .args([
            "run",
            "--quiet",
            "--json",
            scratch.path("r.json").to_str().unwrap(),
            "--",
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let r: diag::report::Report =
        serde_json::from_str(&std::fs::read_to_string(scratch.path("r.json")).unwrap()).unwrap();
    assert!(
        r.stats.messages_dropped > 0,
        "200 lines in a burst must exceed the budget"
    );
    assert!(r.messages.len() < 200);
    assert!(
        r.messages.iter().any(|m| m.text.lossy() == "late-message"),
        "the budget refills over time"
    );
}

/// The unprivileged user the `--user` isolation tests run their workload as.
const WORKLOAD_USER: &str = "nobody";

/// Whether an unprivileged process may still push input into its own terminal (TIOCSTI).
fn tiocsti_allowed() -> bool {
    std::fs::read_to_string("/proc/sys/dev/tty/legacy_tiocsti").map_or(true, |v| v.trim() == "1")
}

/// A pty for a test's terminal session; close-on-exec, so tests running alongside do not
/// inherit it.
fn test_pty() -> nix::pty::OpenptyResult {
    use std::os::fd::AsRawFd;
    let pty = nix::pty::openpty(None, None).unwrap();
    for fd in [&pty.master, &pty.slave] {
        let cloexec = nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC);
        nix::fcntl::fcntl(fd.as_raw_fd(), cloexec).unwrap();
    }
    pty
}

/// Reads what is waiting on a pty master (non-blocking) without waiting for more.
fn read_pending(master: &std::os::fd::OwnedFd) -> String {
    use std::os::fd::AsRawFd;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(fds.as_mut_ptr(), 1, 200) } != 1 {
            break;
        }
        match nix::unistd::read(master.as_raw_fd(), &mut buf) {
            Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits for `child`, killing it after `limit`.
fn wait_at_most(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            return child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn user_workload_cannot_type_into_roots_terminal() {
    require_privileged!();
    for backend in ["ebpf", "ptrace"] {
        let scratch = Scratch::new(&format!("tiocsti-{backend}"));
        let json = scratch.path("r.json");
        let json = json.to_str().unwrap();
        let args = ["run", "--quiet", "--backend", backend, "--json", json];
        assert_no_terminal_injection(&scratch, &args, &["--user", WORKLOAD_USER]);
        // The workload's writes to its pty are still captured as its messages.
        let r: diag::report::Report =
            serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        assert!(
            r.messages
                .iter()
                .any(|m| m.fd == 1 && m.text.lossy().starts_with("RESULT ")),
            "{backend}: {:#?}",
            r.messages
        );
    }
    // `diag sandbox` under a policy's run_as_user isolates its workload the same way.
    let scratch = Scratch::new("tiocsti-sandbox");
    let policy = scratch.path("p.yaml");
    std::fs::write(
        &policy,
        format!("version: 1\nprocess:\n  run_as_user: {WORKLOAD_USER}\n"),
    )
    .unwrap();
    let args = ["sandbox", "--policy", policy.to_str().unwrap()];
    assert_no_terminal_injection(&scratch, &args, &[]);
}

/// Runs `diag <args> <user_args> -- python3 ...` in a root terminal session of its own; the
/// workload pushes a command into its terminal's input queue (TIOCSTI), then a root shell reads
/// that terminal after diag: the command must not run, and the workload's session and
/// controlling terminal must not be diag's.
fn assert_no_terminal_injection(scratch: &Scratch, args: &[&str], user_args: &[&str]) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pwned = scratch.path("pwned");
    let inject = format!(
        "import fcntl, os, termios\n\
         try:\n    [fcntl.ioctl(0, termios.TIOCSTI, bytes([c])) for c in b'id > {}\\n']\n    r = 'injected'\n\
         except OSError as e:\n    r = 'refused:' + e.strerror\n\
         stat = open('/proc/self/stat').read().rsplit(') ', 1)[1].split()\n\
         print('RESULT', r, 'sid', os.getsid(0), 'tty_nr', stat[4], 'isatty', os.isatty(1), flush=True)\n\
         raise SystemExit(3)\n",
        pwned.display()
    );
    let pty = test_pty();
    let outer_tty = std::fs::metadata(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
        .unwrap()
        .rdev();
    let argv: Vec<&str> = args
        .iter()
        .chain(user_args)
        .copied()
        .chain(["--", "python3", "-c", &inject])
        .collect();
    let mut diag = diag_on_terminal(&pty, &argv);
    let diag_sid = diag.id().to_string();
    let status = wait_at_most(&mut diag, Duration::from_secs(60));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut diag.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(3), "{args:?}: {stderr}");
    let shown = read_pending(&pty.master);
    let result = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("{args:?}: no RESULT line on the terminal: {shown:?}"))
        .to_string();
    // Root's shell takes over the terminal after diag: only what root types reaches it.
    nix::unistd::write(&pty.master, b"exit\n").unwrap();
    let mut shell = Command::new("sh")
        .current_dir(&scratch.0)
        .stdin(pty.slave.try_clone().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_at_most(&mut shell, Duration::from_secs(10));
    assert!(
        !pwned.exists(),
        "{args:?}: root's shell ran the workload's injected command"
    );
    let fields: Vec<&str> = result.split(' ').collect();
    // A session of its own, with a terminal of its own, still a terminal on stdout.
    assert_ne!(fields[2], diag_sid, "{args:?}: {result}");
    assert_ne!(fields[4], "0", "{args:?}: {result}");
    assert_ne!(fields[4], outer_tty.to_string(), "{args:?}: {result}");
    assert_eq!(fields[6], "True", "{args:?}: {result}");
    if tiocsti_allowed() {
        assert_eq!(
            fields[0], "injected",
            "the attempt itself must work: {result}"
        );
    } else {
        eprintln!("note: dev.tty.legacy_tiocsti=0: the kernel refuses the injection; checked the session isolation only");
    }
}

#[test]
fn user_workload_gets_no_fd_of_diags_caller_but_a_root_run_keeps_them() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    require_privileged!();
    let scratch = Scratch::new("fds");
    let readable = secret(&scratch, "shadow");
    std::fs::write(&readable, "root-secret\n").unwrap();
    let writable = secret(&scratch, "config");
    let read_fd = std::fs::File::open(&readable).unwrap();
    let write_fd = std::fs::OpenOptions::new()
        .append(true)
        .open(&writable)
        .unwrap();
    // Moved above 5 and 6 first, so neither dup2 below lands on the other's source.
    let above =
        |fd: i32| nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100)).unwrap();
    let (r, w) = (above(read_fd.as_raw_fd()), above(write_fd.as_raw_fd()));
    // Uses fd 5 (read) and 6 (write) when open, and says which are.
    let script =
        "for fd in 5 6; do [ -e /proc/$$/fd/$fd ] && echo open $fd; done; cat <&5; echo pwned >&6";
    let run = |user: &[&str]| {
        let mut cmd = diag_command();
        cmd.args(["run", "--quiet"])
            .args(user)
            .args(["--", "sh", "-c", script]);
        // SAFETY: dup2 is async-signal-safe; the targets are not CLOEXEC.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(r, 5) < 0 || libc::dup2(w, 6) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let seen = run(&["--user", WORKLOAD_USER]);
    assert!(!seen.contains("open"), "{seen}");
    assert!(!seen.contains("root-secret"), "{seen}");
    assert_eq!(std::fs::read_to_string(&writable).unwrap(), "x");
    // A root workload could open the files itself: it keeps what its caller passed (a make
    // jobserver's fds, a CI harness's pipes).
    let seen = run(&[]);
    assert!(seen.contains("open 5\nopen 6\nroot-secret"), "{seen}");
    assert_eq!(std::fs::read_to_string(&writable).unwrap(), "xpwned\n");
    for fd in [r, w] {
        nix::unistd::close(fd).unwrap();
    }
}

/// `env` output as a map.
fn environment_of(out: &[u8]) -> std::collections::BTreeMap<String, String> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn user_workload_gets_the_users_environment_not_roots() {
    require_privileged!();
    let scratch = Scratch::new("env");
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    // An `env` of root's that a search of root's PATH would find first.
    let roots_bin = scratch.path("bin");
    std::fs::create_dir(&roots_bin).unwrap();
    std::fs::write(
        roots_bin.join("env"),
        "#!/bin/sh\necho found-in-roots-path\n",
    )
    .unwrap();
    std::fs::set_permissions(
        roots_bin.join("env"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let roots_path = format!("{}:{}", roots_bin.display(), std::env::var("PATH").unwrap());
    let run = |extra: &[&str]| {
        let out = diag_command()
            .env("SECRET_TOKEN", "s3cret")
            .env("PATH", &roots_path)
            .env("TERM", "xterm-test")
            .args(["run", "--quiet", "--user", WORKLOAD_USER])
            .args(extra)
            .args(["--", "env"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("found-in-roots-path"),
            "the command was looked up in root's PATH"
        );
        environment_of(&out.stdout)
    };
    let user = nix::unistd::User::from_name(WORKLOAD_USER)
        .unwrap()
        .unwrap();
    let env = run(&[]);
    let expect = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(expect("SECRET_TOKEN"), None, "{env:?}");
    assert_eq!(
        expect("PATH"),
        Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    );
    assert_eq!(expect("HOME"), user.dir.to_str());
    assert_eq!(expect("USER"), Some(WORKLOAD_USER));
    assert_eq!(expect("LOGNAME"), Some(WORKLOAD_USER));
    assert_eq!(expect("SHELL"), user.shell.to_str());
    assert_eq!(expect("TERM"), Some("xterm-test"));
    assert!(
        !env.values().any(|v| v.contains("/root")),
        "root's environment leaked: {env:?}"
    );
    let env = run(&["--preserve-env", "SECRET_TOKEN,NOT_SET"]);
    assert_eq!(env.get("SECRET_TOKEN").map(String::as_str), Some("s3cret"));
    assert!(!env.contains_key("NOT_SET"));
}

/// Reads the pty master until `needle` has been shown (or `limit` passes); returns all of it.
fn read_until(master: &std::os::fd::OwnedFd, needle: &str, limit: Duration) -> String {
    let start = std::time::Instant::now();
    let mut shown = String::new();
    while !shown.contains(needle) && start.elapsed() < limit {
        shown.push_str(&read_pending(master));
    }
    shown
}

/// diag with `pty`'s slave as its controlling terminal and stdin/stdout (stderr apart), as when
/// root runs it from an interactive shell.
fn diag_on_terminal(pty: &nix::pty::OpenptyResult, args: &[&str]) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = diag_command();
    cmd.args(args)
        .stdin(pty.slave.try_clone().unwrap())
        .stdout(pty.slave.try_clone().unwrap())
        .stderr(Stdio::piped());
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

fn set_window(master: &std::os::fd::OwnedFd, rows: u16, cols: u16) {
    use std::os::fd::AsRawFd;
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize.
    assert_eq!(
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) },
        0
    );
}

#[test]
fn user_workload_terminal_is_relayed_and_diags_terminal_restored() {
    require_privileged!();
    let pty = test_pty();
    set_window(&pty.master, 33, 101);
    let modes = |pty: &nix::pty::OpenptyResult| {
        let t = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
        (t.input_flags, t.output_flags, t.local_flags)
    };
    let before = modes(&pty);
    let shell_as_user = |script: &str| {
        diag_on_terminal(
            &pty,
            &[
                "run",
                "--quiet",
                "--user",
                WORKLOAD_USER,
                "--",
                "sh",
                "-c",
                script,
            ],
        )
    };
    let script = "stty size; read line; echo got:$line; stty size; exit 4";
    let mut diag = shell_as_user(script);
    // The workload's pty starts with diag's window size.
    let shown = read_until(&pty.master, "33 101", Duration::from_secs(30));
    assert!(shown.contains("33 101"), "{shown:?}");
    assert_ne!(
        modes(&pty),
        before,
        "diag's terminal is not raw while it relays"
    );
    // A resize reaches it (SIGWINCH), and so do keystrokes (Enter is a carriage return).
    set_window(&pty.master, 40, 120);
    std::thread::sleep(Duration::from_millis(300));
    nix::unistd::write(&pty.master, b"hello\r").unwrap();
    let shown = read_until(&pty.master, "40 120", Duration::from_secs(30));
    assert_eq!(
        wait_at_most(&mut diag, Duration::from_secs(30)).code(),
        Some(4)
    );
    assert!(shown.contains("got:hello"), "{shown:?}");
    assert!(shown.contains("40 120"), "{shown:?}");
    assert_eq!(modes(&pty), before, "diag left its terminal changed");
    // Interrupted mid-run, diag still gives its terminal its modes back.
    let mut diag = shell_as_user("echo ready; sleep 30");
    let shown = read_until(&pty.master, "ready", Duration::from_secs(30));
    assert!(shown.contains("ready"), "{shown:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(diag.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_at_most(&mut diag, Duration::from_secs(30));
    assert!(
        status.code().is_some(),
        "diag did not exit on its own: {status:?}"
    );
    assert_eq!(
        modes(&pty),
        before,
        "an interrupted diag left its terminal changed"
    );
    // A workload that lets go of its pty runs on: its session is not hung up (SIGHUP, 129).
    let script = "exec </dev/null >/dev/null 2>&1; sleep 1; exit 6";
    let mut diag = shell_as_user(script);
    assert_eq!(
        wait_at_most(&mut diag, Duration::from_secs(30)).code(),
        Some(6)
    );
    // A workload that lets go of its pty but runs on: diag's terminal is no longer raw, so
    // Ctrl-C reaches diag (which ends the run) instead of nothing.
    let script = "echo ready; exec </dev/null >/dev/null 2>&1; sleep 30";
    let mut diag = shell_as_user(script);
    let start = std::time::Instant::now();
    let shown = read_until(&pty.master, "ready", Duration::from_secs(30));
    assert!(shown.contains("ready"), "{shown:?}");
    while modes(&pty) != before && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::unistd::write(&pty.master, b"\x03").unwrap();
    let status = wait_at_most(&mut diag, Duration::from_secs(10));
    assert!(
        status.code().is_some() && start.elapsed() < Duration::from_secs(25),
        "Ctrl-C did not end diag: {status:?}"
    );
}
