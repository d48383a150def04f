//! Facts that only some refusals need, read when the failure is seen and only for those calls:
//! the interpreter or loader an exec named, the descriptor limit against the open descriptors,
//! the privilege a program's file was meant to grant, the process's namespaces and the sysctls
//! read in its own network namespace.

use super::path::{resolve_in_root, PathFacts, View};
use crate::model::{syscalls, Failure};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What the failing call's kind of refusal needs; each field is read only for the calls it
/// explains, so most failures carry none.
#[derive(Clone, Debug, Default)]
pub struct RefusalFacts {
    pub exec: Option<ExecFile>,
    pub nofile: Option<Nofile>,
    /// The executable the process runs, and what its file was meant to grant.
    pub program: Option<Program>,
    pub namespaces: Option<Namespaces>,
    /// `net.ipv4.ping_group_range` read in the process's own network namespace.
    pub ping_group_range: Option<String>,
    /// The process's nice value and RLIMIT_NICE soft limit.
    pub nice: Option<(i64, u64)>,
    /// The device node an open was refused on, and the process's devices cgroup.
    pub device: Option<Device>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// 'c' or 'b', as in devices.list.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    /// The process's cgroup in the v1 devices hierarchy, or its v2 cgroup ("0::").
    pub cgroup: Option<String>,
    pub v1: bool,
}

/// The interpreter an exec'd file asks for: its `#!` line or its ELF `PT_INTERP`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interpreter {
    Shebang(Vec<u8>),
    Loader(PathBuf),
    /// The file starts with neither `#!` nor an ELF header: the kernel cannot run it.
    Unrecognised {
        first_bytes: Vec<u8>,
    },
    /// A static ELF: nothing to load.
    None,
}

#[derive(Clone, Debug)]
pub struct ExecFile {
    pub interpreter: Interpreter,
    /// Whether the interpreter exists in the process's root (None: not applicable).
    pub interpreter_exists: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nofile {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
    pub open_fds: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Program {
    pub facts: PathFacts,
    pub setuid: bool,
    pub setgid: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Namespaces {
    /// The process's user namespace is not diag's: per-namespace sysctls (`user.*`) differ
    /// from the ones diag reads.
    pub own_userns: bool,
}

const AF_INET: u64 = 2;
const AF_INET6: u64 = 10;
const SOCK_TYPE_MASK: u64 = 0xf;

impl RefusalFacts {
    /// `facts`: the failure's path, read in the process's view (exec).
    pub fn read(f: &Failure, facts: Option<&PathFacts>) -> Self {
        let pid = f.origin.pid;
        let mut out = RefusalFacts::default();
        let exec_refused = matches!(f.errno, libc::ENOENT | libc::ENOEXEC);
        if syscalls::is_exec(&f.syscall) && exec_refused {
            out.exec = facts.and_then(|p| ExecFile::read(pid, p));
        }
        if matches!(f.errno, libc::EMFILE | libc::ENFILE)
            || matches!(f.syscall.as_str(), "setrlimit" | "prlimit64")
        {
            out.nofile = Nofile::read(pid);
        }
        if matches!(f.errno, libc::EPERM | libc::EACCES) && !syscalls::is_exec(&f.syscall) {
            out.program = Program::read(pid);
        }
        if matches!(f.syscall.as_str(), "unshare" | "clone" | "clone3") || f.errno == libc::ENOSPC {
            out.namespaces = Namespaces::read(pid);
        }
        if f.syscall == "socket" && f.errno == libc::EACCES && is_icmp_dgram(f.args) {
            out.ping_group_range = read_in_netns(pid, "/proc/sys/net/ipv4/ping_group_range");
        }
        if f.errno == libc::EPERM && syscalls::is_open(&f.syscall) {
            out.device = facts.and_then(|p| Device::read(pid, p));
        }
        if f.syscall == "setpriority" {
            out.nice = read_nice(pid);
        }
        out
    }
}

/// socket(AF_INET/AF_INET6, SOCK_DGRAM, IPPROTO_ICMP/ICMPV6): the unprivileged ping socket.
pub fn is_icmp_dgram(args: Option<[u64; 6]>) -> bool {
    args.is_some_and(|a| {
        matches!(a[0], AF_INET | AF_INET6)
            && a[1] & SOCK_TYPE_MASK == libc::SOCK_DGRAM as u64
            && matches!(a[2] as i32, libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6)
    })
}

/// The root `facts` were read in: the failing process's, a relative's, or the host's.
fn view_root(pid: u32, facts: &PathFacts) -> PathBuf {
    match facts.view {
        View::Own => PathBuf::from(format!("/proc/{pid}/root")),
        View::Relative(r) => PathBuf::from(format!("/proc/{r}/root")),
        View::Host => PathBuf::from("/"),
        View::AtFailure => Some(PathBuf::from(format!("/proc/{pid}/root")))
            .filter(|root| root.exists())
            .unwrap_or_else(|| PathBuf::from("/")),
    }
}

fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

impl ExecFile {
    fn read(pid: u32, facts: &PathFacts) -> Option<Self> {
        let root = view_root(pid, facts);
        let file = inside(&root, facts.resolved.as_deref().unwrap_or(&facts.path));
        let head = read_head(&file, 64 * 1024)?;
        let interpreter = interpreter_of(&head);
        let interpreter_exists = match &interpreter {
            Interpreter::Shebang(name) => Some(exists_in(&root, Path::new(&lossy_path(name)))),
            Interpreter::Loader(p) => Some(exists_in(&root, p)),
            _ => None,
        };
        Some(ExecFile {
            interpreter,
            interpreter_exists,
        })
    }
}

fn lossy_path(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn exists_in(root: &Path, p: &Path) -> bool {
    let target = resolve_in_root(root, p).unwrap_or_else(|| p.to_path_buf());
    std::fs::metadata(inside(root, &target)).is_ok()
}

fn read_head(file: &Path, max: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(file)
        .ok()?
        .take(max)
        .read_to_end(&mut buf)
        .ok()?;
    Some(buf)
}

/// What the kernel would look for to run a file starting with `head`.
pub fn interpreter_of(head: &[u8]) -> Interpreter {
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        // The kernel splits the name at a space or tab only: a '\r' stays in the name.
        let name = line
            .iter()
            .copied()
            .skip_while(|b| *b == b' ' || *b == b'\t')
            .take_while(|b| *b != b' ' && *b != b'\t')
            .collect();
        return Interpreter::Shebang(name);
    }
    if head.starts_with(b"\x7fELF") {
        return elf_interpreter(head).map_or(Interpreter::None, Interpreter::Loader);
    }
    Interpreter::Unrecognised {
        first_bytes: head.iter().copied().take(16).collect(),
    }
}

/// `PT_INTERP` of an ELF file (32- or 64-bit, either byte order) within `data`.
fn elf_interpreter(data: &[u8]) -> Option<PathBuf> {
    use object::read::elf::{FileHeader, ProgramHeader};
    fn find<H: FileHeader<Endian = object::Endianness>>(data: &[u8]) -> Option<PathBuf> {
        let header = H::parse(data).ok()?;
        let endian = header.endian().ok()?;
        header
            .program_headers(endian, data)
            .ok()?
            .iter()
            .find_map(|ph| ph.interpreter(endian, data).ok().flatten())
            .map(|b| PathBuf::from(lossy_path(b)))
    }
    match data.get(4) {
        Some(1) => find::<object::elf::FileHeader32<object::Endianness>>(data),
        _ => find::<object::elf::FileHeader64<object::Endianness>>(data),
    }
}

impl Nofile {
    fn read(pid: u32) -> Option<Self> {
        let p = procfs::process::Process::new(pid as i32).ok()?;
        let limits = p.limits().ok()?;
        let value = |v: procfs::process::LimitValue| match v {
            procfs::process::LimitValue::Unlimited => None,
            procfs::process::LimitValue::Value(v) => Some(v),
        };
        Some(Nofile {
            soft: value(limits.max_open_files.soft_limit),
            hard: value(limits.max_open_files.hard_limit),
            open_fds: p.fd_count().ok().map(|n| n as u64),
        })
    }
}

impl Device {
    fn read(pid: u32, facts: &PathFacts) -> Option<Self> {
        use std::os::unix::fs::FileTypeExt;
        let node = inside(
            &view_root(pid, facts),
            facts.resolved.as_deref().unwrap_or(&facts.path),
        );
        let meta = std::fs::metadata(node).ok()?;
        let kind = if meta.file_type().is_char_device() {
            'c'
        } else if meta.file_type().is_block_device() {
            'b'
        } else {
            return None;
        };
        let rdev = meta.rdev();
        let cgroups = procfs::process::Process::new(pid as i32)
            .and_then(|p| p.cgroups())
            .ok();
        let groups = cgroups.as_ref().map(|c| c.0.as_slice()).unwrap_or_default();
        let v1 = groups
            .iter()
            .find(|g| g.controllers.iter().any(|c| c == "devices"));
        let v2 = groups.iter().find(|g| g.hierarchy == 0);
        Some(Device {
            kind,
            major: libc::major(rdev) as u64,
            minor: libc::minor(rdev) as u64,
            cgroup: v1.or(v2).map(|g| g.pathname.clone()),
            v1: v1.is_some(),
        })
    }
}

impl Program {
    fn read(pid: u32) -> Option<Self> {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        let facts = PathFacts::read(pid, &[], exe.as_os_str().as_encoded_bytes()).ok()?;
        let meta = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
        Some(Program {
            facts,
            setuid: meta.mode() & libc::S_ISUID != 0,
            setgid: meta.mode() & libc::S_ISGID != 0,
        })
    }

    /// Whether running this file was meant to raise the process's privilege.
    pub fn grants_privilege(&self) -> bool {
        self.setuid || self.setgid || self.facts.file_caps.is_some_and(|c| c.permitted != 0)
    }
}

impl Namespaces {
    fn read(pid: u32) -> Option<Self> {
        let id = |p: String| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        let own_userns = id(format!("/proc/{pid}/ns/user"))? != id("/proc/self/ns/user".into())?;
        Some(Namespaces { own_userns })
    }
}

/// Reads a network-namespace sysctl as `pid` sees it: a short-lived thread joins its network
/// namespace (allowed in a multi-threaded process, unlike a user namespace) and reads it there.
fn read_in_netns(pid: u32, sysctl: &'static str) -> Option<String> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).ok()?;
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        Some(std::fs::read_to_string(sysctl).ok()?.trim().to_string())
    })
    .join()
    .ok()
    .flatten()
}

fn read_nice(pid: u32) -> Option<(i64, u64)> {
    let p = procfs::process::Process::new(pid as i32).ok()?;
    let nice = p.stat().ok()?.nice;
    let limit = match p.limits().ok()?.max_nice_priority.soft_limit {
        procfs::process::LimitValue::Unlimited => u64::MAX,
        procfs::process::LimitValue::Value(v) => v,
    };
    Some((nice, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_keeps_a_carriage_return_in_the_name() {
        assert_eq!(
            interpreter_of(b"#!/bin/bash\r\necho\r\n"),
            Interpreter::Shebang(b"/bin/bash\r".to_vec())
        );
        assert_eq!(
            interpreter_of(b"#! /usr/bin/env python3\n"),
            Interpreter::Shebang(b"/usr/bin/env".to_vec())
        );
    }

    #[test]
    fn a_blank_first_line_is_no_shebang() {
        assert!(matches!(
            interpreter_of(b"\n#!/bin/sh\n"),
            Interpreter::Unrecognised { .. }
        ));
    }

    #[test]
    fn elf_interpreter_of_this_test_binary() {
        let exe = std::fs::read("/proc/self/exe").unwrap();
        match interpreter_of(&exe) {
            Interpreter::Loader(p) => assert!(p.to_string_lossy().contains("ld-"), "{p:?}"),
            Interpreter::None => {} // a static build
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn icmp_datagram_socket_is_recognised() {
        let icmp = [
            AF_INET,
            libc::SOCK_DGRAM as u64 | libc::SOCK_CLOEXEC as u64,
            1,
            0,
            0,
            0,
        ];
        assert!(is_icmp_dgram(Some(icmp)));
        let raw = [AF_INET, libc::SOCK_RAW as u64, 1, 0, 0, 0];
        assert!(!is_icmp_dgram(Some(raw)));
    }
}
