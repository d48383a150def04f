//! What scripts and packagers use: exit statuses by finding strength, completions, man pages
//! and the catalog as JSON, all from the binary itself.

mod common;
use common::*;
use std::process::Command;

fn diag(args: &[&str]) -> std::process::Output {
    Command::new(diag_bin()).args(args).output().unwrap()
}

#[test]
fn fail_on_sets_the_exit_status_by_the_strongest_finding() {
    let fixture = workspace().join("diag/tests/fixtures/landlock-ptmx.dmesg");
    let log = fixture.to_str().unwrap();
    let status = |extra: &[&str]| {
        let mut args = vec!["analyze", "--quiet", "--audit"];
        args.extend(extra);
        args.push(log);
        diag(&args).status.code()
    };
    // The record is a direct Landlock denial of /dev/ptmx: cause pty-denied.
    assert_eq!(status(&[]), Some(0));
    for level in ["any", "cause", "direct"] {
        assert_eq!(status(&["--fail-on", level]), Some(1), "--fail-on {level}");
    }
    let bogus = diag(&["analyze", "--fail-on", "sometimes", log]);
    assert_eq!(bogus.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bogus.stderr).contains("possible values: any, cause, direct"));
}

#[test]
fn completions_for_every_shell_name_the_options() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = diag(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("fail-on") && script.contains("verify-fix"),
            "{shell}"
        );
    }
    let bash = diag(&["completions", "bash"]).stdout;
    let check = Command::new("bash")
        .args(["-n", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&bash)?;
            c.wait()
        })
        .unwrap();
    assert!(check.success(), "bash -n rejects the completion script");
}

#[test]
fn man_pages_have_examples_exit_status_and_environment() {
    let page = String::from_utf8(diag(&["man"]).stdout).unwrap();
    for section in [
        ".SH SYNOPSIS",
        ".SH EXAMPLES",
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
    ] {
        assert!(page.contains(section), "diag.1 lacks {section}");
    }
    assert!(page.contains("GITHUB_STEP_SUMMARY"));
    let run = String::from_utf8(diag(&["man", "run"]).stdout).unwrap();
    assert!(
        run.contains(".TH diag-run"),
        "{}",
        &run[..200.min(run.len())]
    );
    assert!(run.contains("verify\\-fix"));
    // A subcommand's page shows its own examples only.
    assert!(!run.contains("diag analyze \\-\\-audit"));
    let bad = diag(&["man", "frobnicate"]);
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);
}

#[test]
fn the_catalog_as_json_has_every_cause_of_the_markdown() {
    let json: serde_json::Value =
        serde_json::from_slice(&diag(&["catalog", "--json"]).stdout).unwrap();
    let ids: Vec<&str> = json["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.first(), Some(&"pty-denied"));
    assert_eq!(ids.last(), Some(&"unknown"));
    let markdown = String::from_utf8(diag(&["catalog", "--markdown"]).stdout).unwrap();
    for id in &ids {
        assert!(
            markdown.contains(&format!("`{id}`")),
            "{id} missing from the Markdown"
        );
    }
}
