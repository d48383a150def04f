//! Issue 16: the line that matters is often a program's last. A Python traceback ends with the
//! exception; a build log or a package manager prints its error after pages of progress. A
//! process that writes past its message budget still has its newest lines captured (the kernel
//! keeps them and sends them when it exits), and the finding is linked to that last line.

mod common;
use common::fixtures::*;
use common::*;

/// 200 progress lines on stderr, then a read of a file this user may not read: Python's
/// traceback (`PermissionError: [Errno 13] ...`) comes last, far past the first lines.
const LONG_LOG_THEN_ERROR: &str = r#"
import sys
for i in range(200):
    print(f"progress: step {i} of 200 done", file=sys.stderr, flush=True)
open(sys.argv[1]).read()
"#;

fn the_error_line_is_explained(backend: &str) {
    require_privileged!();
    let scratch = Scratch::new(&format!("messages-tail-{backend}"));
    let secret = scratch.path("secret");
    std::fs::write(&secret, "x").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let script = scratch.path("long_log.py");
    std::fs::write(&script, LONG_LOG_THEN_ERROR).unwrap();
    // The scratch dir must be searchable by the unprivileged user.
    std::fs::set_permissions(
        &scratch.0,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let secret_arg = secret.display().to_string();
    let script_arg = script.display().to_string();
    let run = diag_run(
        &scratch,
        &["--backend", backend],
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            &script_arg,
            &secret_arg,
        ],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.report();
    let (i, f) = failure(r, "open EACCES of the secret", |f| {
        f.errno == "EACCES" && path_is(f, &secret)
    });
    assert_eq!(f.layer.as_str(), "dac", "{f:#?}");
    let last = r
        .messages
        .iter()
        .position(|m| m.text.lossy().starts_with("PermissionError: [Errno 13]"))
        .unwrap_or_else(|| panic!("the traceback's last line is captured: {:#?}", r.messages));
    assert_eq!(r.messages[last].pid, f.pid, "spoken by the failing process");
    assert!(
        r.messages
            .iter()
            .any(|m| m.text.lossy().contains("step 0 of")),
        "the head is kept too"
    );
    let finding = r
        .findings
        .iter()
        .find(|x| x.failures.contains(&i))
        .unwrap_or_else(|| panic!("a finding names the failure: {:#?}", r.findings));
    assert!(
        finding.explains.contains(&last),
        "the finding explains the error line: {finding:#?}"
    );
    assert_eq!(r.findings[0].fingerprint, finding.fingerprint, "and leads");
}

#[test]
fn the_last_line_of_a_long_log_is_explained_under_ebpf() {
    the_error_line_is_explained("ebpf");
}

#[test]
fn the_last_line_of_a_long_log_is_explained_under_ptrace() {
    the_error_line_is_explained("ptrace");
}
