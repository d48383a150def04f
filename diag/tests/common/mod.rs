//! Helpers for diag's end-to-end tests: run the real binary, read its real report.
#![allow(dead_code)] // each test binary uses a different subset

use diag::report::Report;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

pub mod fixtures;

pub fn diag_bin() -> &'static str {
    env!("CARGO_BIN_EXE_diag")
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn example(name: &str) -> PathBuf {
    workspace().join("examples").join(name)
}

/// Why privileged end-to-end tests cannot run here, if they cannot.
pub fn privileged_skip_reason() -> Option<String> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to load eBPF programs".into());
    }
    if let Some(reason) = diag::capture::ebpf::missing_reason() {
        return Some(format!("eBPF backend not built in: {reason}"));
    }
    None
}

/// Skips the calling test (with a one-line reason) when it cannot run here.
#[macro_export]
macro_rules! require_privileged {
    () => {
        if let Some(reason) = common::privileged_skip_reason() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}

/// A scratch directory removed on drop, even when the test fails.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("diag-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Created afresh, never reused: root runs binaries from it, and the name is guessable.
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("{} was taken again at once: {e}", dir.display()));
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A private tmux server (own socket) killed on drop.
/// What tmux prints in the seed case (the misleading message).
pub const TMUX_FAIL: &str = "create window failed: fork failed: Permission denied";

/// The seed report's top finding: `pty-denied` in Landlock, naming failure `i` and explaining
/// tmux's message.
pub fn assert_seed_finding(r: &Report, i: usize) {
    let mi = r
        .messages
        .iter()
        .position(|m| m.text.lossy() == TMUX_FAIL)
        .unwrap_or_else(|| panic!("message missing: {:#?}", r.messages));
    let top = &r.findings[0];
    assert_eq!(
        (top.cause.as_str(), top.layer.as_str()),
        ("pty-denied", "landlock")
    );
    assert!(top.failures.contains(&i), "{top:#?}");
    assert!(top.explains.contains(&mi), "{top:#?}");
}

pub struct TmuxSocket(pub String);

impl TmuxSocket {
    pub fn new(tag: &str) -> Self {
        TmuxSocket(format!("diag-{tag}-{}", std::process::id()))
    }

    /// `tmux -L SOCKET new-session -d -s t 'sleep 30'`: the seed case's command.
    pub fn new_session(&self) -> [&str; 8] {
        [
            "tmux",
            "-L",
            &self.0,
            "new-session",
            "-d",
            "-s",
            "t",
            "sleep 30",
        ]
    }
}

impl Drop for TmuxSocket {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

pub struct DiagRun {
    pub output: Output,
    pub report: Option<Report>,
}

impl DiagRun {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn report(&self) -> &Report {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("no report; stderr:\n{}", self.stderr()))
    }
}

/// `diag` with the CI variables of whatever runs the tests removed, so CI mode is only on where
/// a test turns it on.
pub fn diag_command() -> Command {
    let mut cmd = Command::new(diag_bin());
    // cargo points LD_LIBRARY_PATH into /root/.rustup; a workload run as another user would
    // probe it (EACCES) before finding its libraries.
    for var in [
        "GITHUB_ACTIONS",
        "GITHUB_STEP_SUMMARY",
        "RUNNER_TEMP",
        "DIAG_BTF_PATH",
        "LD_LIBRARY_PATH",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `diag <args>` with `--json` added after the subcommand, and parses the report (which is
/// checked against docs/report-schema.json first).
pub fn diag_json(scratch: &Scratch, subcommand: &str, args: &[&str]) -> DiagRun {
    diag_json_with(scratch, subcommand, args, |_| {})
}

/// [`diag_json`] with the command adjusted first (environment, working directory).
pub fn diag_json_with(
    scratch: &Scratch,
    subcommand: &str,
    args: &[&str],
    adjust: impl FnOnce(&mut Command),
) -> DiagRun {
    let json = scratch.path(&format!("report-{}.json", rand_tag()));
    let mut cmd = diag_command();
    cmd.arg(subcommand).arg("--json").arg(&json).args(args);
    adjust(&mut cmd);
    let output = cmd.output().expect("run diag");
    let report = std::fs::read_to_string(&json).ok().map(|t| {
        assert_valid_report(&t);
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("invalid report JSON ({e}):\n{t}"))
    });
    DiagRun { output, report }
}

/// Checks a report against `docs/report-schema.json`, listing every violation.
pub fn assert_valid_report(json_text: &str) {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let path = workspace().join("docs/report-schema.json");
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read the schema"))
                .expect("the schema is JSON");
        // Closed: every field and vocabulary value diag writes must be in the schema.
        jsonschema::draft202012::new(&diag::report::schema::closed(schema))
            .expect("the schema compiles")
    });
    let instance: serde_json::Value = serde_json::from_str(json_text)
        .unwrap_or_else(|e| panic!("invalid report JSON ({e}):\n{json_text}"));
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("  {} (at {})", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the report violates docs/report-schema.json:\n{}\n{json_text}",
        errors.join("\n")
    );
}

fn rand_tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The seed case: tmux's `new-session -d` (on `tmux`'s own socket) inside the bundled sandbox,
/// which does not grant /dev/pts.
pub fn seed_command(tmux: &TmuxSocket) -> Vec<String> {
    sandboxed(&example("openclaw-sandbox.yaml"), &tmux.new_session())
}

/// `--` followed by `cmd`: the tail of a `diag run` command line.
pub fn after_dashes(cmd: &[String]) -> Vec<&str> {
    std::iter::once("--")
        .chain(cmd.iter().map(String::as_str))
        .collect()
}

/// The seed failure: openat("/dev/ptmx") = -EACCES, with its index in `failures`.
pub fn ptmx_failure(r: &Report) -> Option<(usize, &diag::report::model::FailureEntry)> {
    r.failures.iter().enumerate().find(|(_, f)| {
        f.syscall == "openat"
            && f.errno == "EACCES"
            && f.path.as_ref().is_some_and(|p| p.lossy() == "/dev/ptmx")
    })
}

/// The seed sandbox command: `diag sandbox --policy <policy> -- <cmd...>`.
pub fn sandboxed(policy: &Path, cmd: &[&str]) -> Vec<String> {
    let mut v = vec![
        diag_bin().to_string(),
        "sandbox".into(),
        "--policy".into(),
        policy.display().to_string(),
        "--".into(),
    ];
    v.extend(cmd.iter().map(|s| s.to_string()));
    v
}

/// Is `pid` a descendant of `ancestor` in the report's process table?
pub fn is_descendant(r: &Report, pid: u32, ancestor: u32) -> bool {
    let mut cur = pid;
    for _ in 0..64 {
        match r
            .processes
            .iter()
            .find(|p| p.pid == cur)
            .and_then(|p| p.ppid)
        {
            Some(pp) if pp == ancestor => return true,
            Some(pp) => cur = pp,
            None => return false,
        }
    }
    false
}

/// `diag run --backend BACKEND` exits with the command's own status (0, 7, and 128+9 for a
/// SIGKILL), and the report carries it.
pub fn assert_exit_statuses_are_the_commands_own(scratch: &Scratch, backend: &str) {
    for (cmd, code) in [
        (&["true"][..], 0),
        (&["sh", "-c", "exit 7"][..], 7),
        (&["sh", "-c", "kill -9 $$"][..], 137),
    ] {
        let mut args = vec!["--backend", backend, "--quiet", "--"];
        args.extend(cmd);
        let run = diag_json(scratch, "run", &args);
        assert_eq!(run.code(), code, "{backend} {cmd:?}: {}", run.stderr());
        let r = run.report();
        assert_eq!((r.backend.as_str(), r.exit_status), (backend, Some(code)));
    }
}

/// Runs `diag attach ARGS --json`, calls `ready` once diag says it is attached, and returns the
/// finished run. Gating workloads on this line keeps the tests free of timing guesses.
pub fn attach_with(scratch: &Scratch, args: &[&str], ready: impl FnOnce(u32)) -> DiagRun {
    attach_in(scratch, args, |_| {}, ready)
}

/// [`attach_with`] with the command adjusted first (its environment).
pub fn attach_in(
    scratch: &Scratch,
    args: &[&str],
    adjust: impl FnOnce(&mut Command),
    ready: impl FnOnce(u32),
) -> DiagRun {
    use std::io::{BufRead, Read};
    let json = scratch.path(&format!("attach-{}.json", args.join("_").replace('/', "_")));
    let mut cmd = Command::new(diag_bin());
    adjust(&mut cmd);
    let mut child = cmd
        .arg("attach")
        .arg("--json")
        .arg(&json)
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("diag: attached to"),
        "diag did not attach: {first}"
    );
    ready(child.id());
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let output = std::process::Output {
        status,
        stdout: vec![],
        stderr: format!("{first}{rest}").into_bytes(),
    };
    let report = std::fs::read_to_string(&json)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap());
    DiagRun { output, report }
}

pub fn touch(path: &std::path::Path) {
    std::fs::write(path, "").unwrap();
}

/// Kills the child on drop.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` with no stdio and without cargo's LD_LIBRARY_PATH (a workload run as another
/// user would probe it), killed when the guard drops.
pub fn spawn_detached(cmd: &[String]) -> Reaped {
    Reaped(
        Command::new(&cmd[0])
            .args(&cmd[1..])
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}
