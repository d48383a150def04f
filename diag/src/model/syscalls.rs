//! Syscall names, numbers, groups and the argument that holds a path. The live backends trace
//! x86_64; audit records from other machines are decoded with their own architecture's table.
//! Numbers come from the `syscalls` crate, generated from the kernel's syscall tables.

use syscalls::x86_64::Sysno as Native;

/// The x86_64 syscall's name, or `syscall_N` for numbers the table lacks.
pub fn name(nr: u32) -> String {
    Native::new(nr as usize).map_or_else(|| format!("syscall_{nr}"), |s| s.name().to_string())
}

pub fn number(name: &str) -> Option<u32> {
    name.parse::<Native>().ok().map(|s| s.id() as u32)
}

/// Every x86_64 syscall number the table knows.
pub fn all_numbers() -> impl Iterator<Item = u32> {
    (0..=Native::last().id() as u32).filter(|&nr| Native::new(nr as usize).is_some())
}

/// Looks a syscall number up in one architecture's table.
type SyscallTable = fn(usize) -> Option<&'static str>;

/// An `AUDIT_ARCH_*` value (`arch=c00000b7` in audit records, `linux/audit.h`) and the syscall
/// table of that architecture, by name as `ausearch -i` prints it.
const AUDIT_ARCHES: &[(u32, &str, SyscallTable)] = &[
    (0xc000_003e, "x86_64", |n| Some(Native::new(n)?.name())),
    (0x4000_0003, "i386", |n| {
        Some(syscalls::x86::Sysno::new(n)?.name())
    }),
    (0xc000_00b7, "aarch64", |n| {
        Some(syscalls::aarch64::Sysno::new(n)?.name())
    }),
    (0x0000_0028, "armeb", |n| {
        Some(syscalls::arm::Sysno::new(n)?.name())
    }),
    (0x4000_0028, "arm", |n| {
        Some(syscalls::arm::Sysno::new(n)?.name())
    }),
    (0xc000_0015, "ppc64le", |n| {
        Some(syscalls::powerpc64::Sysno::new(n)?.name())
    }),
    (0x8000_0015, "ppc64", |n| {
        Some(syscalls::powerpc64::Sysno::new(n)?.name())
    }),
    (0x0000_0014, "ppc", |n| {
        Some(syscalls::powerpc::Sysno::new(n)?.name())
    }),
    (0x8000_0016, "s390x", |n| {
        Some(syscalls::s390x::Sysno::new(n)?.name())
    }),
    (0xc000_00f3, "riscv64", |n| {
        Some(syscalls::riscv64::Sysno::new(n)?.name())
    }),
    (0x4000_00f3, "riscv32", |n| {
        Some(syscalls::riscv32::Sysno::new(n)?.name())
    }),
    (0xc000_0102, "loongarch64", |n| {
        Some(syscalls::loongarch64::Sysno::new(n)?.name())
    }),
    (0x8000_0008, "mips64", |n| {
        Some(syscalls::mips64::Sysno::new(n)?.name())
    }),
    (0xc000_0008, "mips64el", |n| {
        Some(syscalls::mips64::Sysno::new(n)?.name())
    }),
    (0x0000_0008, "mips", |n| {
        Some(syscalls::mips::Sysno::new(n)?.name())
    }),
    (0x4000_0008, "mipsel", |n| {
        Some(syscalls::mips::Sysno::new(n)?.name())
    }),
    (0x8000_002b, "sparc64", |n| {
        Some(syscalls::sparc64::Sysno::new(n)?.name())
    }),
    (0x0000_0002, "sparc", |n| {
        Some(syscalls::sparc::Sysno::new(n)?.name())
    }),
];

/// The name of syscall `nr` on the architecture an audit record names (`arch=c00000b7` or, from
/// `ausearch -i`, `arch=aarch64`). An architecture diag does not know, or a record without one,
/// is said as such: guessing with another machine's numbers names the wrong call.
pub fn name_on_audit_arch(arch: Option<&str>, nr: u32) -> String {
    let Some(arch) = arch else {
        return format!("syscall {nr} (the record names no architecture)");
    };
    let known = AUDIT_ARCHES.iter().find(|(code, name, _)| {
        *name == arch || u32::from_str_radix(arch, 16).is_ok_and(|a| a == *code)
    });
    match known {
        Some((_, arch_name, table)) => table(nr as usize).map_or_else(
            || format!("syscall {nr} (not in the {arch_name} table)"),
            str::to_string,
        ),
        None => format!("syscall {nr} (unknown architecture {arch})"),
    }
}

/// Which argument (0-based) of `name` is a user-space path, if any.
pub fn path_arg(name: &str) -> Option<u8> {
    Some(match name {
        "open" | "creat" | "execve" | "mkdir" | "mknod" | "unlink" | "rmdir" | "rename"
        | "link" | "chown" | "lchown" | "chmod" | "access" | "stat" | "lstat" | "truncate"
        | "chdir" | "chroot" | "readlink" | "statfs" | "uselib" | "acct" | "swapon" | "swapoff"
        | "umount2" | "utime" | "utimes" | "getxattr" | "lgetxattr" | "setxattr" | "lsetxattr"
        | "listxattr" | "llistxattr" | "removexattr" | "lremovexattr" | "pivot_root" => 0,
        "openat" | "openat2" | "execveat" | "mkdirat" | "mknodat" | "unlinkat" | "renameat"
        | "renameat2" | "linkat" | "fchownat" | "fchmodat" | "fchmodat2" | "faccessat"
        | "faccessat2" | "newfstatat" | "statx" | "readlinkat" | "utimensat" | "futimesat"
        | "name_to_handle_at" | "open_tree" | "open_tree_attr" | "mount" | "symlink"
        | "inotify_add_watch" | "setxattrat" | "getxattrat" | "listxattrat" | "removexattrat"
        | "file_getattr" | "file_setattr" => 1,
        "symlinkat" => 2,
        // fanotify_mark(fd, flags, u64 mask, dirfd, pathname)
        "fanotify_mark" => 4,
        _ => return None,
    })
}

/// Which argument of `name` is the dirfd its path argument is relative to: the one before the
/// path in the `*at` calls; none where a relative path is the cwd's.
pub fn dirfd_arg(name: &str) -> Option<u8> {
    match (name, path_arg(name)?) {
        ("mount" | "symlink" | "inotify_add_watch", _) | (_, 0) => None,
        (_, path) => Some(path - 1),
    }
}

/// Which argument (0-based) holds the flags worth showing for this syscall.
pub fn flag_arg(name: &str) -> Option<usize> {
    match name {
        "open" => Some(1),
        "openat" => Some(2),
        "clone" => Some(0),
        "mmap" | "mprotect" | "pkey_mprotect" => Some(2),
        "unshare" => Some(0),
        "socket" => Some(1),
        _ => None,
    }
}

/// Successful calls every backend must see to follow the tree's state: messages (writes to
/// stdout/stderr and their dups), fds (opens, dups, closes: a Landlock rule names its directory by
/// fd), Landlock rulesets, and process names (prctl). Backends add what they need beyond it.
pub const STATE_ON_SUCCESS: &[&str] = &[
    "write",
    "writev",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "close",
    "open",
    "openat",
    "openat2",
    "creat",
    "landlock_create_ruleset",
    "landlock_add_rule",
    "landlock_restrict_self",
    "prctl",
];

pub fn state_on_success(name: &str) -> bool {
    STATE_ON_SUCCESS.contains(&name)
}

/// Named groups for `--syscalls`.
pub const GROUPS: &[(&str, &[&str])] = &[
    ("file", &[]), // every syscall with a path argument, plus the fd-based opens below
    (
        "process",
        &[
            "clone",
            "clone3",
            "fork",
            "vfork",
            "execve",
            "execveat",
            "unshare",
            "setns",
            "prctl",
            "setuid",
            "setgid",
            "setresuid",
            "setresgid",
            "setgroups",
            "ptrace",
            "kill",
            "tgkill",
            "pidfd_open",
            "pidfd_send_signal",
            "seccomp",
            "capset",
            "setrlimit",
            "prlimit64",
        ],
    ),
    ("exec", &["execve", "execveat"]),
    (
        "network",
        &[
            "socket",
            "socketpair",
            "bind",
            "connect",
            "listen",
            "accept",
            "accept4",
            "sendto",
            "recvfrom",
            "sendmsg",
            "recvmsg",
            "setsockopt",
            "getsockopt",
        ],
    ),
    (
        "memory",
        &[
            "mmap",
            "mprotect",
            "mremap",
            "madvise",
            "mlock",
            "mlock2",
            "mlockall",
            "pkey_mprotect",
            "memfd_create",
            "memfd_secret",
        ],
    ),
    (
        "privileged",
        &[
            "mount",
            "umount2",
            "pivot_root",
            "chroot",
            "bpf",
            "perf_event_open",
            "io_uring_setup",
            "init_module",
            "finit_module",
            "kexec_load",
            "reboot",
            "iopl",
            "ioperm",
            "quotactl",
            "add_key",
            "keyctl",
            "request_key",
            "userfaultfd",
            "fsopen",
            "fsmount",
            "move_mount",
        ],
    ),
];

/// Expands a `--syscalls` value (`all`, group names and syscall names, comma-separated) into
/// syscall numbers. Unknown names are an error that names them.
pub fn parse_selection(spec: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "all" {
            out.extend(all_numbers());
        } else if item == "file" {
            out.extend(all_numbers().filter(|&nr| {
                let n = name(nr);
                path_arg(&n).is_some() || matches!(n.as_str(), "ftruncate" | "fchmod" | "fchown")
            }));
        } else if let Some((_, members)) = GROUPS.iter().find(|(g, _)| *g == item) {
            out.extend(members.iter().filter_map(|m| number(m)));
        } else if let Some(nr) = number(item) {
            out.push(nr);
        } else {
            let groups: Vec<_> = GROUPS.iter().map(|(g, _)| *g).collect();
            return Err(format!(
                "unknown syscall or group '{item}' (groups: all, {})",
                groups.join(", ")
            ));
        }
    }
    if out.is_empty() {
        return Err("--syscalls selects no syscall".into());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Syscalls that create a process or thread.
pub fn is_clone(name: &str) -> bool {
    matches!(name, "clone" | "clone3" | "fork" | "vfork")
}

pub fn is_exec(name: &str) -> bool {
    matches!(name, "execve" | "execveat")
}

pub fn is_open(name: &str) -> bool {
    matches!(name, "open" | "openat" | "openat2" | "creat")
}

#[cfg(test)]
mod tests {
    #[test]
    fn audit_records_name_their_architecture() {
        assert_eq!(name_on_audit_arch(Some("c000003e"), 56), "clone");
        assert_eq!(name_on_audit_arch(Some("c00000b7"), 56), "openat");
        assert_eq!(name_on_audit_arch(Some("x86_64"), 257), "openat");
        assert_eq!(name_on_audit_arch(Some("40000003"), 5), "open");
        assert_eq!(name_on_audit_arch(Some("c00000f3"), 56), "openat");
        assert!(name_on_audit_arch(Some("c00000b7"), 9999).contains("not in the aarch64 table"));
        assert!(name_on_audit_arch(None, 56).contains("no architecture"));
        assert_eq!(name(335), "uretprobe");
        assert_eq!(number("file_setattr"), Some(469));
    }

    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        assert_eq!(name(257), "openat");
        assert_eq!(number("openat"), Some(257));
        assert_eq!(number("clone3"), Some(435));
        assert_eq!(number("landlock_restrict_self"), Some(446));
        assert_eq!(name(9999), "syscall_9999");
    }

    #[test]
    fn selection_expands_groups_and_rejects_unknown_names() {
        let s = parse_selection("exec,openat").unwrap();
        assert_eq!(s, vec![59, 257, 322]);
        assert!(parse_selection("file").unwrap().contains(&257));
        let err = parse_selection("openat,frobnicate").unwrap_err();
        assert!(err.contains("frobnicate"), "{err}");
        assert!(parse_selection("").is_err());
    }

    #[test]
    fn path_argument_positions() {
        assert_eq!(path_arg("openat"), Some(1));
        assert_eq!(path_arg("open"), Some(0));
        assert_eq!(path_arg("symlinkat"), Some(2));
        assert_eq!(path_arg("read"), None);
    }
}
