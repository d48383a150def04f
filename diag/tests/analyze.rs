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
    assert_eq!(f.first_at, None, "-tt has no date");
}

#[test]
fn strace_f_ttt_t() {
    let (run, _s) = analyze_seed("ttt", &["-f", "-ttt", "-T"]);
    let r = run.report();
    assert_seed_diagnosis(r);
    // -ttt stamps are dates: the failure's is in the report (and the verdict).
    let (_, f) = seed_failure(r);
    let at = f.first_at.as_deref().expect("a date from -ttt");
    let at = humantime::parse_rfc3339(at).unwrap();
    let age = std::time::SystemTime::now().duration_since(at).unwrap();
    assert!(
        age < Duration::from_secs(600),
        "recorded just now: {age:?} ago"
    );
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
    assert_eq!(r.findings[0].cause, "pty-denied", "{:#?}", r.failures);
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

/// `diag analyze ARGS -` with `text` on stdin; the report it wrote.
fn analyze_stdin(scratch: &Scratch, args: &[&str], text: &str) -> Report {
    use std::io::Write;
    let json = scratch.path("stdin.json");
    let mut cmd = diag_command();
    cmd.args(["analyze", "--quiet", "--json"])
        .arg(&json)
        .args(args)
        .arg("-")
        .stdin(Stdio::piped());
    let _ = std::fs::remove_file(&json);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    let text = std::fs::read_to_string(&json).unwrap();
    assert_valid_report(&text);
    serde_json::from_str(&text).unwrap()
}

/// The one failure of `r` with this pid, and the finding that rests on it.
fn failure_of(r: &Report, pid: u32) -> (&FailureEntry, &diag::report::model::Finding) {
    let (i, f) = (r.failures.iter().enumerate())
        .find(|(_, f)| f.pid == pid)
        .unwrap_or_else(|| panic!("no failure of pid {pid} in {:#?}", r.failures));
    let finding = (r.findings.iter())
        .find(|x| x.failures.contains(&i))
        .unwrap_or_else(|| panic!("no finding for pid {pid} in {:#?}", r.findings));
    (f, finding)
}

/// The Landlock record of tests/fixtures (recorded on Linux 6.18) in each form a kernel audit
/// line is pasted in: audit.log, dmesg with and without its timestamps, `journalctl -k` in
/// its default and `-o short-iso` forms, each read from stdin. Every form gives the same
/// pid, call, errno, layer, date and Landlock rule.
#[test]
fn audit_records_in_every_form_from_stdin() {
    let fixture = workspace().join("diag/tests/fixtures/landlock-ptmx.dmesg");
    let dmesg = std::fs::read_to_string(fixture).unwrap();
    let bare: Vec<&str> = dmesg
        .lines()
        .map(|l| l.split_once("] audit: ").unwrap().1)
        .collect();
    let with = |prefix: &str| -> String {
        bare.iter()
            .map(|l| format!("{prefix}{l}\n"))
            .collect::<String>()
    };
    let audit_log = bare
        .iter()
        .map(|l| {
            l.replace("type=1423 audit(", "type=LANDLOCK_ACCESS msg=audit(")
                .replace("type=1424 audit(", "type=LANDLOCK_DOMAIN msg=audit(")
                .replace("type=1300 audit(", "type=SYSCALL msg=audit(")
                .replace("type=1327 audit(", "type=PROCTITLE msg=audit(")
                + "\n"
        })
        .collect::<String>();
    let scratch = Scratch::new("audit-forms");
    for (form, text) in [
        ("audit.log", audit_log),
        ("dmesg", dmesg.clone()),
        ("dmesg without timestamps", with("audit: ")),
        ("journalctl -k", with("Nov 28 21:02:46 vm kernel: audit: ")),
        (
            "journalctl -k -o short-iso",
            with("2026-11-28T21:02:46+0000 vm kernel: audit: "),
        ),
    ] {
        let r = analyze_stdin(&scratch, &["--audit"], &text);
        let (f, finding) = failure_of(&r, 25458);
        assert_eq!(
            (
                f.syscall.as_str(),
                f.errno.as_str(),
                f.layer.as_str(),
                f.comm.lossy().as_str()
            ),
            ("openat", "EACCES", "landlock", "python3"),
            "{form}"
        );
        assert_eq!(
            f.first_at.as_deref(),
            Some("2026-11-28T21:02:46.929Z"),
            "{form}"
        );
        assert_eq!(finding.cause, "pty-denied", "{form}");
        assert!(
            finding.fix.contains(
                "LANDLOCK_RULE_PATH_BENEATH rule granting fs.write_file, fs.read_file on /dev/ptmx"
            ),
            "{form}: {}",
            finding.fix
        );
        let ev = f.evidence.join("\n");
        assert!(
            ev.contains("Landlock domain 157bd2aff (created by pid 25458 /usr/bin/python3.11)"),
            "{form}: {ev}"
        );
    }
}

/// A log from another host says nothing of this one: /dev/ptmx is a character device here,
/// but the fix must not say so; the audit log records no forks and no seccomp mode, so
/// neither is ruled out; what the log cannot tell is said.
#[test]
fn offline_reports_use_no_host_facts() {
    let fixture = workspace().join("diag/tests/fixtures/landlock-ptmx.dmesg");
    let scratch = Scratch::new("audit-no-host");
    let run = diag_json(
        &scratch,
        "analyze",
        &["--quiet", "--audit", fixture.to_str().unwrap()],
    );
    let r = run.report();
    let top = &r.findings[0];
    assert!(
        !top.fix.contains(" here") && !top.fix.contains("this host"),
        "{}",
        top.fix
    );
    assert!(
        top.ruled_out
            .iter()
            .all(|x| !x.why.contains("fork/clone") && !x.why.starts_with("seccomp")),
        "{:?}",
        top.ruled_out
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("not known from this log")),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.hostname, None);
}

/// `ausearch -i` output, as pasted in fedora-selinux/selinux-policy#1659 (an SELinux denial
/// with its SYSCALL, PATH and PROCTITLE records, names for numbers): the call, errno and flags
/// come from the interpreted SYSCALL record, the `allow` rule from the AVC.
#[test]
fn ausearch_interpreted_selinux_denial() {
    const SAMPLE: &str = "----
type=PROCTITLE msg=audit(04/25/2023 21:22:49.431:10767) : proctitle=less
type=PATH msg=audit(04/25/2023 21:22:49.431:10767) : item=0 name=/dev/pts/2 inode=5 dev=00:17 mode=character,620 ouid=root ogid=tty rdev=88:02 obj=sysadm_u:object_r:user_devpts_t:s0 nametype=NORMAL cap_fp=none cap_fi=none cap_fe=0 cap_fver=0 cap_frootid=0
type=SYSCALL msg=audit(04/25/2023 21:22:49.431:10767) : arch=x86_64 syscall=openat success=no exit=EACCES(Permission denied) a0=AT_FDCWD a1=0x55e3fe882420 a2=O_RDONLY a3=0x0 items=1 ppid=246901 pid=246920 auid=root uid=root gid=root euid=root suid=root fsuid=root egid=root sgid=root fsgid=root tty=pts2 ses=80 comm=less exe=/usr/bin/less subj=sysadm_u:sysadm_r:journalctl_t:s0-s0:c0.c1023 key=(null)
type=AVC msg=audit(04/25/2023 21:22:49.431:10767) : avc:  denied  { open } for  pid=246920 comm=less path=/dev/pts/2 dev=\"devpts\" ino=5 scontext=sysadm_u:sysadm_r:journalctl_t:s0-s0:c0.c1023 tcontext=sysadm_u:object_r:user_devpts_t:s0 tclass=chr_file permissive=0
";
    let scratch = Scratch::new("ausearch-i");
    let r = analyze_stdin(&scratch, &["--audit"], SAMPLE);
    let (f, finding) = failure_of(&r, 246920);
    assert_eq!(
        (
            f.syscall.as_str(),
            f.errno.as_str(),
            f.layer.as_str(),
            f.flags.as_deref(),
            f.comm.lossy().as_str()
        ),
        ("openat", "EACCES", "selinux", Some("O_RDONLY"), "less")
    );
    assert_eq!(f.path.as_ref().unwrap().lossy(), "/dev/pts/2");
    assert_eq!(f.uid, None, "a user name is not looked up on this host");
    assert_eq!(f.first_at.as_deref(), Some("2023-04-25T21:22:49.431Z"));
    assert!(
        finding
            .fix
            .contains("allow journalctl_t user_devpts_t:chr_file { open };"),
        "{}",
        finding.fix
    );
    assert!(
        f.evidence.iter().any(|e| e
            == "SELinux denied { open } on chr_file: source sysadm_u:sysadm_r:journalctl_t:s0-s0:c0.c1023, target sysadm_u:object_r:user_devpts_t:s0"),
        "{:?}",
        f.evidence
    );
    assert!(r.warnings.iter().any(|w| w.contains("ausearch -i")));
}

/// Raw SELinux records: a container reading the host's var_lib_t files (from
/// containers/container-selinux#169, no SYSCALL record) asks for a relabel (:z/:Z); logrotate
/// with its SYSCALL, CWD and PATH records (fedora-selinux/selinux-policy#790) gets the `allow`
/// rule, the call from syscall=257 and the path from the PATH record.
#[test]
fn selinux_avc_records_explained() {
    const SAMPLE: &str = r#"type=AVC msg=audit(1644242078.478:707): avc:  denied  { read } for  pid=3831 comm="date" path="/bin/busybox" dev="vda1" ino=265811 scontext=system_u:system_r:container_t:s0:c196,c287 tcontext=unconfined_u:object_r:var_lib_t:s0 tclass=file permissive=0
type=AVC msg=audit(1602816340.741:42012): avc:  denied  { read } for  pid=71978 comm="logrotate" name="overlay-containers" dev="dm-8" ino=4229964 scontext=system_u:system_r:logrotate_t:s0-s0:c0.c1023 tcontext=unconfined_u:object_r:container_var_lib_t:s0 tclass=dir permissive=0
type=SYSCALL msg=audit(1602816340.741:42012): arch=c000003e syscall=257 success=no exit=-13 a0=ffffff9c a1=7fff0aaa9dd0 a2=90800 a3=0 items=1 ppid=71976 pid=71978 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="logrotate" exe="/usr/sbin/logrotate" subj=system_u:system_r:logrotate_t:s0-s0:c0.c1023 key=(null)
type=CWD msg=audit(1602816340.741:42012): cwd="/etc/logrotate.d"
type=PATH msg=audit(1602816340.741:42012): item=0 name="/var/lib/containers/storage/overlay-containers" inode=4229964 dev=fd:08 mode=040700 ouid=0 ogid=0 rdev=00:00 obj=unconfined_u:object_r:container_var_lib_t:s0 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
"#;
    let scratch = Scratch::new("selinux-raw");
    let r = analyze_stdin(&scratch, &["--audit", "--errno", "all"], SAMPLE);
    let (f, finding) = failure_of(&r, 3831);
    assert_eq!(
        (f.syscall.as_str(), f.errno.as_str(), f.layer.as_str()),
        ("unknown", "EACCES", "selinux")
    );
    assert!(
        finding.fix.contains("var_lib_t") && finding.fix.contains(":Z"),
        "{}",
        finding.fix
    );
    let (f, finding) = failure_of(&r, 71978);
    assert_eq!(
        (f.syscall.as_str(), f.errno.as_str(), f.layer.as_str()),
        ("openat", "EACCES", "selinux")
    );
    assert_eq!(
        f.path.as_ref().unwrap().lossy(),
        "/var/lib/containers/storage/overlay-containers"
    );
    assert!(
        finding
            .fix
            .contains("allow logrotate_t container_var_lib_t:dir { read };"),
        "{}",
        finding.fix
    );
}

/// AppArmor denials as syslog kept them: docker-default refusing ptrace (from
/// plexguide/PlexGuide.com#69, syslog and dmesg prefixes) and a file open; the profile, the
/// operation and the rule line the profile lacks.
#[test]
fn apparmor_records_explained() {
    const SAMPLE: &str = r#"Nov 26 15:58:32 UBUNTU-PLEX kernel: [43034.864822] audit: type=1400 audit(1511708312.309:215515): apparmor="DENIED" operation="ptrace" profile="docker-default" pid=7790 comm="apps.plugin" requested_mask="trace" denied_mask="trace" peer="unconfined"
Nov 26 15:58:33 UBUNTU-PLEX kernel: [43035.000001] audit: type=1400 audit(1511708313.000:215600): apparmor="DENIED" operation="open" profile="docker-default" name="/proc/sysrq-trigger" pid=7791 comm="sh" requested_mask="w" denied_mask="w" fsuid=0 ouid=0
"#;
    let scratch = Scratch::new("apparmor");
    let r = analyze_stdin(&scratch, &["--audit"], SAMPLE);
    let (f, finding) = failure_of(&r, 7790);
    assert_eq!(
        (f.syscall.as_str(), f.errno.as_str(), f.layer.as_str()),
        ("ptrace", "EACCES", "apparmor")
    );
    assert!(
        finding.fix.contains("`ptrace (trace) peer=unconfined,`"),
        "{}",
        finding.fix
    );
    assert_eq!(f.first_at.as_deref(), Some("2017-11-26T14:58:32.309Z"));
    let (f, finding) = failure_of(&r, 7791);
    assert_eq!(
        (f.syscall.as_str(), f.errno.as_str(), f.layer.as_str()),
        ("open", "EACCES", "apparmor")
    );
    assert!(
        finding.fix.contains("`/proc/sysrq-trigger w,`"),
        "{}",
        finding.fix
    );
    assert!(
        f.evidence
            .iter()
            .any(|e| e.contains("profile docker-default denied open of /proc/sysrq-trigger")),
        "{:?}",
        f.evidence
    );
}

/// An interpreted aarch64 record (fedora-selinux/selinux-policy#2408: the AVC dated day first,
/// the SYSCALL month first and six hours apart, tied by their serial) and a raw ppc64le one
/// written from the kernel's table (openat is 286 there).
#[test]
fn audit_records_of_other_architectures() {
    const SAMPLE: &str = "type=AVC msg=audit(22.10.2024 22:04:46.449:3240) : avc:  denied  { search } for  pid=328102 comm=rpc.statd name=net dev=\"proc\" ino=8508325 scontext=system_u:system_r:rpcd_t:s0 tcontext=system_u:object_r:sysctl_net_t:s0 tclass=dir permissive=0
type=SYSCALL msg=audit(10/22/2024 16:04:46.449:3240) : arch=aarch64 syscall=openat success=no exit=EACCES(Permission denied) a0=AT_FDCWD a1=0xffffed7f78b0 a2=O_RDONLY|O_NOCTTY|O_CLOEXEC a3=0x0 items=0 ppid=1 pid=328102 auid=unset uid=unknown(29) gid=unknown(29) euid=unknown(29) suid=unknown(29) fsuid=unknown(29) egid=unknown(29) sgid=unknown(29) fsgid=unknown(29) tty=(none) ses=unset comm=rpc.statd exe=/usr/sbin/rpc.statd subj=system_u:system_r:rpcd_t:s0 key=(null)
type=AVC msg=audit(1700000000.100:77): avc:  denied  { read write } for  pid=4100 comm=\"tmux: server\" path=\"/dev/ptmx\" dev=\"devtmpfs\" ino=91 scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=system_u:object_r:ptmx_t:s0 tclass=chr_file permissive=0
type=SYSCALL msg=audit(1700000000.100:77): arch=c0000015 syscall=286 success=no exit=-13 a0=ffffff9c a1=1000f3c0 a2=2 a3=0 items=0 ppid=4099 pid=4100 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=(none) ses=3 comm=\"tmux: server\" exe=\"/usr/bin/tmux\" key=(null)
";
    let scratch = Scratch::new("audit-arches");
    let r = analyze_stdin(&scratch, &["--audit"], SAMPLE);
    let (f, _) = failure_of(&r, 328102);
    assert_eq!(
        (
            f.syscall.as_str(),
            f.errno.as_str(),
            f.layer.as_str(),
            f.uid,
            f.flags.as_deref()
        ),
        (
            "openat",
            "EACCES",
            "selinux",
            Some(29),
            Some("O_RDONLY|O_NOCTTY|O_CLOEXEC")
        )
    );
    let (f, finding) = failure_of(&r, 4100);
    assert_eq!(
        (f.syscall.as_str(), f.errno.as_str(), f.layer.as_str()),
        ("openat", "EACCES", "selinux")
    );
    assert_eq!(finding.cause, "pty-denied");
    assert!(
        finding
            .fix
            .contains("allow container_t ptmx_t:chr_file { read write };"),
        "{}",
        finding.fix
    );
}

#[test]
fn strace_f_r_relative_times() {
    let (run, _s) = analyze_seed("r", &["-f", "-r"]);
    let r = run.report();
    assert_seed_diagnosis(r);
    let (_, f) = seed_failure(r);
    assert!(f.first_ns > 0, "times are the sums of -r stamps");
    assert_eq!(f.first_at, None, "-r gives no date");
}

#[test]
fn strace_f_x_verbose() {
    let (run, _s) = analyze_seed("xv", &["-f", "-X", "verbose", "-yy"]);
    assert_seed_diagnosis(run.report());
}

/// A `strace -f -ttt` log of two process trees on stdin: --pid keeps a process and the
/// children the log shows it forking, --comm selects by name, --since by the log's dates.
#[test]
fn filters_pid_comm_since() {
    const LOG: &str = r#"100 1764363300.000000 execve("/usr/bin/tmux", ["tmux"], 0x7ffc /* 3 vars */) = 0
100 1764363301.000000 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 101
101 1764363302.000000 openat(AT_FDCWD, "/dev/ptmx", O_RDWR) = -1 EACCES (Permission denied)
200 1764363400.000000 execve("/usr/bin/cat", ["cat"], 0x7ffc /* 3 vars */) = 0
200 1764363401.000000 openat(AT_FDCWD, "/etc/shadow", O_RDONLY) = -1 EACCES (Permission denied)
"#;
    let scratch = Scratch::new("analyze-filters");
    let pids = |args: &[&str]| -> Vec<u32> {
        let r = analyze_stdin(&scratch, args, LOG);
        r.failures.iter().map(|f| f.pid).collect()
    };
    assert_eq!(pids(&[]), [101, 200]);
    assert_eq!(pids(&["--pid", "100"]), [101], "a child of --pid");
    assert_eq!(pids(&["--comm", "cat"]), [200]);
    assert_eq!(pids(&["--since", "2025-11-28T20:56:00Z"]), [200]);
    assert_eq!(pids(&["--since", "@1764363300"]), [101, 200]);
    let r = analyze_stdin(&scratch, &["--comm", "cat"], LOG);
    assert_eq!(
        r.failures[0].first_at.as_deref(),
        Some("2025-11-28T20:56:41.000Z")
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("1 failures of the log were left out")),
        "{:?}",
        r.warnings
    );
}

/// journald's own audit lines (no `audit(TIME:SERIAL)` id), as in
/// fedora-selinux/selinux-policy#2379 but enforcing, in `journalctl -o short-iso` form: each
/// record is read alone, the call implied by the denial, the date from the ISO prefix.
#[test]
fn journald_audit_lines_are_read_alone() {
    const SAMPLE: &str = r#"2024-10-08T18:42:47+0200 fedora audit[911]: AVC avc:  denied  { write } for  pid=911 comm="systemd-homed" name="home" dev="sda3" ino=196819 scontext=system_u:system_r:systemd_homed_t:s0 tcontext=system_u:object_r:systemd_homed_cache_t:s0 tclass=dir permissive=0
2024-10-08T18:42:47+0200 fedora audit[911]: SYSCALL arch=c000003e syscall=83 success=no exit=-13 a0=55d3 a1=1ed a2=0 a3=0 items=1 ppid=1 pid=911 comm="systemd-homed" exe="/usr/lib/systemd/systemd-homed" key=(null)
"#;
    let scratch = Scratch::new("journald-audit");
    let r = analyze_stdin(&scratch, &["--audit"], SAMPLE);
    assert_eq!(r.failures.len(), 1, "{:#?}", r.failures);
    let (f, finding) = failure_of(&r, 911);
    assert_eq!(
        (f.syscall.as_str(), f.errno.as_str(), f.layer.as_str()),
        ("unknown", "EACCES", "selinux")
    );
    assert_eq!(f.first_at.as_deref(), Some("2024-10-08T16:42:47.000Z"));
    assert!(
        finding
            .fix
            .contains("allow systemd_homed_t systemd_homed_cache_t:dir { write };"),
        "{}",
        finding.fix
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("no event id")),
        "{:?}",
        r.warnings
    );
}
