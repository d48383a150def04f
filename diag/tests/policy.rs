//! Policy-aware fixes (issue 7): `--policy`, `policy_patch`, `--verify-fix`, `policy check`.

mod common;
use common::*;
use std::process::Command;

#[test]
fn verify_fix_proves_the_seed_patch() {
    require_privileged!();
    let scratch = Scratch::new("verify");
    let tmux = TmuxSocket::new("verify");
    let policy = example("openclaw-sandbox.yaml");
    let mut args = vec!["--policy", policy.to_str().unwrap(), "--verify-fix", "--"];
    args.extend(tmux.new_session());
    let run = diag_json(&scratch, "run", &args);
    // diag's own status is the after run's.
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    let top = &r.findings[0];
    assert_eq!(
        (top.cause.as_str(), top.layer.as_str()),
        ("pty-denied", "landlock")
    );
    let v = r.verification.as_ref().expect("verification");
    assert_eq!(v.before.exit_status, Some(1));
    assert_eq!(v.after.exit_status, Some(0));
    let added: Vec<&str> = v
        .patch
        .lines()
        .filter(|l| l.starts_with("+ ") || l.starts_with("+    -"))
        .collect();
    assert!(
        added.iter().any(|l| l.ends_with("- /dev/pts")),
        "{}",
        v.patch
    );
    // On this host /dev/ptmx is a device node, so it is granted too.
    assert!(
        added.iter().any(|l| l.ends_with("- /dev/ptmx")),
        "{}",
        v.patch
    );
    assert!(v
        .before
        .failures
        .iter()
        .any(|f| f.path.as_ref().is_some_and(|p| p.lossy() == "/dev/ptmx")));
    assert!(
        !v.after
            .failures
            .iter()
            .any(|f| f.path.as_ref().is_some_and(|p| p.lossy() == "/dev/ptmx")),
        "{:#?}",
        v.after.failures
    );
    assert!(
        v.disappeared.iter().any(|d| d.contains("/dev/ptmx")),
        "{:?}",
        v.disappeared
    );
    assert_eq!(top.policy_patch.as_deref(), Some(v.patch.as_str()));
    assert!(run.stderr().contains("Verification of the suggested patch"));
}

/// The patched policy of `--verify-fix` never touches a shared directory: another local user
/// could read it there, or swap in their own before the second run reads it back.
#[test]
fn verify_fix_keeps_the_patched_policy_off_disk() {
    require_privileged!();
    let scratch = Scratch::new("verify-private");
    let tmpdir = scratch.path("tmp");
    std::fs::create_dir(&tmpdir).unwrap();
    let policy = example("openclaw-sandbox.yaml");
    // Each run lists diag's temporary directory from inside the sandbox (/tmp is granted), then
    // fails to allocate a pty, which the patch fixes.
    let probe = "import os; print(sorted(os.listdir(os.environ['TMPDIR']))); os.openpty()";
    let run = diag_json_with(
        &scratch,
        "run",
        &[
            "--quiet",
            "--policy",
            policy.to_str().unwrap(),
            "--verify-fix",
            "--",
            "/usr/bin/python3",
            "-c",
            probe,
        ],
        |cmd| {
            cmd.env("TMPDIR", &tmpdir);
        },
    );
    let v = run.report().verification.as_ref().expect("verification");
    assert_eq!(
        (v.before.exit_status, v.after.exit_status),
        (Some(1), Some(0)),
        "{}",
        run.stderr()
    );
    let listings = String::from_utf8_lossy(&run.output.stdout);
    assert_eq!(
        listings, "[]\n[]\n",
        "diag left files in $TMPDIR during the runs"
    );
    assert_eq!(std::fs::read_dir(&tmpdir).unwrap().count(), 0);
}

/// `--verify-fix` proves the top finding's own patch alone: with a second Landlock denial the
/// command still fails after it, and the report names the finding whose grants it also needs.
#[test]
fn verify_fix_applies_the_top_patch_alone_and_names_what_else_is_needed() {
    require_privileged!();
    let scratch = Scratch::new("verify-alone");
    // /var/tmp is outside the seed policy's grants (/tmp is inside).
    let blocked = format!("/var/tmp/diag-verify-alone-{}", std::process::id());
    let script = format!("/usr/bin/python3 -c 'import os; os.openpty()'; touch {blocked}");
    let policy = example("openclaw-sandbox.yaml");
    let args = [
        "--quiet",
        "--policy",
        policy.to_str().unwrap(),
        "--verify-fix",
        "--",
        "sh",
        "-c",
        &script,
    ];
    let run = diag_json(&scratch, "run", &args);
    let _ = std::fs::remove_file(&blocked);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.report();
    let top = &r.findings[0];
    assert_eq!(
        (top.cause.as_str(), top.layer.as_str()),
        ("pty-denied", "landlock")
    );
    let other = r
        .findings
        .iter()
        .find(|f| {
            f.policy_patch
                .as_deref()
                .is_some_and(|p| p.contains("/var/tmp"))
        })
        .unwrap_or_else(|| panic!("no finding asks for /var/tmp: {:#?}", r.findings));
    let v = r.verification.as_ref().expect("verification");
    assert_eq!(top.policy_patch.as_deref(), Some(v.patch.as_str()));
    assert!(!v.patch.contains("/var/tmp"), "{}", v.patch);
    assert_eq!(
        (v.before.exit_status, v.after.exit_status),
        (Some(1), Some(1))
    );
    assert!(
        v.disappeared.iter().any(|d| d.contains("/dev/ptmx")),
        "{v:#?}"
    );
    assert!(v.remained.iter().any(|d| d.contains(&blocked)), "{v:#?}");
    let needs = format!(
        "also needs the grants of: {} ({})",
        other.cause,
        other.layer.as_str()
    );
    assert!(
        r.warnings.iter().any(|w| w.contains(&needs)),
        "{needs:?} not in {:#?}",
        r.warnings
    );
}

#[test]
fn suggestions_from_a_policy_file_that_is_not_applied() {
    require_privileged!();
    let scratch = Scratch::new("suggest");
    let tmux = TmuxSocket::new("suggest");
    let policy = example("openclaw-sandbox.yaml");
    let cmd = sandboxed(&policy, &tmux.new_session());
    let mut args = vec![
        "--quiet",
        "--policy-file-for-suggestions",
        policy.to_str().unwrap(),
        "--",
    ];
    args.extend(cmd.iter().map(String::as_str));
    let run = diag_json(&scratch, "run", &args);
    assert_eq!(run.code(), 1);
    let patch = run.report().findings[0]
        .policy_patch
        .as_deref()
        .expect("policy_patch");
    assert!(patch.starts_with("--- a/openclaw-sandbox.yaml"), "{patch}");
    assert!(patch.contains("+    - /dev/pts"), "{patch}");
}

#[test]
fn run_as_user_runs_the_workload_as_that_user() {
    require_privileged!();
    let scratch = Scratch::new("runas");
    std::fs::set_permissions(
        &scratch.0,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let out_file = scratch.path("uid");
    let policy = scratch.path("p.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1\nfilesystem_policy:\n  read_only: [/usr, /lib, /lib64, /bin, /etc, /proc]\n  read_write: [{}]\nprocess:\n  run_as_user: nobody\n  nproc: 4096\n",
            scratch.0.display()
        ),
    )
    .unwrap();
    let script = format!(
        "id -u > {0}; id -g >> {0}; ulimit -u >> {0}; echo token=$SECRET_TOKEN >> {0}",
        out_file.display()
    );
    let shell = "bash";
    let run = diag_json_with(
        &scratch,
        "run",
        &[
            "--quiet",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            shell,
            "-c",
            &script,
        ],
        |cmd| {
            cmd.env("SECRET_TOKEN", "s3cret");
        },
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let seen = std::fs::read_to_string(&out_file).unwrap();
    // The user's environment, as with --user: not root's token.
    assert_eq!(
        seen.lines().collect::<Vec<_>>(),
        vec!["65534", "65534", "4096", "token="],
        "{seen}"
    );
}

#[test]
fn seccomp_blocklist_refuses_listed_syscalls() {
    require_privileged!();
    let scratch = Scratch::new("blocklist");
    let policy = scratch.path("p.yaml");
    std::fs::write(
        &policy,
        "version: 1\nseccomp:\n  blocklist: [mkdirat, mkdir]\n  errno: EPERM\n",
    )
    .unwrap();
    let dir = scratch.path("newdir");
    let run = diag_json(
        &scratch,
        "run",
        &[
            "--quiet",
            "--policy",
            policy.to_str().unwrap(),
            "--",
            "mkdir",
            dir.to_str().unwrap(),
        ],
    );
    assert_ne!(run.code(), 0);
    assert!(!dir.exists());
    let f = run
        .report()
        .failures
        .iter()
        .find(|f| f.syscall == "mkdir" || f.syscall == "mkdirat")
        .expect("mkdir failure");
    assert_eq!(
        (f.errno.as_str(), f.layer.as_str(), f.confidence.as_str()),
        ("EPERM", "seccomp", "direct")
    );
}

#[test]
fn bad_policies_get_one_line_and_exit_2() {
    require_privileged!();
    let scratch = Scratch::new("badpolicy");
    let cases = [
        ("unknown-key.yaml", "version: 1\nfilesystem_policy:\n  read_wrote: [/tmp]\n", "read_wrote"),
        ("malformed.yaml", "version: 1\nfilesystem_policy: [\n", "policy"),
        ("missing-path.yaml", "version: 1\nfilesystem_policy:\n  read_only: [/nonexistent/diag]\nlandlock:\n  compatibility: hard_requirement\n", "/nonexistent/diag"),
        // The YAML parser alone takes a minute to reach its recursion limit on this one.
        ("deep.yaml", &format!("version: 1\nnetwork_policies: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)), "100000 levels"),
    ];
    for (name, text, mention) in cases {
        let p = scratch.path(name);
        std::fs::write(&p, text).unwrap();
        let out = Command::new(diag_bin())
            .args(["run", "--policy", p.to_str().unwrap(), "--", "true"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains(mention), "{name}: {err}");
    }
    let out = Command::new(diag_bin())
        .args(["run", "--policy", scratch.0.to_str().unwrap(), "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("directory"));
    // A policy is read with a bound: /dev/zero never ends.
    let out = Command::new(diag_bin())
        .args(["run", "--policy", "/dev/zero", "--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("larger than"), "{err}");
}

#[test]
fn policy_check_warns_about_paths_the_permissive_policy_lacks() {
    let scratch = Scratch::new("pcheck");
    let base = scratch.path("base.yaml");
    let perm = scratch.path("permissive.yaml");
    std::fs::write(
        &base,
        "version: 1\nfilesystem_policy:\n  read_write: [/tmp, /dev/pts]\n",
    )
    .unwrap();
    std::fs::write(
        &perm,
        "version: 1\nfilesystem_policy:\n  read_write: [/tmp]\n",
    )
    .unwrap();
    let out = Command::new(diag_bin())
        .args([
            "policy",
            "check",
            base.to_str().unwrap(),
            perm.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("lacks /dev/pts") && text.contains("read_write"),
        "{text}"
    );
    let out = Command::new(diag_bin())
        .args([
            "policy",
            "check",
            base.to_str().unwrap(),
            base.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}
