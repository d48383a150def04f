//! A report with every field filled, and hostile text where a traced process controls it, for
//! the renderers' and the schema's unit tests.

use super::model::*;
use crate::capture::pod::{Pod, PodContainer};
use crate::model::{Confidence, Layer, Text};

/// A comm/path/message that tries to break Markdown, tables, HTML and the terminal.
pub const HOSTILE: &str = "evil|`x`<b>\n## hi\x1b[31m";

pub fn sample() -> Report {
    let failure = |syscall: &str, path: &[u8], noise: Option<&str>| FailureEntry {
        pid: 11,
        tid: 12,
        comm: Text::from("tmux: server"),
        uid: Some(1000),
        syscall: syscall.into(),
        errno: "EACCES".into(),
        path_hex: Text::new(path).hex_if_invalid(),
        path: Some(Text::new(path)),
        // The hostile path stands for one the kernel cut, too.
        path_truncated: path.ends_with(b"\xff"),
        flags: Some("O_RDWR".into()),
        layer: Layer::Landlock,
        confidence: Confidence::Direct,
        evidence: vec!["Landlock domain 1 grants /tmp; /dev/ptmx needs write_file".into()],
        ruled_out: vec![RuledOutEntry {
            cause: "pty-denied".into(),
            layer: Some(Layer::Dac),
            why: "DAC: /dev/ptmx is crw-rw-rw-".into(),
        }],
        candidates: vec![Layer::Landlock, Layer::Lsm],
        noise: noise.map(String::from),
        engine_plumbing: None,
        count: 2,
        other_pids: 3,
        first_ns: 5,
        first_at: None,
        recorded: None,
        signal: None,
    };
    Report {
        schema: SCHEMA.into(),
        tool: Tool {
            name: "diag".into(),
            version: "0.1.0".into(),
        },
        backend: "ebpf".into(),
        mode: "run".into(),
        command: vec![
            Text::from("tmux"),
            Text::from("new-session"),
            Text::from("sleep 30"),
            Text::from(HOSTILE),
        ],
        root_pids: vec![10],
        exit_status: Some(1),
        started_at: Some("2026-12-05T09:00:00Z".into()),
        duration_ms: Some(1234),
        hostname: Some("host-1".into()),
        partial: false,
        host: Host {
            kernel: "6.18.44".into(),
            lsms: vec!["lockdown".into(), "landlock".into()],
            landlock_abi: Some(7),
        },
        processes: vec![
            ProcessEntry {
                pid: 10,
                ppid: Some(1),
                comm: Text::from("tmux"),
                exe: Some(Text::from("/usr/bin/tmux")),
                first_seen_ns: 0,
            },
            ProcessEntry {
                pid: 11,
                ppid: Some(10),
                comm: Text::from("tmux: server"),
                exe: None,
                first_seen_ns: 3,
            },
            ProcessEntry {
                pid: 12,
                ppid: Some(11),
                comm: Text::from(HOSTILE),
                exe: None,
                first_seen_ns: 4,
            },
        ],
        failures: vec![
            failure("openat", b"/dev/ptmx", None),
            failure("openat", &[format!("/tmp/{HOSTILE}").as_bytes(), b"\xff"].concat(), None),
            FailureEntry {
                engine_plumbing: Some("runc".into()),
                ..failure("faccessat", b"/usr/local/bin/tmux", Some("PATH search"))
            },
        ],
        recovered: vec![RecoveredEntry {
            pid: 11,
            tid: 11,
            comm: Text::from(HOSTILE),
            syscall: "openat".into(),
            errno: "ENOENT".into(),
            path: Some(Text::from(format!("/etc/{HOSTILE}"))),
            count: 1,
        }],
        landlock_domains: vec![DomainEntry {
            id: 1,
            created_by: 9,
            creator_comm: Text::from("python3"),
            handled: vec!["read_file".into(), "write_file".into()],
            rules_unknown: false,
            rules: vec![RuleEntry {
                path: Some(Text::from("/tmp")),
                access: vec!["read_file".into()],
            }],
            processes: vec![10, 11],
        }],
        messages: vec![
            MessageEntry {
                pid: 10,
                comm: Text::from("tmux"),
                fd: 2,
                text: Text::from("create window failed: fork failed: Permission denied"),
                text_hex: None,
                time_ns: 9,
            },
            MessageEntry {
                pid: 12,
                comm: Text::from("x"),
                fd: 1,
                text: Text::new([format!("{HOSTILE}\u{202e}").as_bytes(), b"\xfe"].concat()),
                text_hex: Some("00".into()),
                time_ns: 10,
            },
        ],
        findings: vec![
            Finding {
                fingerprint: "0123456789abcdef".into(),
                cause: "pty-denied".into(),
                layer: Layer::Landlock,
                confidence: Confidence::Direct,
                summary: "tmux said \"create window failed: fork failed: Permission denied\". Real cause: openat /dev/ptmx was refused by Landlock".into(),
                failures: vec![0],
                explains: vec![0],
                explains_basis: vec!["printed by the failing process (pid 4242) after openat failed; its text has the cause's message pattern".into()],
                evidence: vec!["Landlock domain 1 grants /tmp; /dev/ptmx needs write_file".into()],
                ruled_out: vec![
                    RuledOutEntry {
                        cause: "seccomp-denied".into(),
                        layer: Some(Layer::Seccomp),
                        why: "seccomp: no filter installed (mode 0)".into(),
                    },
                    RuledOutEntry {
                        cause: "nproc-exhausted".into(),
                        layer: Some(Layer::RlimitNproc),
                        why: "RLIMIT_NPROC: 83 of 96365 tasks for uid 0".into(),
                    },
                ],
                fix: "Grant read_write on /dev/pts and /dev/ptmx".into(),
                policy_patch: Some("filesystem_policy:\n  read_write:\n    - /dev/pts\n    - /dev/ptmx\n".into()),
            },
            Finding {
                fingerprint: "fedcba9876543210".into(),
                cause: "file-denied".into(),
                layer: Layer::Landlock,
                confidence: Confidence::Inferred,
                summary: format!("opening /tmp/{HOSTILE} was refused: 100% sure, a,b:c\r\n"),
                failures: vec![1],
                explains: vec![1],
                explains_basis: vec![],
                evidence: vec![format!("path /tmp/{HOSTILE}")],
                ruled_out: vec![],
                fix: "grant it".into(),
                policy_patch: None,
            },
        ],
        probes: Probes {
            attached: vec!["raw_tp/sys_enter".into(), "raw_tp/sys_exit".into()],
            missing: vec![MissingProbe {
                probe: "fexit/security_file_open".into(),
                why: "the kernel refused fexit programs (EPERM)".into(),
            }],
        },
        lost_events: 0,
        stats: Stats {
            process_forks: 2,
            ..Stats::default()
        },
        warnings: vec![format!("a warning about /tmp/{HOSTILE}")],
        verification: Some(Verification {
            patch: "--- a/p.yaml\n+++ b/p.yaml\n@@ -1 +1,2 @@\n read_write:\n+  - /dev/pts\n".into(),
            before: RunSummary { exit_status: Some(1), failures: vec![failure("openat", b"/dev/ptmx", None)] },
            after: RunSummary { exit_status: Some(0), failures: vec![] },
            disappeared: vec!["openat /dev/ptmx EACCES (tmux: server)".into()],
            remained: vec![],
            appeared: vec![format!("openat /dev/tty EACCES ({HOSTILE})")],
        }),
        container: Some(Container {
            engine: "docker".into(),
            id: Text::from("eab49f4ef0bbb1e774668e247c2fbb2b19d3aab596314707ce76739599f7b9fa"),
            name: Some(Text::from(HOSTILE)),
            image: Some(Text::from(HOSTILE)),
            init_pid: 11,
            cgroup: Text::from("/sys/fs/cgroup/docker/eab49f4ef0bb"),
            found_by: format!("/var/log/pods/{HOSTILE}"),
            confinement: Confinement {
                seccomp: "filter".into(),
                seccomp_profile: Some("default".into()),
                capabilities: vec!["CAP_CHOWN".into()],
                pids_max: Some(50),
                restricted_mounts: vec![RestrictedMount {
                    path: Text::from(format!("/tmp/{HOSTILE}")),
                    options: vec!["noexec".into()],
                }],
                devices: Some(vec!["c 1:3 rwm".into()]),
                uid_map: vec!["0 100000 65536".into()],
                user_namespace: true,
                ..Default::default()
            },
            pod: Some(Pod {
                namespace: Text::from(HOSTILE),
                name: Text::from(HOSTILE),
                uid: Text::from("8a1c7d3e-0000-4000-8000-000000000001"),
                containers: vec![PodContainer {
                    id: Text::from("eab49f4ef0bb"),
                    name: Some(Text::from(HOSTILE)),
                    image: Some(Text::from(HOSTILE)),
                }],
            }),
        }),
    }
}
