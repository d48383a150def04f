//! JSON lines for log pipelines (issue 19 item 6): `attach --follow` writes each failure and
//! finding while the workload still runs, then a summary line; `run` keeps its stdout for the
//! command.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn wait_for(gate: &std::path::Path) -> String {
    format!("while [ ! -e {} ]; do sleep 0.05; done", gate.display())
}

#[test]
fn a_consumer_reads_attach_follow_lines_while_the_workload_runs() {
    require_privileged!();
    let scratch = Scratch::new("follow");
    let (go, end) = (scratch.path("go"), scratch.path("end"));
    let script = format!(
        "{}; setpriv --reuid 65534 --regid 65534 --clear-groups cat /etc/shadow; {}",
        wait_for(&go),
        wait_for(&end)
    );
    let workload = spawn_detached(&["sh".into(), "-c".into(), script]);
    let pid = workload.0.id().to_string();
    let mut diag = Command::new(diag_bin())
        .args(["attach", "--follow", "--pid", &pid])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(diag.stderr.take().unwrap());
    let mut attached = String::new();
    err.read_line(&mut attached).unwrap();
    assert!(attached.starts_with("diag: attached to"), "{attached}");
    touch(&go);
    let mut lines = BufReader::new(diag.stdout.take().unwrap()).lines();
    let mut next = || -> serde_json::Value {
        let line = lines.next().expect("a line").unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    // The failure and its finding arrive while the workload still waits for `end`; failures
    // labelled noise (setpriv's PATH search for cat, the loader's lookups) may come between.
    let mut failures = vec![];
    let finding = loop {
        let line = next();
        match line["type"].as_str() {
            Some("failure") if line["failure"]["noise"].is_null() => failures.push(line),
            Some("failure") => {}
            _ => break line,
        }
    };
    assert_eq!(failures.len(), 1, "{failures:#?}");
    let f = &failures[0]["failure"];
    assert_eq!(
        (
            &f["syscall"],
            &f["errno"],
            &f["path"],
            &f["layer"],
            &f["uid"]
        ),
        (
            &"openat".into(),
            &"EACCES".into(),
            &"/etc/shadow".into(),
            &"dac".into(),
            &65534.into()
        ),
        "{f}"
    );
    assert_eq!(finding["type"], "finding", "{finding}");
    assert_eq!(finding["finding"]["cause"], "file-denied", "{finding}");
    assert!(
        !end.exists() && std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the lines came only after the workload"
    );
    touch(&end);
    let summary = next();
    assert_eq!(summary["type"], "summary", "{summary}");
    assert_valid_report(&summary["report"].to_string());
    assert_eq!(
        summary["report"]["findings"][0]["fingerprint"],
        finding["finding"]["fingerprint"]
    );
    assert!(lines.next().is_none(), "the summary is the last line");
    assert_eq!(diag.wait().unwrap().code(), Some(0));
}

#[test]
fn run_keeps_stdout_for_the_command_and_writes_the_report_to_the_fd_asked() {
    require_privileged!();
    let scratch = Scratch::new("report-fd");
    let refused = diag_command()
        .args(["run", "--json", "-", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.starts_with("diag: error: --json -: stdout is the command's own output")
            && err.lines().count() == 1,
        "{err}"
    );
    let jsonl = scratch.path("report.jsonl");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec {} run --quiet --format jsonl --report-fd 3 -- sh -c 'echo hello; [ -e /proc/self/fd/3 ] && echo fd 3 || echo no fd 3' 3>{}",
            diag_bin(),
            jsonl.display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello\nno fd 3\n",
        "the command's stdout, and no report descriptor inherited"
    );
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "summary", "{text}");
    assert_eq!(last["report"]["mode"], "run");
}
