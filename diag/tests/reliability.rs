//! Faults, hostile strings and privilege (issue 10), end to end as root.

mod common;
use common::fixtures::{secret, AS_NOBODY};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

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
