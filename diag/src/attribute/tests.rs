//! The decision logic on both kinds of kernel: with fexit evidence bits (kernels that allow
//! fentry/fexit) and without them (tracepoints, context and elimination only).

use super::*;
use crate::context::filecaps::FileCaps;
use crate::context::path::{MountFacts, PathFacts};
use crate::context::process::{CAP_DAC_OVERRIDE, CAP_SYS_ADMIN};
use crate::model::{KernelEvidence, Origin, Text};
use std::path::PathBuf;

const NO_FEXIT: ProbesLive = ProbesLive {
    cap_capable: true,
    fexit_landlock: false,
};
const WITH_FEXIT: ProbesLive = ProbesLive {
    cap_capable: true,
    fexit_landlock: true,
};

fn host(lsms: &[&str]) -> HostFacts {
    HostFacts {
        lsms: lsms.iter().map(|s| s.to_string()).collect(),
        bpf_lsm_programs: Some(vec![]),
        ..Default::default()
    }
}

fn failure(syscall: &str, errno: i32, path: Option<&str>) -> Failure {
    Failure {
        origin: Origin {
            pid: 10,
            tid: 10,
            time_ns: 100,
            ..Default::default()
        },
        syscall: syscall.into(),
        errno,
        path: path.map(Text::from),
        flags: Some(0), // O_RDONLY
        ..Default::default()
    }
}

fn user(uid: u32) -> ProcessContext {
    ProcessContext {
        pid: 10,
        ruid: uid,
        euid: uid,
        fsuid: uid,
        egid: uid,
        fsgid: uid,
        seccomp_mode: Some(0),
        cap_effective: if uid == 0 { u64::MAX >> 23 } else { 0 },
        cap_bounding: u64::MAX >> 23,
        ..Default::default()
    }
}

fn file(path: &str, mode: u32, fs: &str, view: View) -> PathFacts {
    PathFacts {
        path: PathBuf::from(path),
        kind: FileKind::Regular,
        mode,
        uid: 0,
        gid: 0,
        resolved: None,
        mount: Some(MountFacts {
            mount_point: PathBuf::from("/"),
            fs_type: fs.into(),
            read_only: false,
            noexec: false,
            nosuid: false,
        }),
        ancestors: vec![(PathBuf::from("/srv"), 0o755, 0, 0)],
        view,
        file_caps: None,
    }
}

fn group(f: Failure, process: Option<ProcessContext>, path: Option<PathFacts>) -> FailureGroup {
    FailureGroup {
        first_ns: f.origin.time_ns,
        last_ns: f.origin.time_ns,
        failure: f,
        count: 1,
        other_pids: 0,
        context: Some(FailureContext {
            process,
            path,
            notes: vec![],
        }),
        flush: None,
    }
}

fn attribute(g: &FailureGroup, lsms: &[&str], probes: ProbesLive) -> Attribution {
    let trace = Trace::new();
    let host = host(lsms);
    Attributor {
        host: &host,
        probes,
        trace: &trace,
    }
    .attribute(g)
}

fn with_evidence(mut f: Failure, e: KernelEvidence) -> Failure {
    f.evidence = e;
    f
}

const LSMS: &[&str] = &["lockdown", "capability", "landlock", "bpf"];

// ---- kernels that allow fexit: the hooks' own verdicts are direct evidence ----

#[test]
fn fexit_landlock_hook_is_direct_even_without_context() {
    let f = with_evidence(
        failure("openat", libc::EACCES, Some("/dev/ptmx")),
        KernelEvidence {
            landlock_denied: true,
            ..Default::default()
        },
    );
    let mut g = group(f, None, None);
    g.context = None;
    let a = attribute(&g, LSMS, WITH_FEXIT);
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::Landlock, Confidence::Direct)
    );
    assert!(a.evidence[0].contains("hook_file_open"), "{:?}", a.evidence);
}

#[test]
fn fexit_generic_permission_is_direct_dac() {
    let f = with_evidence(
        failure("openat", libc::EACCES, Some("/srv/secret")),
        KernelEvidence {
            dac_denied: true,
            ..Default::default()
        },
    );
    let a = attribute(&group(f, None, None), LSMS, WITH_FEXIT);
    assert_eq!((a.layer, a.confidence), (Layer::Dac, Confidence::Direct));
}

#[test]
fn fexit_pids_can_fork_is_direct_even_when_limits_look_fine() {
    let f = with_evidence(
        failure("clone", libc::EAGAIN, None),
        KernelEvidence {
            pids_denied: true,
            ..Default::default()
        },
    );
    let a = attribute(&group(f, Some(user(0)), None), LSMS, WITH_FEXIT);
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::CgroupPids, Confidence::Direct)
    );
}

#[test]
fn fexit_secure_computing_is_direct_seccomp() {
    let f = with_evidence(
        failure("mkdir", libc::EPERM, Some("/tmp/x")),
        KernelEvidence {
            seccomp_denied: true,
            ..Default::default()
        },
    );
    let a = attribute(&group(f, Some(user(0)), None), LSMS, WITH_FEXIT);
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::Seccomp, Confidence::Direct)
    );
}

#[test]
fn security_file_open_names_another_lsm_only_when_landlocks_hook_was_watched() {
    let f = with_evidence(
        failure("openat", libc::EACCES, Some("/srv/data")),
        KernelEvidence {
            lsm_file_open_denied: true,
            ..Default::default()
        },
    );
    let g = group(
        f,
        Some(user(0)),
        Some(file("/srv/data", 0o644, "ext4", View::Own)),
    );
    let a = attribute(&g, LSMS, WITH_FEXIT);
    assert_eq!((a.layer, a.confidence), (Layer::Lsm, Confidence::Direct));
    // Without hook_file_open, the same bit could be Landlock's: fall back to elimination.
    let a = attribute(&g, LSMS, NO_FEXIT);
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::Landlock, Confidence::Inferred)
    );
}

// ---- kernels without fexit: tracepoints, context, elimination ----

#[test]
fn missing_sys_enter_is_direct_seccomp_and_its_presence_excludes_seccomp() {
    let mut f = failure("mkdir", libc::EPERM, Some("/tmp/x"));
    f.evidence.no_enter = true;
    let a = attribute(&group(f, Some(user(0)), None), LSMS, NO_FEXIT);
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::Seccomp, Confidence::Direct)
    );

    let g = group(
        failure("openat", libc::EACCES, Some("/srv/secret")),
        Some(user(1000)),
        Some(file("/srv/secret", 0o600, "ext4", View::Own)),
    );
    let a = attribute(&g, LSMS, NO_FEXIT);
    assert!(
        a.ruled_out.iter().any(|r| r.suspect == "seccomp"),
        "{:?}",
        a.ruled_out
    );
}

#[test]
fn dac_refusal_is_inferred_from_the_mode_and_direct_with_cap_capable() {
    let f = failure("openat", libc::EACCES, Some("/srv/secret"));
    let facts = file("/srv/secret", 0o600, "ext4", View::Own);
    let a = attribute(
        &group(f.clone(), Some(user(1000)), Some(facts.clone())),
        LSMS,
        NO_FEXIT,
    );
    assert_eq!((a.layer, a.confidence), (Layer::Dac, Confidence::Inferred));
    assert!(a.evidence[0].contains("-rw-------"), "{:?}", a.evidence);

    let f = with_evidence(
        f,
        KernelEvidence {
            denied_capability: Some(CAP_DAC_OVERRIDE),
            ..Default::default()
        },
    );
    let a = attribute(&group(f, Some(user(1000)), Some(facts)), LSMS, NO_FEXIT);
    assert_eq!((a.layer, a.confidence), (Layer::Dac, Confidence::Direct));
    assert!(
        a.evidence[0].contains("CAP_DAC_OVERRIDE"),
        "{:?}",
        a.evidence
    );
}

#[test]
fn landlock_by_elimination_lists_each_exclusion() {
    let g = group(
        failure("openat", libc::EACCES, Some("/srv/data")),
        Some(user(0)),
        Some(file("/srv/data", 0o644, "ext4", View::Own)),
    );
    let a = attribute(&g, LSMS, NO_FEXIT);
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::Landlock, Confidence::Inferred)
    );
    assert!(
        a.evidence.last().unwrap().contains("by elimination"),
        "{:?}",
        a.evidence
    );
    let ruled: Vec<&str> = a.ruled_out.iter().map(|r| r.suspect.as_str()).collect();
    for s in [
        "seccomp",
        "dac",
        "filesystem",
        "bpf-lsm",
        "selinux",
        "apparmor",
    ] {
        assert!(ruled.contains(&s), "{s} not excluded: {ruled:?}");
    }
}

#[test]
fn landlock_never_returns_eperm_so_elimination_stops() {
    let g = group(
        failure("openat", libc::EPERM, Some("/srv/data")),
        Some(user(0)),
        Some(file("/srv/data", 0o644, "ext4", View::Own)),
    );
    let a = attribute(&g, LSMS, NO_FEXIT);
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::Unknown, Confidence::Unknown)
    );
    assert!(
        a.ruled_out
            .iter()
            .any(|r| r.suspect == "landlock" && r.why.contains("never EPERM")),
        "{:?}",
        a.ruled_out
    );
}

#[test]
fn unknown_lists_the_candidates_when_two_lsms_remain() {
    let g = group(
        failure("openat", libc::EACCES, Some("/srv/data")),
        Some(user(0)),
        Some(file("/srv/data", 0o644, "ext4", View::Own)),
    );
    let a = attribute(&g, &["capability", "landlock", "apparmor"], NO_FEXIT);
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::Unknown, Confidence::Unknown)
    );
    assert_eq!(a.candidates, vec![Layer::Landlock, Layer::Apparmor]);
}

#[test]
fn a_view_from_outside_the_process_namespace_carries_no_elimination() {
    // The process and its relatives exited: diag's own view cannot speak for a private mount.
    let g = group(
        failure("execve", libc::EACCES, Some("/scratch/mnt/true")),
        Some(user(0)),
        Some(file("/scratch/mnt/true", 0o755, "ext4", View::Host)),
    );
    let a = attribute(&g, LSMS, NO_FEXIT);
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::Unknown, Confidence::Unknown)
    );
    for l in [Layer::Landlock, Layer::MountNoexec] {
        assert!(a.candidates.contains(&l), "{l} missing: {:?}", a.candidates);
    }
    let dac = a.ruled_out.iter().find(|r| r.suspect == "dac").unwrap();
    assert!(dac.why.contains("diag's own view"), "{}", dac.why);
    // A refusal seen only from outside is no verdict either.
    let g = group(
        failure("openat", libc::EACCES, Some("/srv/secret")),
        Some(user(1000)),
        Some(file("/srv/secret", 0o600, "ext4", View::Host)),
    );
    let a = attribute(&g, LSMS, NO_FEXIT);
    assert_eq!(a.layer, Layer::Unknown);
    assert!(a.candidates.contains(&Layer::Dac), "{:?}", a.candidates);
}

#[test]
fn noexec_mount_in_the_process_view() {
    let mut facts = file("/scratch/mnt/true", 0o755, "tmpfs", View::Relative(11));
    facts.mount.as_mut().unwrap().noexec = true;
    let g = group(
        failure("execve", libc::EACCES, Some("/scratch/mnt/true")),
        Some(user(0)),
        Some(facts),
    );
    let a = attribute(&g, LSMS, NO_FEXIT);
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::MountNoexec, Confidence::Inferred)
    );
    assert!(a.evidence[0].contains("through pid 11"), "{:?}", a.evidence);
}

#[test]
fn exec_of_unobtainable_file_caps_is_capability_not_a_noaudit_probe() {
    let mut facts = file("/usr/bin/ping", 0o755, "ext4", View::Own);
    facts.file_caps = Some(FileCaps {
        permitted: 1 << 13,
        inheritable: 0,
        effective: true,
    });
    let mut p = user(0);
    p.cap_bounding = 0;
    // The overcommit reserve's noaudit CAP_SYS_ADMIN check fires during every execve.
    let f = with_evidence(
        failure("execve", libc::EPERM, Some("/usr/bin/ping")),
        KernelEvidence {
            denied_capability: Some(CAP_SYS_ADMIN),
            ..Default::default()
        },
    );
    let a = attribute(
        &group(f.clone(), Some(p.clone()), Some(facts.clone())),
        LSMS,
        NO_FEXIT,
    );
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::Capability, Confidence::Inferred)
    );
    assert!(
        a.evidence.join(" ").contains("CAP_NET_RAW"),
        "{:?}",
        a.evidence
    );
    // With the capability in the bounding set, the caps are not the reason.
    p.cap_bounding = u64::MAX >> 23;
    let a = attribute(&group(f, Some(p), Some(facts)), LSMS, NO_FEXIT);
    assert_ne!(a.layer, Layer::Capability);
}

#[test]
fn cap_capable_refusal_on_eperm_is_direct_capability() {
    let f = with_evidence(
        failure("socket", libc::EPERM, None),
        KernelEvidence {
            denied_capability: Some(13),
            ..Default::default()
        },
    );
    let a = attribute(&group(f, Some(user(0)), None), LSMS, NO_FEXIT);
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::Capability, Confidence::Direct)
    );
    assert!(a.evidence[0].contains("CAP_NET_RAW"));
}

#[test]
fn clone_eagain_names_the_limit_that_was_reached() {
    let mut p = user(1000);
    p.nproc_limit = Some(3);
    p.uid_tasks = Some(3);
    let g = group(failure("clone", libc::EAGAIN, None), Some(p.clone()), None);
    let a = attribute(&g, LSMS, NO_FEXIT);
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::RlimitNproc, Confidence::Inferred)
    );

    p.uid_tasks = Some(1);
    p.pids = Some(crate::context::cgroup::PidsCgroup {
        dir: PathBuf::from("/sys/fs/cgroup/pids/t"),
        current: 3,
        max: Some(3),
        refused: 2,
    });
    let g = group(failure("clone", libc::EAGAIN, None), Some(p), None);
    let a = attribute(&g, LSMS, NO_FEXIT);
    assert_eq!(
        (a.layer, a.confidence),
        (Layer::CgroupPids, Confidence::Inferred)
    );
    assert!(a.ruled_out.iter().any(|r| r.suspect == "nproc-exhausted"));
}
