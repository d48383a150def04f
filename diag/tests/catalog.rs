//! Issue 4's catalog reproductions that are not layer fixtures (those live in layers.rs), and
//! the link from causes.yaml's `reproduced_by:` to real tests.

mod common;
use common::fixtures::*;
use common::*;

/// Every `reproduced_by:` in the catalog names a test function in diag/tests.
#[test]
fn every_reproduced_by_names_an_existing_test() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");
    let mut sources = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    let mut named = 0;
    for cause in &diag::explain::catalog::builtin().causes {
        for case in &cause.cases {
            if let Some(test) = &case.reproduced_by {
                named += 1;
                assert!(
                    sources.contains(&format!("fn {test}()")),
                    "{}: reproduced_by {test} is not a test in diag/tests",
                    cause.id
                );
            }
        }
    }
    assert!(named >= 10, "only {named} catalog cases are reproduced");
}

fn seed_sandboxed(scratch: &Scratch, cmd: &[&str]) -> DiagRun {
    let sandbox = sandboxed(&example("openclaw-sandbox.yaml"), cmd);
    let argv: Vec<&str> = sandbox.iter().map(String::as_str).collect();
    diag_run(scratch, &[], &argv)
}

fn assert_ptmx_denied_by_landlock(r: &diag::report::Report, says: &str) {
    let (i, f) = failure(r, "openat /dev/ptmx EACCES", |f| {
        f.syscall == "openat"
            && f.errno == "EACCES"
            && path_is(f, std::path::Path::new("/dev/ptmx"))
    });
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("landlock", "direct")
    );
    let mi = message(r, says);
    let finding = assert_finding(r, i, "pty-denied", "landlock", Some(mi));
    assert!(
        finding.fix.contains("/dev/pts") && finding.fix.contains("/dev/ptmx"),
        "{}",
        finding.fix
    );
    assert!(r.findings[0].failures.contains(&i), "{:#?}", r.findings);
    assert_no_wrong_layer(r, &["landlock"]);
}

#[test]
fn catalog_script_pty_denied() {
    require_privileged!();
    let scratch = Scratch::new("script");
    let run = seed_sandboxed(&scratch, &["script", "-qec", "true", "/dev/null"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert_ptmx_denied_by_landlock(run.report(), "script: failed to create pseudo-terminal");
}

#[test]
fn catalog_python_openpty_denied() {
    require_privileged!();
    let scratch = Scratch::new("openpty");
    let run = seed_sandboxed(
        &scratch,
        &["/usr/bin/python3", "-c", "import os; os.openpty()"],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert_ptmx_denied_by_landlock(
        run.report(),
        "PermissionError: [Errno 13] Permission denied",
    );
}
