//! `diag analyze` (issue 5): the seed case recorded by real strace runs with each flag
//! combination, a real Landlock audit record, and bad input.

mod common;
use common::*;
use diag::report::{model::FailureEntry, Report};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Records the seed case under `strace <flags> -o <dir>/trace.log` and analyses `trace.log`.
fn analyze_seed(tag: &str, flags: &[&str]) -> (DiagRun, Scratch) {
    let (scratch, log) = record_seed(tag, flags);
    let run = diag_json(&scratch, "analyze", &["--quiet", log.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "stderr:\n{}", run.stderr());
    (run, scratch)
}

/// Runs the seed case under `strace <flags> -o <dir>/trace.log`.
fn record_seed(tag: &str, flags: &[&str]) -> (Scratch, PathBuf) {
    let scratch = Scratch::new(&format!("analyze-{tag}"));
    let tmux = TmuxSocket::new(&format!("an-{tag}"));
    let log = scratch.path("trace.log");
    let seed = seed_command(&tmux);
    let status = Command::new("strace")
        .args(flags)
        .arg("-o")
        .arg(&log)
        .args(&seed)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("strace is installed by `cargo xtask setup`");
    assert_eq!(status.code(), Some(1), "the seed case fails under strace");
    (scratch, log)
}

fn seed_failure(r: &Report) -> (usize, &FailureEntry) {
    ptmx_failure(r).unwrap_or_else(|| panic!("no openat /dev/ptmx EACCES in {:#?}", r.failures))
}

/// What every strace log that shows successful calls must give: the eBPF diagnosis.
fn assert_seed_diagnosis(r: &Report) {
    assert_eq!(
        (r.schema.as_str(), r.backend.as_str(), r.mode.as_str()),
        ("diag.report/v1", "strace-log", "analyze")
    );
    assert_eq!(
        r.exit_status,
        Some(1),
        "tmux's own status, from `+++ exited`"
    );
    let root = r.root_pids[0];
    let (i, f) = seed_failure(r);
    assert_eq!(f.flags.as_deref(), Some("O_RDWR"));
    assert_ne!(f.pid, root, "the failure is in the daemonized server");
    assert!(
        is_descendant(r, f.pid, root),
        "pid {} not below {root}",
        f.pid
    );
    // strace logs carry no comm: it comes from execve and prctl(PR_SET_NAME).
    assert_eq!(f.comm.lossy(), "tmux: server");
    let server = r.processes.iter().find(|p| p.pid == f.pid).unwrap();
    assert_eq!(
        server.exe.as_ref().map(|e| e.lossy()).as_deref(),
        Some("/usr/bin/tmux")
    );
    // The traced landlock_* calls are in the log: the evidence is direct.
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("landlock", "direct")
    );
    let ev = f.evidence.join("\n");
    assert!(
        ev.contains("Landlock domain 1") && ev.contains("/dev/ptmx needs"),
        "{ev}"
    );
    let rules: Vec<String> = r.landlock_domains[0]
        .rules
        .iter()
        .filter_map(|x| x.path.as_ref().map(|p| p.lossy()))
        .collect();
    assert!(rules.contains(&"/dev/null".to_string()), "{rules:?}");
    assert!(!rules.iter().any(|p| p.starts_with("/dev/pt")), "{rules:?}");

    let top = &r.findings[0];
    assert_eq!(
        (top.cause.as_str(), top.layer.as_str()),
        ("pty-denied", "landlock")
    );
    assert!(top.failures.contains(&i), "{top:#?}");
    // The client's message, cut at strace's string limit unless recorded with a larger -s.
    let m = r
        .messages
        .iter()
        .find(|m| m.pid == root && m.fd == 2 && m.text.lossy().starts_with("create window"))
        .unwrap_or_else(|| panic!("no client message in {:#?}", r.messages));
    assert!(TMUX_FAIL.starts_with(&m.text.lossy()), "{:?}", m.text);
}

#[test]
fn strace_f() {
    let (run, _s) = analyze_seed("f", &["-f"]);
    let r = run.report();
    assert_seed_diagnosis(r);
    assert!(
        r.warnings.iter().any(|w| w.contains("-s 4096")),
        "strace's default -s 32 cut the message: {:?}",
        r.warnings
    );
}

#[test]
fn strace_ff_per_pid_files() {
    let (run, scratch) = analyze_seed("ff", &["-ff"]);
    let files = std::fs::read_dir(&scratch.0).unwrap().count();
    assert!(files >= 3, "-ff writes one file per pid");
    assert_seed_diagnosis(run.report());
}

#[test]
fn strace_f_tt() {
    let (run, _s) = analyze_seed("tt", &["-f", "-tt"]);
    let r = run.report();
    assert_seed_diagnosis(r);
    let (_, f) = seed_failure(r);
    assert!(f.first_ns > 0, "times come from the timestamps");
}

#[test]
fn strace_f_ttt_t() {
    let (run, _s) = analyze_seed("ttt", &["-f", "-ttt", "-T"]);
    assert_seed_diagnosis(run.report());
}

#[test]
fn strace_f_yy() {
    let (run, _s) = analyze_seed("yy", &["-f", "-yy"]);
    let r = run.report();
    assert_seed_diagnosis(r);
    // -y names each rule's directory as the kernel resolved it.
    let rules: Vec<String> = r.landlock_domains[0]
        .rules
        .iter()
        .filter_map(|x| x.path.as_ref().map(|p| p.lossy()))
        .collect();
    assert!(rules.contains(&"/usr".to_string()), "{rules:?}");
}

#[test]
fn strace_f_truncated_strings() {
    let (run, _s) = analyze_seed("s16", &["-f", "-s", "16"]);
    let r = run.report();
    assert_seed_diagnosis(r);
    assert!(r
        .messages
        .iter()
        .any(|m| m.text.lossy() == "create window fa"));
}

#[test]
fn strace_f_whole_strings_link_the_message() {
    let (run, _s) = analyze_seed("s256", &["-f", "-s", "256"]);
    let r = run.report();
    assert_seed_diagnosis(r);
    let mi = r
        .messages
        .iter()
        .position(|m| m.text.lossy() == TMUX_FAIL)
        .unwrap_or_else(|| panic!("{:#?}", r.messages));
    assert!(r.findings[0].explains.contains(&mi), "{:#?}", r.findings[0]);
    assert!(
        r.findings[0].summary.starts_with("tmux said"),
        "{}",
        r.findings[0].summary
    );
}

#[test]
fn strace_f_z_only_failing_calls() {
    let (run, _s) = analyze_seed("z", &["-f", "-Z"]);
    let r = run.report();
    // Only failed calls: no clone, execve, prctl, write or landlock_* line. The failure and
    // its cause are still found; the layer honestly cannot be.
    let (i, f) = seed_failure(r);
    assert_eq!(f.flags.as_deref(), Some("O_RDWR"));
    assert_eq!(f.layer.as_str(), "unknown");
    assert_eq!(r.findings[0].cause, "pty-denied");
    assert!(r.findings[0].failures.contains(&i));
    assert!(r.messages.is_empty() && r.landlock_domains.is_empty());
    assert!(
        r.warnings.iter().any(|w| w.contains("-Z")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn landlock_audit_record_yields_layer_landlock() {
    let fixture = workspace().join("diag/tests/fixtures/landlock-ptmx.dmesg");
    let scratch = Scratch::new("audit-fixture");
    let run = diag_json(
        &scratch,
        "analyze",
        &["--quiet", "--audit", fixture.to_str().unwrap()],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    assert_eq!(r.backend, "audit-log");
    assert_audit_diagnosis(r, 25458);
}

fn assert_audit_diagnosis(r: &Report, pid: u32) {
    let (i, f) = seed_failure(r);
    assert_eq!((f.pid, f.comm.lossy().as_str()), (pid, "python3"));
    assert_eq!(f.flags.as_deref(), Some("O_RDWR"));
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("landlock", "direct")
    );
    let ev = f.evidence.join("\n");
    assert!(ev.contains("blockers=fs.write_file,fs.read_file"), "{ev}");
    let top = &r.findings[0];
    assert_eq!(
        (top.cause.as_str(), top.layer.as_str()),
        ("pty-denied", "landlock")
    );
    assert!(top.failures.contains(&i));
}

/// Regenerates the fixture's record live: audit on, a Landlock sandbox restricted with
/// LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON, python3 opening a PTY after exec; the records are
/// read from the audit netlink multicast group (no auditd needed, no printk rate limit).
#[test]
fn live_landlock_audit_record_yields_layer_landlock() {
    if let Some(why) = audit::skip_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let scratch = Scratch::new("audit-live");
    let listener = audit::Listener::open();
    let _enabled = audit::Enabled::on();
    let script = workspace().join("diag/tests/fixtures/landlock_ptmx_sandbox.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg("-I")
        .arg(&script)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    let pid = child.id();
    assert_eq!(
        child.wait().unwrap().code(),
        Some(1),
        "openpty must be denied"
    );
    let lines = listener.records_until_syscall_of(pid);
    let log = scratch.path("audit.log");
    std::fs::write(&log, lines.join("\n")).unwrap();
    let run = diag_json(
        &scratch,
        "analyze",
        &["--quiet", "--audit", log.to_str().unwrap()],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_audit_diagnosis(run.report(), pid);
}

mod audit {
    use std::process::Command;

    const NETLINK_AUDIT: i32 = 9;
    const AUDIT_NLGRP_READLOG: u32 = 1;
    const SYSCALL: u16 = 1300;

    pub fn skip_reason() -> Option<String> {
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Some("needs root to turn audit on and read audit records".into());
        }
        // SAFETY: the documented version query: no pointer is dereferenced.
        let abi = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, 0usize, 0usize, 1u32) };
        if abi < 7 {
            return Some(format!("Landlock ABI {abi} < 7 has no audit logging"));
        }
        None
    }

    /// Turns audit on for the test and restores the previous state on drop.
    pub struct Enabled(bool);

    impl Enabled {
        pub fn on() -> Self {
            let status = Command::new("auditctl")
                .arg("-s")
                .output()
                .expect("auditctl");
            let was_on = String::from_utf8_lossy(&status.stdout)
                .lines()
                .any(|l| l.trim() == "enabled 1" || l.trim() == "enabled 2");
            let ok = Command::new("auditctl").args(["-e", "1"]).output().unwrap();
            assert!(ok.status.success(), "auditctl -e 1 failed");
            Enabled(was_on)
        }
    }

    impl Drop for Enabled {
        fn drop(&mut self) {
            if !self.0 {
                let _ = Command::new("auditctl").args(["-e", "0"]).output();
            }
        }
    }

    /// A socket on the audit netlink multicast group, closed on drop.
    pub struct Listener(i32);

    impl Listener {
        pub fn open() -> Self {
            // SAFETY: plain socket calls on a fresh fd; the address is fully initialised.
            unsafe {
                let fd = libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    NETLINK_AUDIT,
                );
                assert!(fd >= 0, "netlink audit socket");
                let mut addr: libc::sockaddr_nl = std::mem::zeroed();
                addr.nl_family = libc::AF_NETLINK as u16;
                addr.nl_groups = AUDIT_NLGRP_READLOG;
                let r = libc::bind(
                    fd,
                    &addr as *const _ as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_nl>() as u32,
                );
                assert_eq!(r, 0, "bind to the audit multicast group");
                let tv = libc::timeval {
                    tv_sec: 2,
                    tv_usec: 0,
                };
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &tv as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as u32,
                );
                Listener(fd)
            }
        }

        /// Records as audit.log lines (`type=N msg=audit(...): ...`), up to and including the
        /// SYSCALL record of `pid` (the last record of its event but PROCTITLE).
        pub fn records_until_syscall_of(&self, pid: u32) -> Vec<String> {
            let mut lines = Vec::new();
            let mut buf = vec![0u8; 16384];
            let needle = format!(" pid={pid} ");
            for _ in 0..1000 {
                // SAFETY: buf is valid for its length.
                let n = unsafe {
                    libc::recv(self.0, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0)
                };
                assert!(
                    n > 0,
                    "no audit record for pid {pid} (audit disabled or rate-limited?)"
                );
                let msg = &buf[..n as usize];
                let kind = u16::from_ne_bytes([msg[4], msg[5]]);
                let text = String::from_utf8_lossy(&msg[16..]);
                let text = text.trim_end_matches('\0').trim_end();
                lines.push(format!("type={kind} msg={text}"));
                if kind == SYSCALL && text.contains(&needle) {
                    return lines;
                }
            }
            panic!("no SYSCALL record of pid {pid} among 1000 records");
        }
    }

    impl Drop for Listener {
        fn drop(&mut self) {
            // SAFETY: the fd is ours.
            unsafe { libc::close(self.0) };
        }
    }
}

fn analyze_bad(scratch: &Scratch, name: &str, bytes: &[u8], audit: bool) -> (i32, String) {
    let file = scratch.path(name);
    std::fs::write(&file, bytes).unwrap();
    let mut cmd = Command::new(diag_bin());
    cmd.arg("analyze");
    if audit {
        cmd.arg("--audit");
    }
    let out = cmd.arg(&file).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_input_gives_one_line_and_exit_2() {
    let scratch = Scratch::new("analyze-bad");
    let mut binary: Vec<u8> = (0..=255u8).collect();
    binary.extend_from_slice(b"\x7fELF\0\0\0");
    let cases: [(&str, &[u8], &str); 4] = [
        ("empty.log", b"", "is empty"),
        ("binary.log", &binary, "binary"),
        (
            "prose.log",
            b"hello\nthis is not strace\n",
            "no strace lines",
        ),
        ("blank.log", b"\n\n  \n", "is empty"),
    ];
    for audit in [false, true] {
        for (name, bytes, expect) in cases {
            let (code, err) = analyze_bad(&scratch, name, bytes, audit);
            assert_eq!(code, 2, "{name} (audit {audit}): {err}");
            assert_eq!(err.lines().count(), 1, "{name}: {err}");
            let expect = if audit && expect == "no strace lines" {
                "no audit records"
            } else {
                expect
            };
            assert!(err.contains(expect) && err.contains(name), "{name}: {err}");
        }
    }
    let missing = Command::new(diag_bin())
        .args(["analyze", "/nonexistent/diag-trace.log"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("no such file") && err.lines().count() == 1,
        "{err}"
    );
}

/// Audit records from other machines are decoded with their own architecture's syscall table:
/// aarch64's 56 and ppc64le's 286 are `openat` (x86_64's 56 is `clone`). An architecture diag
/// does not know is said, not guessed.
#[test]
fn audit_records_are_decoded_with_their_own_architecture() {
    let fixture = workspace().join("diag/tests/fixtures/landlock-ptmx.dmesg");
    let x86_64 = std::fs::read_to_string(fixture).unwrap();
    let scratch = Scratch::new("audit-arch");
    for (arch, nr, expected) in [
        ("c00000b7", "56", "openat"),
        ("c0000015", "286", "openat"),
        ("aarch64", "56", "openat"),
        (
            "deadbeef",
            "56",
            "syscall 56 (unknown architecture deadbeef)",
        ),
    ] {
        let log = scratch.path(&format!("audit-{arch}.log"));
        let record = x86_64.replace(
            "arch=c000003e syscall=257 ",
            &format!("arch={arch} syscall={nr} "),
        );
        std::fs::write(&log, record).unwrap();
        let run = diag_json(
            &scratch,
            "analyze",
            &["--quiet", "--audit", log.to_str().unwrap()],
        );
        let r = run.report();
        let f = r
            .failures
            .iter()
            .find(|f| f.pid == 25458)
            .expect("the denial");
        assert_eq!(f.syscall, expected, "arch={arch}");
        // The layer comes from the Landlock record whatever the call.
        assert_eq!(f.layer.as_str(), "landlock", "arch={arch}");
        assert!(
            r.findings.iter().all(|x| x.layer.as_str() != "userns"),
            "arch={arch}: {:?}",
            r.findings
        );
    }
}

/// Runs `cmd`, which writes its report to `json`, and reads the report; a reader still waiting
/// for input that already ended fails the test instead of hanging it.
fn report_within(mut cmd: Command, json: &Path, what: &str) -> Report {
    let _ = std::fs::remove_file(json);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: diag still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{what}: {err}");
    let text = std::fs::read_to_string(json).unwrap_or_else(|e| panic!("{what}: no report: {e}"));
    assert_valid_report(&text);
    serde_json::from_str(&text).unwrap()
}

fn analyze_command(json: &Path, input: &Path) -> Command {
    let mut cmd = diag_command();
    cmd.args(["analyze", "--quiet", "--json"])
        .arg(json)
        .arg(input);
    cmd
}

/// The log is read once from what it is given: a pipe on stdin (`-` or `/dev/stdin`), a FIFO
/// whose writer finishes, bash's `<(...)`. Reopening them lost the head of the log (or waited
/// for a second writer forever).
#[test]
fn pipes_fifos_and_stdin_are_read_once() {
    let (scratch, log) = record_seed("pipes", &["-f"]);
    let json = scratch.path("pipe.json");
    for input in ["-", "/dev/stdin"] {
        let mut cat = Command::new("cat")
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut cmd = analyze_command(&json, Path::new(input));
        cmd.stdin(Stdio::from(cat.stdout.take().unwrap()));
        assert_seed_diagnosis(&report_within(cmd, &json, &format!("cat log | {input}")));
        cat.wait().unwrap();
    }

    let fifo = scratch.path("trace.fifo");
    nix::unistd::mkfifo(
        &fifo,
        nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
    )
    .unwrap();
    let writer = {
        let (fifo, text) = (fifo.clone(), std::fs::read(&log).unwrap());
        std::thread::spawn(move || std::fs::write(fifo, text))
    };
    assert_seed_diagnosis(&report_within(
        analyze_command(&json, &fifo),
        &json,
        "a FIFO",
    ));
    writer.join().unwrap().unwrap();

    let mut bash = Command::new("bash");
    bash.arg("-c")
        .arg(r#"exec "$0" analyze --quiet --json "$1" <(cat "$2")"#)
        .arg(diag_bin())
        .arg(&json)
        .arg(&log)
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY");
    assert_seed_diagnosis(&report_within(bash, &json, "<(cat log)"));
}

/// `strace -ff` of a fork-heavy program: more per-pid files than the open-file limit allows
/// at once, with and without timestamps. The parent's file sorts last, so the untimed order
/// must come from its clone lines.
#[test]
fn per_pid_files_beyond_the_open_file_limit() {
    use std::os::unix::process::CommandExt;
    const CHILDREN: u32 = 2099;
    const PARENT: u32 = 9000;
    for timed in [false, true] {
        let scratch = Scratch::new(&format!("analyze-ff-{timed}"));
        let stamp = |t: u32| match timed {
            true => format!("1700000000.{t:06} "),
            false => String::new(),
        };
        let mut parent = format!(
            "{}execve(\"/usr/bin/sh\", [\"sh\"], 0x7ffc /* 1 var */) = 0\n",
            stamp(0)
        );
        for i in 0..CHILDREN {
            let child = 5000 + i;
            parent += &format!(
                "{}clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = {child}\n",
                stamp(10 * i + 1)
            );
            let call = match i == CHILDREN - 1 {
                true => "openat(AT_FDCWD, \"/dev/ptmx\", O_RDWR) = -1 EACCES (Permission denied)",
                false => "openat(AT_FDCWD, \"/etc/hostname\", O_RDONLY) = 3",
            };
            let text = format!(
                "{}{call}\n{}+++ exited with 0 +++\n",
                stamp(10 * i + 2),
                stamp(10 * i + 3)
            );
            std::fs::write(scratch.path(&format!("trace.log.{child}")), text).unwrap();
        }
        parent += &format!("{}+++ exited with 1 +++\n", stamp(10 * CHILDREN));
        std::fs::write(scratch.path(&format!("trace.log.{PARENT}")), parent).unwrap();

        let json = scratch.path("report.json");
        let mut cmd = analyze_command(&json, &scratch.path("trace.log"));
        // SAFETY: setrlimit is async-signal-safe; lowering a limit needs no privilege.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 1024,
                    rlim_max: 1024,
                };
                match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        let r = report_within(cmd, &json, &format!("-ff, timed {timed}"));
        assert_eq!(
            (r.root_pids.as_slice(), r.exit_status),
            (&[PARENT][..], Some(1))
        );
        let (i, f) = seed_failure(&r);
        assert_eq!(f.pid, 5000 + CHILDREN - 1);
        assert!(is_descendant(&r, f.pid, PARENT), "timed {timed}");
        assert_eq!(r.findings[0].cause, "pty-denied");
        assert!(r.findings[0].failures.contains(&i));
    }
}

/// A 300 MB log streamed through a pipe: distinct failures, and as many threads left in
/// unfinished calls with 64 KiB buffers (a log cut off mid-run). Memory stays flat.
#[test]
fn memory_stays_bounded_on_a_large_piped_log() {
    use std::io::Write;
    const FAILURES: usize = 4800;
    let scratch = Scratch::new("analyze-memory");
    let json = scratch.path("report.json");
    #[allow(clippy::zombie_processes)] // reaped by wait4 below, which gives its rusage
    let mut child = analyze_command(&json, Path::new("-"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || -> std::io::Result<usize> {
        let buffer = "x".repeat(65_000);
        let mut written = 0;
        for n in 0..FAILURES {
            let lines = format!(
                "{} write(1, \"{buffer}\", 65000 <unfinished ...>\n\
                 100 openat(AT_FDCWD, \"/data/file-{n}\", O_RDONLY) = -1 EACCES (Permission denied)\n",
                1000 + n
            );
            stdin.write_all(lines.as_bytes())?;
            written += lines.len();
        }
        Ok(written)
    });
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; both out-pointers live across the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child (std's handle is not waited on afterwards).
    let waited = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(waited, child.id() as i32);
    let written = writer.join().unwrap().unwrap();
    assert!(written > 300_000_000, "{written} bytes");
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    let peak_mib = usage.ru_maxrss / 1024;
    assert!(
        peak_mib < 100,
        "peak RSS {peak_mib} MiB for {written} bytes"
    );
    let r: Report = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r.failures.len(), FAILURES);
    assert!(
        r.warnings.iter().any(|w| w.contains("unfinished")),
        "{:?}",
        r.warnings
    );
}
