//! The ptrace backend (issue 5), end to end: the seed case, exit statuses, the unprivileged
//! fallback of `--backend auto`, and `--no-prefilter` against a real seccomp filter.

mod common;
use common::*;
use std::process::Command;

/// Why ptrace of our own children cannot work here, if it cannot.
fn ptrace_skip_reason() -> Option<String> {
    match std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope") {
        Ok(s) if s.trim() == "3" => {
            Some("kernel.yama.ptrace_scope is 3: ptrace is disabled".into())
        }
        _ => None,
    }
}

macro_rules! require_ptrace {
    () => {
        if let Some(reason) = ptrace_skip_reason() {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
}

/// Switching to an unprivileged user needs root.
fn require_root() -> Option<String> {
    // SAFETY: no preconditions.
    (unsafe { libc::geteuid() } != 0).then(|| "needs root to switch to uid 65534".into())
}

fn run_ptrace(scratch: &Scratch, args: &[&str]) -> DiagRun {
    let mut all = vec!["--backend", "ptrace"];
    all.extend(args);
    diag_json(scratch, "run", &all)
}

#[test]
fn seed_case_under_ptrace_finds_the_ptmx_denial_and_its_message() {
    require_ptrace!();
    let scratch = Scratch::new("ptrace-seed");
    let tmux = TmuxSocket::new("ptrace-seed");
    let cmd = seed_command(&tmux);
    let args = after_dashes(&cmd);
    let run = run_ptrace(&scratch, &args);
    assert_eq!(
        run.code(),
        1,
        "tmux's own status; stderr:\n{}",
        run.stderr()
    );
    let r = run.report();
    assert_eq!((r.backend.as_str(), r.mode.as_str()), ("ptrace", "run"));
    assert_eq!(r.exit_status, Some(1));

    let (i, f) = ptmx_failure(r)
        .unwrap_or_else(|| panic!("no openat /dev/ptmx EACCES in {:#?}", r.failures));
    let root = r.root_pids[0];
    assert_ne!(f.pid, root, "the failure is in a descendant");
    assert!(
        is_descendant(r, f.pid, root),
        "pid {} is not below {root}",
        f.pid
    );
    assert_eq!(f.comm.lossy(), "tmux: server");
    assert_eq!(f.flags.as_deref(), Some("O_RDWR"));
    // The Landlock calls of `diag sandbox` were traced, so the domain is direct evidence.
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("landlock", "direct")
    );
    assert!(
        f.evidence.join("\n").contains("/dev/ptmx needs"),
        "{:?}",
        f.evidence
    );

    assert_seed_finding(r, i);
    let top = &r.findings[0];
    // Seccomp is ruled out by the prefilter's own stop, not assumed.
    let seccomp = top.ruled_out.iter().find(|x| x.cause == "seccomp-denied");
    assert!(seccomp.is_some(), "{:#?}", top.ruled_out);

    assert!(
        r.probes
            .attached
            .iter()
            .any(|p| p.starts_with("seccomp/prefilter")),
        "{:?}",
        r.probes.attached
    );
    assert!(
        r.probes
            .missing
            .iter()
            .any(|m| m.probe.starts_with("ebpf/")),
        "{:?}",
        r.probes.missing
    );
}

#[test]
fn exit_status_is_the_commands_own() {
    require_ptrace!();
    assert_exit_statuses_are_the_commands_own(&Scratch::new("ptrace-status"), "ptrace");
}

#[test]
fn auto_falls_back_to_ptrace_for_an_unprivileged_user() {
    require_ptrace!();
    if let Some(reason) = require_root() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let scratch = Scratch::new("ptrace-auto");
    // uid 65534 must be able to write the report here.
    std::fs::set_permissions(
        &scratch.0,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let json = scratch.path("report.json");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(diag_bin())
        .args(["run", "--backend", "auto", "--quiet", "--json"])
        .arg(&json)
        .args(["--", "sh", "-c", "cat /etc/shadow; exit 4"])
        .output()
        .expect("setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    let notes: Vec<&str> = err.lines().filter(|l| l.starts_with("diag: ")).collect();
    assert_eq!(notes.len(), 1, "{err}");
    assert!(
        notes[0].contains("needs root") && notes[0].contains("using the ptrace backend"),
        "{err}"
    );
    let r: diag::report::Report =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r.backend, "ptrace");
    assert_eq!(r.exit_status, Some(4));
    let f = r
        .failures
        .iter()
        .find(|f| f.path.as_ref().is_some_and(|p| p.lossy() == "/etc/shadow"))
        .unwrap_or_else(|| panic!("{:#?}", r.failures));
    assert_eq!((f.syscall.as_str(), f.errno.as_str()), ("openat", "EACCES"));
    assert_eq!(f.comm.lossy(), "cat");
    assert_eq!(f.layer.as_str(), "dac");
    assert!(
        r.messages
            .iter()
            .any(|m| m.text.lossy() == "cat: /etc/shadow: Permission denied"),
        "{:#?}",
        r.messages
    );
}

/// Python that installs a real seccomp filter refusing mkdir/mkdirat with EPERM (through
/// ctypes, so no compiler is needed), then tries to create `argv[1]` (with `exec` as
/// `argv[2]`: has mkdir(1) try, under the inherited filter).
const SECCOMP_MKDIR: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class Insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Insn))]
EPERM = 0x00050000 | 1
ALLOW = 0x7fff0000
AUDIT_ARCH_X86_64 = 0xc000003e
prog = [(0x20, 0, 0, 4), (0x15, 1, 0, AUDIT_ARCH_X86_64), (0x06, 0, 0, ALLOW),
        (0x20, 0, 0, 0), (0x15, 0, 1, 83), (0x06, 0, 0, EPERM),
        (0x15, 0, 1, 258), (0x06, 0, 0, EPERM), (0x06, 0, 0, ALLOW)]
insns = (Insn * len(prog))(*[Insn(*i) for i in prog])
if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(Prog(len(prog), insns)), 0, 0) != 0:
    sys.exit("cannot install the seccomp filter")
if sys.argv[2:] == ["exec"]:
    os.execv("/bin/mkdir", ["mkdir", sys.argv[1]])
try:
    os.mkdir(sys.argv[1])
except OSError as e:
    print(f"mkdir failed: {e.strerror}", file=sys.stderr)
    sys.exit(3)
"#;

/// The sandbox's filter refuses mkdir with EPERM; its ERRNO outranks diag's TRACE, so the call
/// never stops at diag's filter. diag sees it anyway: a process with a filter of its own stops
/// at every syscall entry (`--no-prefilter` always does), and "entry, no seccomp stop" is the
/// refusal. `then_exec`: the filtered process execs mkdir(1), which inherits the filter.
fn sees_a_seccomp_refusal(extra: &[&str], then_exec: bool) {
    require_ptrace!();
    // One scratch directory per variant: the tests run in parallel.
    let scratch = Scratch::new(&format!("ptrace-seccomp{}-{then_exec}", extra.join("")));
    let script = scratch.path("seccomp_mkdir.py");
    std::fs::write(&script, SECCOMP_MKDIR).unwrap();
    let target = scratch.path("never-created");
    let (script, target) = (script.to_str().unwrap(), target.to_str().unwrap());
    let mut args = extra.to_vec();
    args.extend(["--quiet", "--", "/usr/bin/python3", script, target]);
    if then_exec {
        args.push("exec");
    }
    let run = run_ptrace(&scratch, &args);
    assert_eq!(
        run.code(),
        if then_exec { 1 } else { 3 },
        "{}",
        run.stderr()
    );
    let r = run.report();
    let f = r
        .failures
        .iter()
        .find(|f| {
            f.syscall.starts_with("mkdir") && f.path.as_ref().is_some_and(|p| p.lossy() == target)
        })
        .unwrap_or_else(|| panic!("mkdir not seen: {:#?}", r.failures));
    assert_eq!(f.errno, "EPERM");
    // The root pid is python's; mkdir(1) keeps it across exec.
    assert_eq!(f.pid, r.root_pids[0]);
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("seccomp", "direct")
    );
    assert!(
        f.evidence
            .iter()
            .any(|e| e.contains("never at diag's SECCOMP_RET_TRACE filter")),
        "{:?}",
        f.evidence
    );
    assert_eq!(r.findings[0].cause, "seccomp-denied", "{:#?}", r.findings);
    assert!(r.findings[0]
        .failures
        .iter()
        .any(|&i| std::ptr::eq(&r.failures[i], f)));
    assert!(!std::path::Path::new(target).exists());
}

#[test]
fn prefilter_sees_a_refusal_by_a_filter_installed_in_the_tree() {
    sees_a_seccomp_refusal(&[], false);
}

#[test]
fn prefilter_sees_a_refusal_by_an_inherited_filter_after_exec() {
    sees_a_seccomp_refusal(&[], true);
}

#[test]
fn no_prefilter_sees_and_names_a_seccomp_refusal() {
    sees_a_seccomp_refusal(&["--no-prefilter"], false);
}

/// strace cannot trace what diag already traces: its PTRACE_TRACEME fails with EPERM, and
/// the report says that failure is diag's.
#[test]
fn a_programs_ptrace_refused_because_diag_traces_it_is_labelled_as_diags() {
    require_ptrace!();
    if !std::path::Path::new("/usr/bin/strace").exists() {
        eprintln!("SKIPPED: /usr/bin/strace is not installed");
        return;
    }
    let scratch = Scratch::new("ptrace-interference");
    let run = run_ptrace(
        &scratch,
        &[
            "--quiet",
            "--",
            "/usr/bin/strace",
            "-o",
            "/dev/null",
            "/bin/true",
        ],
    );
    let r = run.report();
    let f = r
        .failures
        .iter()
        .find(|f| f.syscall == "ptrace")
        .unwrap_or_else(|| panic!("ptrace not seen: {:#?}", r.failures));
    assert_eq!(f.errno, "EPERM");
    assert_eq!(f.pid, r.root_pids[0]);
    assert_eq!(f.confidence.as_str(), "direct");
    assert!(
        f.evidence
            .iter()
            .any(|e| e.contains("diag's own interference")),
        "{:?}",
        f.evidence
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("diag's ptrace backend already traces")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_closed_dup_of_stderr_stops_being_a_message_stream() {
    require_ptrace!();
    let scratch = Scratch::new("ptrace-close");
    // The unwatched close() is settled at its seccomp stop, without an exit stop: the fd number
    // it frees, reused by a memfd (not an open, which would reset the number anyway), must no
    // longer count as stderr.
    let script = "import os\nd = os.dup(2)\nos.write(d, b'via the dup\\n')\nos.close(d)\nm = os.memfd_create('x')\nassert m == d, (m, d)\nos.write(m, b'into a memfd\\n')\n";
    // close is not among the watched syscalls (by default every syscall is).
    let args = [
        "--quiet",
        "--syscalls",
        "openat",
        "--",
        "/usr/bin/python3",
        "-c",
        script,
    ];
    let run = run_ptrace(&scratch, &args);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    let texts: Vec<String> = r.messages.iter().map(|m| m.text.lossy()).collect();
    assert!(texts.iter().any(|t| t.contains("via the dup")), "{texts:?}");
    assert!(
        !texts.iter().any(|t| t.contains("into a memfd")),
        "{texts:?}"
    );
    // As root the CPUs are held awake while tracing (the report says whether they were).
    let hold = "pm_qos/cpu_dma_latency=0: idle CPUs poll between stops";
    let held = r.probes.attached.iter().any(|p| p == hold);
    let declined = r.probes.missing.iter().any(|m| m.probe == hold);
    assert!(held || declined, "{:?}", r.probes);
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!(held, "root may write /dev/cpu_dma_latency: {:?}", r.probes);
    }
}
