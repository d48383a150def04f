//! Issue 3's fixtures, one per layer, each a real workload under `diag run` as root; several
//! double as issue 4's catalog reproductions (named after their `reproduced_by:` in
//! causes.yaml). Each asserts the failure's layer and confidence, the finding's cause, layer and
//! the message it explains, and that nothing is blamed on another layer with confidence.
//!
//! Not covered here: Landlock attributed by elimination when the domain was created before
//! tracing started (needs `diag attach`; see tests/attach.rs).

mod common;
use common::fixtures::*;
use common::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn catalog_dac_denied_file() {
    require_privileged!();
    let scratch = Scratch::new("dac");
    let secret = scratch.path("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let s = secret.display().to_string();
    let run = diag_run(&scratch, &["--user", "nobody"], &["cat", &s]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.report();
    let (i, f) = failure(r, "openat of the secret", |f| {
        f.syscall == "openat" && f.errno == "EACCES" && path_is(f, &secret)
    });
    assert_eq!(f.uid, Some(65534));
    assert_eq!((f.layer.as_str(), f.confidence.as_str()), ("dac", "direct"));
    let ev = f.evidence.join("\n");
    assert!(
        ev.contains("-rw-------") && ev.contains("cap_capable refused CAP_DAC_"),
        "{ev}"
    );
    let mi = message(r, "Permission denied");
    assert_finding(r, i, "file-denied", "dac", Some(mi));
    // A PATH search through root-only directories is DAC too (and labelled noise).
    assert_no_wrong_layer(r, &["dac"]);
}

#[test]
fn catalog_seccomp_eperm_filter() {
    require_privileged!();
    let scratch = Scratch::new("seccomp");
    let tool = seccomp_deny_tool(&scratch);
    let dir = scratch.path("newdir");
    let run = diag_run(
        &scratch,
        &[],
        &[
            tool.to_str().unwrap(),
            &libc::SYS_mkdir.to_string(),
            &libc::EPERM.to_string(),
            "mkdir",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.report();
    let (i, f) = failure(r, "mkdir EPERM", |f| {
        f.syscall == "mkdir" && f.errno == "EPERM"
    });
    // The path comes from pt_regs at exit: the call never entered.
    assert!(path_is(f, &dir), "{f:#?}");
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("seccomp", "direct")
    );
    assert!(f.evidence.join(" ").contains("without sys_enter"), "{f:#?}");
    let mi = message(r, "cannot create directory");
    let top = assert_finding(r, i, "seccomp-denied", "seccomp", Some(mi));
    assert!(top.fix.contains("mkdir"), "{}", top.fix);
    assert!(!dir.exists());
    assert_no_wrong_layer(r, &["seccomp"]);
}

const CLONE3_NO_FALLBACK: &str = "import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.syscall(435, 0, 0) < 0:
    print('clone3: ' + os.strerror(ctypes.get_errno()), file=sys.stderr)
    sys.exit(1)";

/// `python3 -c CODE` under diag, behind a seccomp filter that answers clone3 with ENOSYS (as
/// OpenShell's does).
fn python_with_clone3_enosys(scratch: &Scratch, code: &str) -> DiagRun {
    let tool = seccomp_deny_tool(scratch);
    let (nr, errno) = (libc::SYS_clone3.to_string(), libc::ENOSYS.to_string());
    let cmd = [
        tool.to_str().unwrap(),
        &nr,
        &errno,
        "/usr/bin/python3",
        "-c",
        code,
    ];
    diag_run(scratch, &[], &cmd)
}

/// OpenShell's filter answers clone3 with ENOSYS; a program without a fallback fails on it.
#[test]
fn catalog_clone3_enosys() {
    require_privileged!();
    let scratch = Scratch::new("clone3");
    let run = python_with_clone3_enosys(&scratch, CLONE3_NO_FALLBACK);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.report();
    let (i, f) = failure(r, "clone3 ENOSYS", |f| {
        f.syscall == "clone3" && f.errno == "ENOSYS"
    });
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("seccomp", "direct")
    );
    assert_eq!(f.noise, None, "no fallback ran: not noise");
    let mi = message(r, "clone3: Function not implemented");
    assert_finding(r, i, "seccomp-denied", "seccomp", Some(mi));
    assert!(r.findings[0].failures.contains(&i), "{:#?}", r.findings);
    assert_no_wrong_layer(r, &["seccomp"]);
}

/// The same filter under a program whose glibc falls back to clone: benign noise, no finding.
#[test]
fn layer_seccomp_clone3_fallback_is_noise() {
    require_privileged!();
    let scratch = Scratch::new("clone3-fallback");
    let run = python_with_clone3_enosys(
        &scratch,
        "import threading; t = threading.Thread(target=print, args=('thread ran',)); t.start(); t.join()",
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    message(r, "thread ran");
    let (i, f) = failure(r, "clone3 ENOSYS", |f| {
        f.syscall == "clone3" && f.errno == "ENOSYS"
    });
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("seccomp", "direct")
    );
    let noise = f.noise.as_deref().unwrap_or_else(|| panic!("{f:#?}"));
    assert!(noise.contains("falls back to clone"), "{noise}");
    assert!(
        r.findings.iter().all(|x| !x.failures.contains(&i)),
        "noise made a finding: {:#?}",
        r.findings
    );
    assert_no_wrong_layer(r, &["seccomp"]);
}

#[test]
fn catalog_raw_socket_without_cap() {
    require_privileged!();
    let scratch = Scratch::new("rawsock");
    let run = diag_run(
        &scratch,
        &[],
        &[
            "setpriv",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "/usr/bin/python3",
            "-c",
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)",
        ],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.report();
    let (i, f) = failure(r, "socket EPERM", |f| {
        f.syscall == "socket" && f.errno == "EPERM"
    });
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("capability", "direct")
    );
    assert!(f.evidence.join(" ").contains("CAP_NET_RAW"), "{f:#?}");
    let mi = message(r, "PermissionError: [Errno 1] Operation not permitted");
    assert_finding(r, i, "capability-missing", "capability", Some(mi));
    assert_no_wrong_layer(r, &["capability"]);
}

/// execve of a binary with file capabilities (as Debian ships ping) that the process cannot
/// receive: EPERM from the capability layer, not an LSM. The shell that fails stays alive
/// (execfail, then exec sleep) so diag reads its capability sets; the test kills it.
#[test]
fn layer_capability_exec_of_file_caps_binary() {
    require_privileged!();
    let scratch = Scratch::new("fcaps");
    let bin = scratch.path("fcaps-true");
    std::fs::copy("/bin/true", &bin).unwrap();
    set_file_caps(&bin, 1 << 13); // CAP_NET_RAW, effective
    let lingerer = NamespaceHolder::new(&scratch);
    let tried = scratch.path("tried");
    // The launched shell waits until the exec was tried, so diag is still tracing then.
    let script = format!(
        "setpriv --inh-caps=-all --bounding-set=-all /bin/bash -c 'echo $$ > {pid}; shopt -s execfail; exec {bin}; : > {tried}; exec sleep 600' </dev/null >/dev/null 2>&1 &
        while [ ! -e {tried} ]; do sleep 0.05; done",
        pid = lingerer.pid_file.display(),
        bin = bin.display(),
        tried = tried.display()
    );
    let run = diag_run(&scratch, &[], &["/bin/bash", "-c", &script]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let r = run.report();
    let (i, f) = failure(r, "execve EPERM", |f| {
        f.syscall == "execve" && f.errno == "EPERM" && path_is(f, &bin)
    });
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("capability", "inferred")
    );
    let ev = f.evidence.join(" ");
    assert!(
        ev.contains("CAP_NET_RAW") && ev.contains("bounding set (0x0)"),
        "{ev}"
    );
    let mi = message(r, "Operation not permitted");
    assert_finding(r, i, "capability-missing", "capability", Some(mi));
    assert_no_wrong_layer(r, &["capability"]);
}

/// `setcap <caps>+ep` without libcap's tools: `struct vfs_cap_data` revision 2.
fn set_file_caps(path: &std::path::Path, permitted: u32) {
    let mut raw = Vec::new();
    for w in [0x0200_0001u32, permitted, 0, 0, 0] {
        raw.extend_from_slice(&w.to_le_bytes());
    }
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated strings and an owned buffer of the given length.
    let rc = unsafe {
        libc::setxattr(
            c_path.as_ptr(),
            c"security.capability".as_ptr(),
            raw.as_ptr().cast(),
            raw.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
}

/// RLIMIT_NPROC counts every task of the uid on the host, and other tests run workloads as
/// nobody: this one runs as `irc` (uid 39), which nothing else here uses, so the count diag
/// measures is this loop's own. The children live a few seconds, long enough to be counted.
#[test]
fn catalog_bash_fork_under_nproc() {
    require_privileged!();
    let scratch = Scratch::new("nproc");
    let run = diag_run(
        &scratch,
        &["--user", NPROC_USER],
        &[
            "/bin/bash",
            "-c",
            "ulimit -u 3; for i in 1 2 3 4 5; do /bin/sleep 3 & done; wait",
        ],
    );
    let r = run.report();
    let (i, f) = failure(r, "clone EAGAIN", |f| {
        f.syscall == "clone" && f.errno == "EAGAIN"
    });
    assert_eq!(f.layer.as_str(), "rlimit-nproc", "{f:#?}");
    assert_eq!(f.confidence.as_str(), "inferred");
    let ev = f.evidence.join(" ");
    assert!(
        ev.contains("RLIMIT_NPROC: uid 39 ") && ev.contains("soft limit of 3"),
        "{ev}"
    );
    let mi = message(r, "fork: retry: Resource temporarily unavailable");
    assert_finding(r, i, "nproc-exhausted", "rlimit-nproc", Some(mi));
    assert_no_wrong_layer(r, &["rlimit-nproc"]);
}

/// A system user no process on this host runs as (Debian's base-passwd `irc`).
const NPROC_USER: &str = "irc";

#[test]
fn catalog_pids_max_fork_loop() {
    require_privileged!();
    let scratch = Scratch::new("pids");
    let cg = match PidsCgroup::new("pids", 3) {
        Ok(cg) => cg,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let script = format!(
        "echo $$ > {}; for i in 1 2 3 4 5; do /bin/sleep 1 & done; wait",
        cg.procs().display()
    );
    let run = diag_run(&scratch, &[], &["/bin/bash", "-c", &script]);
    let r = run.report();
    let (i, f) = failure(r, "clone EAGAIN", |f| {
        f.syscall == "clone" && f.errno == "EAGAIN"
    });
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("cgroup-pids", "inferred")
    );
    let ev = f.evidence.join(" ");
    assert!(
        ev.contains(&cg.dir.display().to_string()) && ev.contains("of pids.max 3"),
        "{ev}"
    );
    let mi = message(r, "fork: retry: Resource temporarily unavailable");
    let finding = assert_finding(r, i, "pids-limit", "cgroup-pids", Some(mi));
    assert!(
        finding
            .ruled_out
            .iter()
            .any(|x| x.cause == "nproc-exhausted"),
        "{finding:#?}"
    );
    assert_no_wrong_layer(r, &["cgroup-pids"]);
}

/// Starts threads until the kernel refuses one, says so, and exits at once: the usual end of a
/// program whose thread pool hits a limit (rpm-ostree's tokio pool in a CI pod).
const THREAD_SPAWNER_C: &str = r#"
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static void *idle(void *arg) { (void)arg; sleep(5); return NULL; }
int main(void) {
    for (int i = 0; i < 64; i++) {
        pthread_t t;
        int err = pthread_create(&t, NULL, idle, NULL);
        if (err) { fprintf(stderr, "pthread_create: %s\n", strerror(err)); return 1; }
    }
    return 0;
}
"#;

/// A thread refused by a pids cgroup in a process that exits right after: the cgroup and its
/// count are the kernel's at the failure under eBPF (nothing is left to read in /proc by the time
/// the event is examined), and ptrace reads them at the stop.
#[test]
fn thread_refused_by_pids_cgroup_in_a_process_that_exits_at_once() {
    require_privileged!();
    let scratch = Scratch::new("pids-threads");
    let spawner = compile_c(&scratch, "spawner", THREAD_SPAWNER_C, &["-pthread"]);
    for backend in ["ebpf", "ptrace"] {
        let cg = match PidsCgroup::new(&format!("threads-{backend}"), 4) {
            Ok(cg) => cg,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return;
            }
        };
        let script = format!(
            "echo $$ > {}; exec {}",
            cg.procs().display(),
            spawner.display()
        );
        let run = diag_run(
            &scratch,
            &["--backend", backend],
            &["/bin/sh", "-c", &script],
        );
        let r = run.report();
        let (i, f) = failure(r, "clone3 EAGAIN", |f| {
            f.syscall.starts_with("clone") && f.errno == "EAGAIN"
        });
        assert_eq!(f.layer.as_str(), "cgroup-pids", "{backend}: {f:#?}");
        let ev = f.evidence.join(" ");
        assert!(
            ev.contains(&cg.dir.display().to_string()) && ev.contains("of pids.max 4"),
            "{backend}: {ev}"
        );
        let mi = message(r, "pthread_create: Resource temporarily unavailable");
        assert_finding(r, i, "pids-limit", "cgroup-pids", Some(mi));
    }
}

/// A relative exec path, in a shell that exits right after: the kernel names the cwd the path
/// was relative to at the failure, so the script (whose `#!` line ends in a CR) is found and
/// read although /proc/PID/cwd is gone by the time the failure is examined.
#[test]
fn relative_path_of_a_process_gone_is_resolved_against_its_cwd_at_the_failure() {
    require_privileged!();
    for backend in ["ebpf", "ptrace"] {
        let scratch = Scratch::new(&format!("relative-{backend}"));
        let dir = scratch.path("work");
        std::fs::create_dir(&dir).unwrap();
        let script = dir.join("run.sh");
        std::fs::write(&script, "#!/bin/sh\r\necho hi\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let cmd = format!("cd {} && exec ./run.sh", dir.display());
        let run = diag_run(&scratch, &["--backend", backend], &["/bin/sh", "-c", &cmd]);
        let r = run.report();
        let (i, _) = failure(r, "execve ENOENT ./run.sh", |f| {
            f.syscall == "execve"
                && f.errno == "ENOENT"
                && f.path.as_ref().is_some_and(|p| p.lossy() == "./run.sh")
        });
        let finding = r
            .findings
            .iter()
            .find(|g| g.failures.contains(&i))
            .unwrap_or_else(|| panic!("{backend}: no finding holds the exec: {r:#?}"));
        assert_eq!(
            finding.cause, "interpreter-missing",
            "{backend}: {finding:#?}"
        );
        let ev = finding.evidence.join(" ");
        assert!(
            ev.contains("./run.sh exists") && ev.contains("/bin/sh\\r"),
            "{backend}: the script read, and the CR the kernel looked for: {finding:#?}"
        );
    }
}

/// A private mount namespace with `mount_opts` on `scratch/mnt`, kept alive by a holder while
/// diag reads it; then `then` runs in it.
fn in_private_mount(
    scratch: &Scratch,
    holder: &NamespaceHolder,
    mount_opts: &str,
    then: &str,
) -> DiagRun {
    let mnt = scratch.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let script = format!(
        "mount --make-rprivate / && mount -t tmpfs -o {mount_opts} tmpfs {m} && {then}",
        m = mnt.display(),
        then = then
            .replace("{mnt}", &mnt.display().to_string())
            .replace("{holder}", &holder.shell())
    );
    diag_run(scratch, &[], &["unshare", "-m", "/bin/bash", "-c", &script])
}

#[test]
fn catalog_exec_on_noexec_mount() {
    require_privileged!();
    let scratch = Scratch::new("noexec");
    let holder = NamespaceHolder::new(&scratch);
    let run = in_private_mount(
        &scratch,
        &holder,
        "noexec",
        "cp /bin/true {mnt}/ && {holder} && {mnt}/true",
    );
    assert_eq!(run.code(), 126, "{}", run.stderr());
    let r = run.report();
    let exe = scratch.path("mnt").join("true");
    let (i, f) = failure(r, "execve EACCES", |f| {
        f.syscall == "execve" && f.errno == "EACCES" && path_is(f, &exe)
    });
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("mount-noexec", "inferred")
    );
    assert!(f.evidence.join(" ").contains("mounted noexec"), "{f:#?}");
    let mi = message(r, "Permission denied");
    let finding = assert_finding(r, i, "exec-noexec", "mount-noexec", Some(mi));
    assert!(finding.fix.contains("remount"), "{}", finding.fix);
    assert_no_wrong_layer(r, &["mount-noexec"]);
    // The mount lived only in the private namespace.
    assert!(!std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&scratch.path("mnt").display().to_string()));
}

#[test]
fn catalog_read_only_fs() {
    require_privileged!();
    let scratch = Scratch::new("erofs");
    let holder = NamespaceHolder::new(&scratch);
    let run = in_private_mount(&scratch, &holder, "ro", "{holder} && touch {mnt}/file");
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.report();
    let file = scratch.path("mnt").join("file");
    let (i, f) = failure(r, "openat EROFS", |f| {
        f.errno == "EROFS" && path_is(f, &file)
    });
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("mount-ro", "direct")
    );
    let mnt = scratch.path("mnt").display().to_string();
    assert!(
        f.evidence
            .join(" ")
            .contains(&format!("{mnt} (tmpfs) is mounted ro")),
        "{f:#?}"
    );
    let mi = message(r, "Read-only file system");
    let finding = assert_finding(r, i, "read-only-fs", "mount-ro", Some(mi));
    assert!(finding.fix.contains(&mnt), "{}", finding.fix);
    assert_no_wrong_layer(r, &["mount-ro"]);
}

/// setsid() by a process-group leader is EPERM from no permission layer at all: diag must say
/// it does not know, listing the failure, rather than force a cause.
#[test]
fn unknown_failure_gets_an_honest_unknown_finding() {
    require_privileged!();
    let scratch = Scratch::new("unknown");
    let run = diag_run(
        &scratch,
        &[],
        &[
            "/usr/bin/python3",
            "-c",
            "import os; os.setpgid(0, 0); os.setsid()",
        ],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.report();
    let (i, f) = failure(r, "setsid EPERM", |f| {
        f.syscall == "setsid" && f.errno == "EPERM"
    });
    assert_eq!(
        (f.layer.as_str(), f.confidence.as_str()),
        ("unknown", "unknown")
    );
    let finding = assert_finding(r, i, "unknown", "unknown", None);
    assert!(finding.summary.contains("setsid"), "{}", finding.summary);
    assert_no_wrong_layer(r, &[]);
}

/// A file mapped PROT_EXEC from a noexec mount in a private namespace, by a process that keeps
/// it open a while or exits at once (taking its namespace with it): both backends judge it
/// mount-noexec on the fd's file, ptrace stopped at the failure, eBPF from the file the kernel
/// found behind the descriptor when the call failed (its path walked up through its mounts, its
/// mount's flags read there), which is direct evidence.
#[test]
fn prot_exec_mapping_on_a_noexec_mount_alive_and_gone() {
    require_privileged!();
    for backend in ["ptrace", "ebpf"] {
        for (linger, seconds) in [("alive", "1"), ("gone", "0")] {
            let scratch = Scratch::new(&format!("mmap-noexec-{backend}-{linger}"));
            let mnt = scratch.path("mnt");
            std::fs::create_dir(&mnt).unwrap();
            let lib = mnt.join("lib.so");
            let py = format!(
                "import mmap, time\nf = open('{l}', 'rb')\ntry:\n    mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ | mmap.PROT_EXEC)\nexcept OSError as e:\n    print(e)\ntime.sleep({seconds})\n",
                l = lib.display()
            );
            let script = format!(
                "mount --make-rprivate / && mount -t tmpfs -o noexec tmpfs {m} && echo x > {l} && exec python3 -c \"$0\"",
                m = mnt.display(),
                l = lib.display()
            );
            let run = diag_run(
                &scratch,
                &["--backend", backend],
                &["unshare", "-m", "/bin/bash", "-c", &script, &py],
            );
            let r = run.report();
            let what = format!("{backend}, {linger}");
            let (_, f) = failure(r, "mmap EPERM", |f| {
                f.syscall == "mmap" && f.errno == "EPERM"
            });
            assert!(path_is(f, &lib), "{what}: {f:#?}");
            assert_eq!(f.layer.as_str(), "mount-noexec", "{what}: {f:#?}");
            let ev = f.evidence.join(" ");
            assert!(ev.contains("mounted noexec"), "{what}: {f:#?}");
            if backend == "ebpf" {
                assert_eq!(f.confidence.as_str(), "direct", "{what}: {f:#?}");
                assert!(
                    ev.contains(&format!("on {} (tmpfs), mounted noexec", mnt.display())),
                    "{what}: the mount point walked by the kernel and its filesystem: {ev}"
                );
            }
            assert!(
                !f.ruled_out.iter().any(|o| o.cause == "mount-noexec"),
                "{what}: {f:#?}"
            );
        }
    }
}
