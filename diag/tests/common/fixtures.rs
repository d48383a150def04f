//! Real sandboxes for the layer fixtures and catalog reproductions: each guard removes what it
//! created when dropped, so a failing test cleans up too.

use super::{diag_json, DiagRun, Scratch};
use diag::report::model::{FailureEntry, Finding};
use diag::report::Report;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A seccomp filter that answers one syscall with one errno, then execs a command; compiled
/// with gcc at test time (as OpenShell's supervisor installs its filter before exec).
const SECCOMP_DENY_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s NR ERRNO CMD...\n", argv[0]); return 2; }
    unsigned nr = atoi(argv[1]), err = atoi(argv[2]);
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = 4, .filter = f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
        perror("seccomp"); return 2;
    }
    execvp(argv[3], argv + 3);
    perror(argv[3]);
    return 127;
}
"#;

/// Builds the seccomp helper in `scratch`; returns its path.
pub fn seccomp_deny_tool(scratch: &Scratch) -> PathBuf {
    compile_c(scratch, "seccomp_deny", SECCOMP_DENY_C, &[])
}

/// Compiles the C program `source` with gcc (and `flags`) to `scratch/name`; returns its path.
pub fn compile_c(scratch: &Scratch, name: &str, source: &str, flags: &[&str]) -> PathBuf {
    let src = scratch.path(&format!("{name}.c"));
    let bin = scratch.path(name);
    std::fs::write(&src, source).unwrap();
    let out = Command::new("gcc")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .args(flags)
        .output()
        .expect("gcc");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// Runs `diag run --json ... [extra] -- cmd...`.
pub fn diag_run(scratch: &Scratch, extra: &[&str], cmd: &[&str]) -> DiagRun {
    let mut args: Vec<&str> = vec!["--quiet"];
    args.extend(extra);
    args.push("--");
    args.extend(cmd);
    diag_json(scratch, "run", &args)
}

/// The index and entry of the first failure matching `pred`, or a panic listing them all.
pub fn failure<'r>(
    r: &'r Report,
    what: &str,
    pred: impl Fn(&FailureEntry) -> bool,
) -> (usize, &'r FailureEntry) {
    r.failures
        .iter()
        .enumerate()
        .find(|(_, f)| pred(f))
        .unwrap_or_else(|| panic!("no failure {what} in {:#?}", r.failures))
}

pub fn path_is(f: &FailureEntry, path: &Path) -> bool {
    f.path
        .as_ref()
        .is_some_and(|p| p.lossy() == path.display().to_string())
}

/// The index of the message containing `needle`.
pub fn message(r: &Report, needle: &str) -> usize {
    r.messages
        .iter()
        .position(|m| m.text.lossy().contains(needle))
        .unwrap_or_else(|| panic!("no message with {needle:?} in {:#?}", r.messages))
}

/// The finding resting on failure `fi`, checked for cause and layer and that it explains message `mi`.
pub fn assert_finding(
    r: &Report,
    fi: usize,
    cause: &str,
    layer: &str,
    mi: Option<usize>,
) -> Finding {
    let f = r
        .findings
        .iter()
        .find(|x| x.failures.contains(&fi))
        .unwrap_or_else(|| panic!("no finding rests on failure {fi}: {:#?}", r.findings));
    assert_eq!(
        (f.cause.as_str(), f.layer.as_str()),
        (cause, layer),
        "{f:#?}"
    );
    if let Some(mi) = mi {
        assert!(
            f.explains.contains(&mi),
            "message {mi} not explained: {f:#?}"
        );
    }
    f.clone()
}

/// The fixture's premise: nothing is blamed on another layer with direct or inferred confidence.
/// `allowed` lists the layers this workload really meets.
pub fn assert_no_wrong_layer(r: &Report, allowed: &[&str]) {
    for f in &r.failures {
        let sure = matches!(f.confidence.as_str(), "direct" | "inferred");
        assert!(
            !sure || f.layer.as_str() == "unknown" || allowed.contains(&f.layer.as_str()),
            "{} {} {:?} attributed to {} ({}) here: {:#?}",
            f.syscall,
            f.errno,
            f.path.as_ref().map(|p| p.lossy()),
            f.layer.as_str(),
            f.confidence.as_str(),
            f
        );
    }
}

/// A process left running to keep a private mount namespace alive while diag reads it; killed
/// on drop. The workload writes its pid to `pid_file`.
pub struct NamespaceHolder {
    pub pid_file: PathBuf,
}

impl NamespaceHolder {
    pub fn new(scratch: &Scratch) -> Self {
        NamespaceHolder {
            pid_file: scratch.path("holder.pid"),
        }
    }

    /// Shell text that starts the holder in the current namespace.
    pub fn shell(&self) -> String {
        // Its stdio must not hold the test's pipes open.
        format!(
            "{{ sleep 600 </dev/null >/dev/null 2>&1 & echo $! > {}; }}",
            self.pid_file.display()
        )
    }
}

impl Drop for NamespaceHolder {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        if let Some(pid) = pid.filter(|&p| p > 1) {
            // SAFETY: a plain kill of the holder this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// A pids cgroup the test creates, with `pids.max`; its tasks are killed and it is removed on
/// drop. Uses whichever hierarchy carries the pids controller (v1, v2 or hybrid).
pub struct PidsCgroup {
    pub dir: PathBuf,
}

impl PidsCgroup {
    pub fn new(tag: &str, max: u32) -> Result<Self, String> {
        let (v1, v2) = diag::context::cgroup::mounts();
        let v2_pids = v2.filter(|m| {
            std::fs::read_to_string(m.join("cgroup.subtree_control"))
                .is_ok_and(|c| c.split_whitespace().any(|k| k == "pids"))
        });
        let parent = v1
            .or(v2_pids)
            .ok_or("no cgroup hierarchy with the pids controller enabled")?;
        let dir = parent.join(format!("diag-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let cg = PidsCgroup { dir };
        std::fs::write(cg.dir.join("pids.max"), max.to_string()).map_err(|e| e.to_string())?;
        Ok(cg)
    }

    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            let procs = std::fs::read_to_string(self.procs()).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: a plain kill of a task in the cgroup this test created.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// A 0600 root-owned file in a scratch dir others can traverse: opening it as nobody is EACCES.
pub fn secret(scratch: &Scratch, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&scratch.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = scratch.path(name);
    std::fs::write(&p, "x").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

pub const AS_NOBODY: &str = "setpriv --reuid=65534 --regid=65534 --clear-groups";

/// A stand-in sandbox supervisor: starts a daemon in a session of its own (the orphan it leaves
/// behind), makes one open denied to nobody, and exits 3. The orphan's session is SIGKILLed on
/// drop.
pub struct Supervisor {
    pub secret: PathBuf,
    orphan_pid: PathBuf,
    script: String,
}

impl Supervisor {
    /// `gate`: shell run first (waiting for the test's go); `orphan`: the daemon's shell.
    pub fn new(scratch: &Scratch, gate: &str, orphan: &str) -> Self {
        let secret = secret(scratch, "supervised-secret");
        let orphan_pid = scratch.path("orphan.pid");
        let script = format!(
            "{gate}setsid sh -c 'echo $$ > {}; {orphan}' </dev/null >/dev/null 2>&1 & \
             while [ ! -s {0} ]; do sleep 0.01; done; {AS_NOBODY} cat {} 2>/dev/null; exit 3",
            orphan_pid.display(),
            secret.display()
        );
        Supervisor {
            secret,
            orphan_pid,
            script,
        }
    }

    /// `sh -c SCRIPT`.
    pub fn command(&self) -> [&str; 3] {
        ["sh", "-c", &self.script]
    }

    /// The orphan's pid (its session's leader).
    pub fn orphan(&self) -> i32 {
        std::fs::read_to_string(&self.orphan_pid)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    pub fn orphan_running(&self) -> bool {
        diag::cli::live::alive(self.orphan() as u32)
    }

    /// Whether a report's warning names the orphan (a `sleep`) as left running.
    pub fn named_left_running(&self, r: &Report) -> bool {
        let orphan = format!("{} (sleep)", self.orphan());
        r.warnings
            .iter()
            .any(|w| w.starts_with("left running when tracing ended: ") && w.contains(&orphan))
    }

    /// Whether a report found the supervisor's denial.
    pub fn denial_in(&self, r: &Report) -> bool {
        r.failures
            .iter()
            .any(|f| path_is(f, &self.secret) && f.errno == "EACCES")
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.orphan_pid) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // SAFETY: plain syscall; the orphan's session leader leads its process group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
        }
    }
}
