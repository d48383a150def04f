//! The bad-input table of docs/reliability.md: each row gets one clear line, exit 2, and no
//! partial output file.

mod common;
use common::*;
use std::process::Command;

#[test]
fn every_bad_input_gets_one_line_and_exit_2() {
    let scratch = Scratch::new("badinput");
    let json = scratch.path("out.json");
    let j = json.to_str().unwrap();
    let dir = scratch.0.to_str().unwrap();
    let empty = scratch.path("empty.log");
    std::fs::write(&empty, "").unwrap();
    let binary = scratch.path("binary.log");
    std::fs::write(&binary, [0u8, 159, 146, 150, 0, 1, 2, 255, 0]).unwrap();
    let (empty, binary) = (empty.to_str().unwrap(), binary.to_str().unwrap());
    let rows: Vec<(&str, Vec<&str>)> = vec![
        (
            "analyze on an empty file",
            vec!["analyze", "--json", j, empty],
        ),
        (
            "analyze on a binary file",
            vec!["analyze", "--json", j, binary],
        ),
        (
            "analyze --audit on a binary file",
            vec!["analyze", "--audit", "--json", j, binary],
        ),
        ("analyze on a directory", vec!["analyze", "--json", j, dir]),
        (
            "analyze on a missing file",
            vec!["analyze", "--json", j, "/nonexistent/trace.log"],
        ),
        ("unknown flag", vec!["run", "--bogus", "--", "true"]),
        ("unknown subcommand", vec!["frobnicate"]),
        (
            "--errno with an unknown name",
            vec!["run", "--json", j, "--errno", "EBOGUS", "--", "true"],
        ),
        (
            "--syscalls with an unknown name",
            vec![
                "run",
                "--json",
                j,
                "--syscalls",
                "openat,frobnicate",
                "--",
                "true",
            ],
        ),
        (
            "--json into a missing directory",
            vec!["run", "--json", "/nonexistent/dir/r.json", "--", "true"],
        ),
        (
            "--json onto a directory",
            vec!["run", "--json", dir, "--", "true"],
        ),
        ("--pid 0", vec!["attach", "--json", j, "--pid", "0"]),
        ("a negative pid", vec!["attach", "--json", j, "--pid", "-3"]),
        ("a kernel thread", vec!["attach", "--json", j, "--pid", "2"]),
        (
            "--cgroup on a file",
            vec!["attach", "--json", j, "--cgroup", "/etc/hostname"],
        ),
        (
            "--container that is no container",
            vec!["attach", "--json", j, "--container", "no-such-container"],
        ),
        (
            "--container that looks like a flag",
            vec!["attach", "--json", j, "--container=-f"],
        ),
        (
            "--policy on a directory",
            vec!["run", "--json", j, "--policy", dir, "--", "true"],
        ),
        (
            "--ring-buffer-kib not a power of two",
            vec!["run", "--json", j, "--ring-buffer-kib", "3", "--", "true"],
        ),
        (
            "--duration that is not a duration",
            vec!["attach", "--json", j, "--duration", "soon", "--pid", "1"],
        ),
        (
            "--preserve-env with a name that is not one",
            vec!["run", "--json", j, "--preserve-env", "A=B", "--", "true"],
        ),
        (
            "--user that does not exist",
            vec!["run", "--json", j, "--user", "no-such-user-x", "--", "true"],
        ),
    ];
    let fifo = scratch.path("planted.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    let log = scratch.path("trace.log");
    std::fs::write(
        &log,
        "1 openat(AT_FDCWD, \"/x\", O_RDONLY) = -1 EACCES (Permission denied)\n",
    )
    .unwrap();
    let (fifo, log) = (fifo.to_str().unwrap(), log.to_str().unwrap());
    // Rows whose line must name what is wrong.
    let named: Vec<(&str, Vec<&str>, &str)> = vec![
        ("run without a command", vec!["run"], "<CMD>"),
        (
            "a flag without its value",
            vec!["run", "--policy"],
            "'--policy <FILE>'",
        ),
        (
            "a misspelt flag",
            vec!["run", "--jsn", j, "--", "true"],
            "tip: a similar argument exists: '--json'",
        ),
        (
            "--ring-buffer-kib above the kernel's 1 GiB",
            vec![
                "run",
                "--json",
                j,
                "--ring-buffer-kib",
                "4194304",
                "--",
                "true",
            ],
            "from 4 to 1048576",
        ),
        (
            "--json onto a FIFO another user planted",
            vec!["run", "--json", fifo, "--", "true"],
            "FIFO",
        ),
        (
            "analyze --json onto its own input",
            vec!["analyze", "--json", log, log],
            "that is an input",
        ),
        (
            "--json and --markdown onto one file",
            vec!["analyze", "--json", j, "--markdown", j, log],
            "--json writes there too",
        ),
    ];
    let rows = rows.into_iter().map(|(what, args)| (what, args, ""));
    for (what, args, names) in rows.chain(named) {
        let out = Command::new(diag_bin()).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: not one line:\n{err}");
        assert!(err.starts_with("diag: error: "), "{what}: {err}");
        assert!(err.contains(names), "{what}: does not say {names:?}: {err}");
        assert!(!json.exists(), "{what}: left a partial report");
    }
    assert!(std::fs::read_to_string(log).unwrap().contains("EACCES"));
}
