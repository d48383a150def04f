//! Issue 21: the kernel's flight recorder of recent failures. A failure with an errno diag does
//! not report at once is kept in its process's recorder and handed over when the process shows
//! trouble (writes to stderr, exits non-zero, dies by a signal); a process that recovers keeps it
//! out of the findings. A process the kernel kills (seccomp's SIGSYS) is a finding of its own.

mod common;
use common::fixtures::*;
use common::*;

const BACKENDS: [&str; 2] = ["ebpf", "ptrace"];

/// `mkdir-fails DIR`: mkdir(DIR) (EEXIST when it exists), complain, exit 1.
/// `mkdir-recovers DIR`: the same failure, then carry on silently and exit 0.
/// `seccomp-kill`: a filter that kills the process on uname(2), then uname.
const WORKLOAD_C: &str = r#"
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "mkdir-fails")) {
        if (mkdir(argv[2], 0700)) {
            fprintf(stderr, "setup failed: %s\n", strerror(errno));
            return 1;
        }
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "mkdir-recovers")) {
        if (mkdir(argv[2], 0700) && errno != EEXIST) return 1;
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "seccomp-kill")) {
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_uname, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = { .len = 4, .filter = f };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
            perror("seccomp");
            return 2;
        }
        struct utsname u;
        syscall(SYS_uname, &u);
        return 0;
    }
    return 2;
}
"#;

fn workload(scratch: &Scratch) -> String {
    compile_c(scratch, "workload", WORKLOAD_C, &[])
        .display()
        .to_string()
}

fn is_mkdir(syscall: &str) -> bool {
    syscall == "mkdir" || syscall == "mkdirat"
}

/// The workload in `mode` on `backend`, with an existing directory it mkdirs: the run and the
/// directory.
fn mkdir_run(tag: &str, mode: &str, backend: &str) -> (Scratch, DiagRun, std::path::PathBuf) {
    let scratch = Scratch::new(&format!("{tag}-{backend}"));
    let bin = workload(&scratch);
    let dir = scratch.path("exists");
    std::fs::create_dir(&dir).unwrap();
    let run = diag_run(
        &scratch,
        &["--backend", backend],
        &[&bin, mode, &dir.display().to_string()],
    );
    (scratch, run, dir)
}

#[test]
fn unwatched_errno_then_complaint_is_found() {
    require_privileged!();
    for backend in BACKENDS {
        let (_scratch, run, dir) = mkdir_run("recorder-complains", "mkdir-fails", backend);
        assert_eq!(run.code(), 1, "{backend}: {}", run.stderr());
        let r = run.report();
        let root = r.root_pids[0];
        let (i, f) = failure(r, "mkdir EEXIST", |f| {
            is_mkdir(&f.syscall) && f.errno == "EEXIST" && path_is(f, &dir)
        });
        assert_eq!(f.pid, root, "{backend}: the workload's pid");
        assert_eq!(f.recorded.as_deref(), Some("complained"), "{backend}");
        assert!(f.noise.is_none(), "{backend}: {f:#?}");
        assert!(
            r.findings.iter().any(|x| x.failures.contains(&i)),
            "{backend}: a finding names the failure: {:#?}",
            r.findings
        );
        // diag's own PATH search and pre-exec work never show as the workload's.
        assert!(
            r.failures.iter().all(|f| f.comm.lossy() != "diag"),
            "{backend}: {:#?}",
            r.failures
        );
    }
}

#[test]
fn recovered_failure_is_no_finding() {
    require_privileged!();
    for backend in BACKENDS {
        let (_scratch, run, _) = mkdir_run("recorder-recovers", "mkdir-recovers", backend);
        assert_eq!(run.code(), 0, "{backend}: {}", run.stderr());
        let r = run.report();
        assert!(
            !r.failures.iter().any(|f| is_mkdir(&f.syscall)),
            "{backend}: {:#?}",
            r.failures
        );
        assert!(r.findings.is_empty(), "{backend}: {:#?}", r.findings);
    }
}

/// A seccomp SECCOMP_RET_KILL: the kernel forces the SIGSYS past any tracer (no ptrace
/// signal-delivery stop), so each backend must see the death its own way.
#[test]
fn seccomp_kill_is_a_signal_finding() {
    require_privileged!();
    for backend in BACKENDS {
        let scratch = Scratch::new(&format!("recorder-sigsys-{backend}"));
        let bin = workload(&scratch);
        let run = diag_run(&scratch, &["--backend", backend], &[&bin, "seccomp-kill"]);
        // Killed by SIGSYS: diag exits as the shell would, 128 + 31.
        assert_eq!(
            run.code(),
            128 + libc::SIGSYS,
            "{backend}: {}",
            run.stderr()
        );
        let r = run.report();
        let (i, f) = failure(r, "death by SIGSYS", |f| f.signal.is_some());
        let sig = f.signal.as_ref().unwrap();
        assert_eq!(
            (sig.name.as_str(), sig.code),
            ("SIGSYS", Some(1)),
            "{backend}"
        );
        assert_eq!(f.syscall, "uname", "{backend}");
        assert_eq!(f.pid, r.root_pids[0], "{backend}");
        assert_eq!(
            (f.layer.as_str(), f.confidence.as_str()),
            ("seccomp", "direct"),
            "{backend}"
        );
        assert_eq!(
            r.findings.first().map(|x| x.failures.contains(&i)),
            Some(true),
            "{backend}: {:#?}",
            r.findings
        );
    }
}

#[test]
fn diags_path_search_is_not_the_workloads() {
    require_privileged!();
    let scratch = Scratch::new("recorder-path-search");
    // `true` by name: execvp in the forked child would try each PATH entry before /usr/bin.
    let run = diag_json_with(
        &scratch,
        "run",
        &["--quiet", "--errno", "all", "--", "true"],
        |c| {
            c.env("PATH", "/nonexistent/bin:/usr/local/bin:/usr/bin:/bin");
        },
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    assert!(
        !r.failures
            .iter()
            .any(|f| f.comm.lossy() == "diag" || f.syscall == "execve"),
        "{:#?}",
        r.failures
    );
}
