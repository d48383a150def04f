//! Turns ordered strace records into model events, keeping the state strace's text implies:
//! which tid belongs to which process, each process's name, and which fds are its
//! stdout/stderr. That state is dropped when a process exits, and bounded for logs whose
//! processes never show their exit.

use super::records::{Call, Kind, Record};
use super::syntax::{self, Ret, Str};
use crate::capture::offline::Sink;
use crate::capture::CaptureConfig;
use crate::model::{
    flags, syscalls, CaptureStats, Event, EvidenceSource, Exec, Exit, Failure, Fork,
    KernelEvidence, LandlockCall, LandlockOp, Message, Origin, Text,
};
use std::collections::{HashMap, HashSet};

/// The kernel keeps 15 bytes of a task's name.
const COMM_LEN: usize = 15;
const F_DUPFD: &str = "F_DUPFD";
const F_DUPFD_CLOEXEC: &str = "F_DUPFD_CLOEXEC";
const LANDLOCK_CREATE_RULESET_VERSION: &str = "LANDLOCK_CREATE_RULESET_VERSION";
/// Threads and processes whose state is kept at once; beyond it one is forgotten (and counted).
const MAX_TRACKED: usize = 65_536;

/// An fd that is a process's stdout or stderr: (fd, 1 or 2, close-on-exec).
type Stream = (i32, i32, bool);

#[derive(Default)]
pub struct Builder {
    pub stats: CaptureStats,
    /// The first process of the log, its argv and its exit status.
    pub root: Option<u32>,
    pub command: Vec<Text>,
    pub root_status: Option<i32>,
    pub truncated_messages: u64,
    /// Processes (or threads) forgotten at the [`MAX_TRACKED`] bound.
    pub forgotten_processes: u64,
    tgid: HashMap<u32, u32>,
    comm: HashMap<u32, Text>,
    streams: HashMap<u32, Vec<Stream>>,
    /// Processes that created a Landlock ruleset or forked from one that did, until they exec.
    ruleset_holders: HashSet<u32>,
}

/// Inserts into a map of per-process state, forgetting some other entry when it is full.
fn insert_bounded<V>(map: &mut HashMap<u32, V>, key: u32, value: V, forgotten: &mut u64) {
    if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
        if let Some(&other) = map.keys().next() {
            map.remove(&other);
            *forgotten += 1;
        }
    }
    map.insert(key, value);
}

impl Builder {
    pub fn record(&mut self, r: &Record, config: &CaptureConfig, sink: &mut dyn Sink) {
        let pid = self.pid_of(r.tid);
        self.root.get_or_insert(pid);
        match &r.kind {
            Kind::Call(c) => match c.ret {
                Ret::Ok(v, ref note) => self.success(r, pid, c, v, note.as_deref(), sink),
                Ret::Err(errno) => self.failure(r, pid, c, errno, config, sink),
                Ret::Unknown => {}
            },
            Kind::Exited(code) => self.exit(r, pid, *code, sink),
            Kind::Killed(sig) => self.exit(r, pid, 128 + sig, sink),
        }
    }

    fn pid_of(&self, tid: u32) -> u32 {
        self.tgid.get(&tid).copied().unwrap_or(tid)
    }

    fn origin(&self, r: &Record, pid: u32) -> Origin {
        Origin {
            time_ns: r.order,
            pid,
            tid: r.tid,
            comm: self.comm.get(&pid).cloned().unwrap_or_default(),
            uid: None,
            gid: None,
        }
    }

    fn exit(&mut self, r: &Record, pid: u32, status: i32, sink: &mut dyn Sink) {
        self.tgid.remove(&r.tid);
        if r.tid != pid {
            return; // a thread, not the process
        }
        self.comm.remove(&pid);
        self.streams.remove(&pid);
        self.ruleset_holders.remove(&pid);
        if self.root == Some(pid) {
            self.root_status = Some(status);
        }
        sink.event(Event::Exit(Exit {
            time_ns: r.order,
            pid,
            status: Some(status),
            signal: None,
        }));
    }

    fn failure(
        &mut self,
        r: &Record,
        pid: u32,
        c: &Call,
        errno: i32,
        config: &CaptureConfig,
        sink: &mut dyn Sink,
    ) {
        let watched = syscalls::number(&c.name).is_some_and(|n| config.syscalls.contains(&n));
        let path = path_arg(c);
        if !watched || !config.errnos.watches(&c.name, errno, path.as_deref()) {
            return;
        }
        let flags_text = flag_text(c).map(str::to_string);
        sink.event(Event::Failure(Failure {
            origin: self.origin(r, pid),
            syscall: c.name.clone(),
            errno,
            path: path.map(Text::new),
            path_cut: None,
            flags: flags_text.as_deref().and_then(flags::parse),
            flags_text,
            args: None,
            evidence: KernelEvidence {
                source: EvidenceSource::CallOnly,
                ..KernelEvidence::default()
            },
            signal: None,
            at_failure: None,
        }));
    }

    fn success(
        &mut self,
        r: &Record,
        pid: u32,
        c: &Call,
        value: i64,
        note: Option<&[u8]>,
        sink: &mut dyn Sink,
    ) {
        let arg = |i: usize| c.args.get(i).map(String::as_str).unwrap_or("");
        let name = c.name.as_str();
        match name {
            _ if syscalls::is_clone(name) => self.clone_(r, pid, c, value, sink),
            "execve" | "execveat" => self.exec(r, pid, c, sink),
            "prctl" if arg(0) == "PR_SET_NAME" && r.tid == pid => {
                if let Some(s) = syntax::string(arg(1)) {
                    insert_bounded(
                        &mut self.comm,
                        pid,
                        comm(&s.bytes),
                        &mut self.forgotten_processes,
                    );
                }
            }
            "write" | "pwrite64" => {
                if let Some(s) = syntax::string(arg(1)) {
                    self.message(r, pid, arg(0), s, sink);
                }
            }
            "writev" | "pwritev" | "pwritev2" => {
                let iovs = syntax::list(arg(1)).unwrap_or_default();
                let mut text = Str::default();
                for iov in iovs {
                    let s = syntax::field(iov, "iov_base").and_then(syntax::string);
                    match s {
                        Some(s) => {
                            text.bytes.extend(s.bytes);
                            text.truncated |= s.truncated;
                        }
                        None => text.truncated |= iov == "...",
                    }
                }
                self.message(r, pid, arg(0), text, sink);
            }
            "dup" | "dup2" | "dup3" | "fcntl" => self.dup(pid, c, value, sink),
            "close" => {
                if let Some((fd, _)) = syntax::fd(arg(0)).filter(|(fd, _)| *fd > 2) {
                    self.set_stream(pid, fd, None);
                    if self.ruleset_holders.contains(&pid) {
                        sink.event(Event::FdClosed { pid, fd });
                    }
                }
            }
            _ if syscalls::is_open(name) && self.ruleset_holders.contains(&pid) => {
                let path = note.map(<[u8]>::to_vec).or_else(|| path_arg(c));
                if let (Some(path), Ok(fd)) = (path, i32::try_from(value)) {
                    sink.event(Event::FdOpened {
                        pid,
                        fd,
                        path: Text::new(path),
                    });
                }
            }
            _ if name.starts_with("landlock_") => self.landlock(r, pid, c, value, sink),
            _ => {}
        }
    }

    fn stream(&self, pid: u32, fd: i32) -> Option<i32> {
        let streams = self.streams.get(&pid)?;
        streams.iter().find(|s| s.0 == fd).map(|s| s.1)
    }

    /// Makes `fd` of `pid` a copy of stdout/stderr (`Some((stream, cloexec))`), or not.
    fn set_stream(&mut self, pid: u32, fd: i32, to: Option<(i32, bool)>) {
        let mut streams = self.streams.remove(&pid).unwrap_or_default();
        streams.retain(|s| s.0 != fd);
        if let Some((stream, cloexec)) = to {
            streams.push((fd, stream, cloexec));
        }
        if !streams.is_empty() {
            insert_bounded(
                &mut self.streams,
                pid,
                streams,
                &mut self.forgotten_processes,
            );
        }
    }

    fn clone_(&mut self, r: &Record, parent: u32, c: &Call, child: i64, sink: &mut dyn Sink) {
        let Ok(child) = u32::try_from(child) else {
            return;
        };
        let flags = clone_flag_text(c).and_then(flags::parse).unwrap_or(0);
        let forgotten = &mut self.forgotten_processes;
        if flags & flags::CLONE_THREAD != 0 {
            insert_bounded(&mut self.tgid, child, parent, forgotten);
            self.stats.thread_forks += 1;
            return;
        }
        self.stats.process_forks += 1;
        // A recycled pid was a thread of another process before.
        self.tgid.remove(&child);
        let comm = self.comm.get(&parent).cloned().unwrap_or_default();
        insert_bounded(&mut self.comm, child, comm.clone(), forgotten);
        match self.streams.get(&parent).cloned() {
            Some(inherited) => insert_bounded(&mut self.streams, child, inherited, forgotten),
            None => {
                self.streams.remove(&child);
            }
        }
        if self.ruleset_holders.contains(&parent) && self.ruleset_holders.len() < MAX_TRACKED {
            self.ruleset_holders.insert(child);
        }
        sink.event(Event::Fork(Fork {
            time_ns: r.order,
            parent_pid: parent,
            child_pid: child,
            comm,
        }));
    }

    fn exec(&mut self, r: &Record, pid: u32, c: &Call, sink: &mut dyn Sink) {
        let Some(filename) = path_arg(c) else { return };
        let base = filename.rsplit(|&b| b == b'/').next().unwrap_or_default();
        insert_bounded(
            &mut self.comm,
            pid,
            comm(base),
            &mut self.forgotten_processes,
        );
        if let Some(streams) = self.streams.get_mut(&pid) {
            streams.retain(|&(_, _, cloexec)| !cloexec);
        }
        // Ruleset fds are O_CLOEXEC.
        self.ruleset_holders.remove(&pid);
        if self.root == Some(pid) && self.command.is_empty() {
            let argv = c.args.get(if c.name == "execveat" { 2 } else { 1 });
            self.command = argv
                .and_then(|a| syntax::list(a))
                .unwrap_or_default()
                .into_iter()
                .filter_map(syntax::string)
                .map(|s| Text::new(s.bytes))
                .collect();
        }
        sink.event(Event::Exec(Exec {
            origin: self.origin(r, pid),
            filename: Text::new(filename),
        }));
    }

    /// A write to fd 1/2, or to an fd duplicated from them, is something the program said.
    fn message(&mut self, r: &Record, pid: u32, fd_arg: &str, s: Str, sink: &mut dyn Sink) {
        let Some((fd, _)) = syntax::fd(fd_arg) else {
            return;
        };
        let stream = match fd {
            1 | 2 => fd,
            _ => match self.stream(pid, fd) {
                Some(stream) => stream,
                None => return,
            },
        };
        self.truncated_messages += s.truncated as u64;
        sink.event(Event::Message(Message {
            origin: self.origin(r, pid),
            fd: stream,
            text: Text::new(s.bytes),
            truncated: s.truncated,
        }));
    }

    fn dup(&mut self, pid: u32, c: &Call, new: i64, sink: &mut dyn Sink) {
        let arg = |i: usize| c.args.get(i).map(String::as_str).unwrap_or("");
        let cloexec = match c.name.as_str() {
            "fcntl" if arg(1) == F_DUPFD => false,
            "fcntl" if arg(1) == F_DUPFD_CLOEXEC => true,
            "fcntl" => return,
            "dup3" => arg(2).contains("O_CLOEXEC"),
            _ => false,
        };
        let (Some((old, _)), Ok(new)) = (syntax::fd(arg(0)), i32::try_from(new)) else {
            return;
        };
        if self.ruleset_holders.contains(&pid) {
            sink.event(Event::FdDup {
                pid,
                old,
                new,
                cloexec,
            });
        }
        let stream = match old {
            1 | 2 => Some(old),
            _ => self.stream(pid, old),
        };
        self.set_stream(pid, new, stream.map(|s| (s, cloexec)));
    }

    fn landlock(&mut self, r: &Record, pid: u32, c: &Call, value: i64, sink: &mut dyn Sink) {
        let arg = |i: usize| c.args.get(i).map(String::as_str).unwrap_or("");
        let fd_of = |s: &str| syntax::fd(s).map(|(fd, _)| fd);
        let op = match c.name.as_str() {
            "landlock_create_ruleset" => {
                if arg(0) == "NULL" || arg(2).contains(LANDLOCK_CREATE_RULESET_VERSION) {
                    return; // an ABI query, not a ruleset
                }
                if self.ruleset_holders.len() < MAX_TRACKED {
                    self.ruleset_holders.insert(pid);
                }
                LandlockOp::CreateRuleset {
                    fd: value as i32,
                    handled_fs: landlock_bits(syntax::field(arg(0), "handled_access_fs")),
                    handled_net: landlock_bits(syntax::field(arg(0), "handled_access_net")),
                    scoped: landlock_bits(syntax::field(arg(0), "scoped")),
                }
            }
            "landlock_add_rule" => {
                let Some(ruleset_fd) = fd_of(arg(0)) else {
                    return;
                };
                let allowed = landlock_bits(syntax::field(arg(2), "allowed_access"));
                match arg(1) {
                    "LANDLOCK_RULE_PATH_BENEATH" | "1" => {
                        let parent = syntax::field(arg(2), "parent_fd").and_then(syntax::fd);
                        let Some((parent_fd, path)) = parent else {
                            return;
                        };
                        if let Some(path) = path {
                            // `-y` names the rule's directory right in the call.
                            sink.event(Event::FdOpened {
                                pid,
                                fd: parent_fd,
                                path: Text::new(path),
                            });
                        }
                        LandlockOp::AddPathRule {
                            ruleset_fd,
                            parent_fd,
                            allowed,
                        }
                    }
                    "LANDLOCK_RULE_NET_PORT" | "2" => LandlockOp::AddNetRule {
                        ruleset_fd,
                        port: syntax::field(arg(2), "port")
                            .and_then(flags::parse_number)
                            .unwrap_or(0),
                        allowed,
                    },
                    _ => return,
                }
            }
            "landlock_restrict_self" => LandlockOp::RestrictSelf {
                ruleset_fd: fd_of(arg(0)).unwrap_or(-1),
                flags: landlock_bits(Some(arg(1))) as u32,
            },
            _ => return,
        };
        sink.event(Event::Landlock(LandlockCall {
            origin: self.origin(r, pid),
            op,
        }));
    }
}

/// The task name the kernel would keep.
fn comm(name: &[u8]) -> Text {
    Text::new(&name[..name.len().min(COMM_LEN)])
}

/// The path argument, joined to a `-y` annotated dirfd when it is relative.
fn path_arg(c: &Call) -> Option<Vec<u8>> {
    let i = syscalls::path_arg(&c.name)? as usize;
    let path = syntax::string(c.args.get(i)?)?.bytes;
    if path.starts_with(b"/") || i == 0 {
        return Some(path);
    }
    let dir = c
        .args
        .get(i - 1)
        .and_then(|a| syntax::fd(a))
        .and_then(|(_, d)| d);
    Some(match dir {
        Some(mut d) if !path.is_empty() => {
            d.push(b'/');
            d.extend(path);
            d
        }
        _ => path,
    })
}

/// The flag argument as strace printed it.
fn flag_text(c: &Call) -> Option<&str> {
    match c.name.as_str() {
        "clone" | "clone3" => clone_flag_text(c),
        "openat2" => syntax::field(c.args.get(2)?, "flags"),
        n => c.args.get(syscalls::flag_arg(n)?).map(String::as_str),
    }
}

/// clone prints `flags=` among named arguments; clone3 inside its struct.
fn clone_flag_text(c: &Call) -> Option<&str> {
    match c.name.as_str() {
        "clone" => c.args.iter().find_map(|a| a.strip_prefix("flags=")),
        "clone3" => syntax::field(c.args.first()?, "flags"),
        _ => None,
    }
}

/// `LANDLOCK_ACCESS_FS_EXECUTE|LANDLOCK_ACCESS_FS_READ_FILE|0xc000` → bits. Names are the
/// rights in bit order (`correlate::landlock::FS_ACCESS`), network and scope rights by theirs.
fn landlock_bits(text: Option<&str>) -> u64 {
    const NET: &[&str] = &["bind_tcp", "connect_tcp"];
    const SCOPE: &[&str] = &["abstract_unix_socket", "signal"];
    const RESTRICT_SELF: &[&str] = &["log_same_exec_off", "log_new_exec_on", "log_subdomains_off"];
    let Some(text) = text else { return 0 };
    let mut bits = 0;
    for part in text.split('|').map(str::trim) {
        let lower = part.to_ascii_lowercase();
        let named = [
            ("landlock_access_fs_", crate::correlate::landlock::FS_ACCESS),
            ("landlock_access_net_", NET),
            ("landlock_scope_", SCOPE),
            ("landlock_restrict_self_", RESTRICT_SELF),
        ]
        .iter()
        .find_map(|(prefix, names)| {
            let n = lower.strip_prefix(prefix)?;
            names.iter().position(|x| *x == n)
        });
        bits |= match named {
            Some(i) => 1 << i,
            None => flags::parse_number(part).unwrap_or(0),
        };
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landlock_rights_from_names_and_numbers() {
        assert_eq!(
            landlock_bits(Some(
                "LANDLOCK_ACCESS_FS_EXECUTE|LANDLOCK_ACCESS_FS_READ_FILE|0xc000"
            )),
            1 | 4 | 0xc000
        );
        assert_eq!(
            landlock_bits(Some("LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON")),
            2
        );
        assert_eq!(landlock_bits(Some("0")), 0);
        assert_eq!(landlock_bits(None), 0);
    }
}

#[cfg(test)]
mod builder_tests {
    use super::super::{parse, Input, Source};
    use crate::capture::CaptureConfig;
    use crate::model::Event;

    fn events(log: &'static str) -> Vec<Event> {
        let input = Input {
            name: "t".into(),
            pid: None,
            source: Source::Reader(Box::new(log.as_bytes())),
        };
        let mut events = Vec::new();
        parse(vec![input], &CaptureConfig::default(), &mut events).unwrap();
        events
    }

    #[test]
    fn threads_belong_to_their_process_and_dup_of_stderr_is_a_message() {
        let ev = events(concat!(
            "10 execve(\"/usr/bin/tmux\", [\"tmux\"], 0x7ffc /* 3 vars */) = 0\n",
            "10 clone(child_stack=0x7f, flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM) = 11\n",
            "11 openat(AT_FDCWD, \"/dev/ptmx\", O_RDWR|O_NOCTTY) = -1 EACCES (Permission denied)\n",
            "10 dup(2) = 5\n",
            "10 writev(5, [{iov_base=\"fork failed: \", iov_len=13}, {iov_base=\"\\33[1mno\\n\", iov_len=8}], 2) = 21\n",
            "10 close(5) = 0\n",
            "10 write(5, \"not stderr any more\", 19) = 19\n",
            "11 +++ exited with 0 +++\n",
            "10 +++ killed by SIGKILL +++\n",
        ));
        let f = ev
            .iter()
            .find_map(|e| match e {
                Event::Failure(f) => Some(f),
                _ => None,
            })
            .unwrap();
        assert_eq!((f.origin.pid, f.origin.tid), (10, 11));
        assert_eq!(f.origin.comm.lossy(), "tmux");
        assert_eq!(f.flags, Some(0o2 | 0o400));
        assert_eq!(f.flags_text.as_deref(), Some("O_RDWR|O_NOCTTY"));
        let msgs: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some((m.fd, m.text.as_bytes().to_vec())),
                _ => None,
            })
            .collect();
        // Escapes are raw bytes again; the write after close(5) is not a message.
        assert_eq!(msgs, vec![(2, b"fork failed: \x1b[1mno\n".to_vec())]);
        let exits: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::Exit(x) => Some((x.pid, x.status)),
                _ => None,
            })
            .collect();
        assert_eq!(
            exits,
            vec![(10, Some(137))],
            "a thread's exit is not the process's"
        );
        assert!(
            !ev.iter().any(|e| matches!(e, Event::Fork(_))),
            "a thread is no fork"
        );
    }

    #[test]
    fn landlock_calls_with_fd_paths() {
        let ev = events(concat!(
            "7 landlock_create_ruleset({handled_access_fs=LANDLOCK_ACCESS_FS_READ_FILE|LANDLOCK_ACCESS_FS_WRITE_FILE, ...}, 48, 0) = 3<anon_inode:[landlock-ruleset]>\n",
            "7 landlock_add_rule(3<anon_inode:[landlock-ruleset]>, LANDLOCK_RULE_PATH_BENEATH, {allowed_access=LANDLOCK_ACCESS_FS_READ_FILE, parent_fd=4</usr>}, 0) = 0\n",
            "7 landlock_restrict_self(3<anon_inode:[landlock-ruleset]>, 0) = 0\n",
        ));
        let ops: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::Landlock(l) => Some(format!("{:?}", l.op)),
                Event::FdOpened { fd, path, .. } => Some(format!("fd {fd} {}", path.lossy())),
                _ => None,
            })
            .collect();
        assert_eq!(ops.len(), 4, "{ops:?}");
        assert!(
            ops[0].starts_with("CreateRuleset { fd: 3, handled_fs: 6"),
            "{ops:?}"
        );
        assert_eq!(ops[1], "fd 4 /usr");
        assert!(ops[2].starts_with("AddPathRule { ruleset_fd: 3, parent_fd: 4, allowed: 4"));
        assert!(ops[3].starts_with("RestrictSelf { ruleset_fd: 3"));
    }

    #[test]
    fn ruleset_fds_are_followed_through_dup_close_and_fork_until_exec() {
        let ev = events(concat!(
            "7 landlock_create_ruleset({handled_access_fs=LANDLOCK_ACCESS_FS_READ_FILE}, 8, 0) = 3\n",
            "7 dup(3) = 9\n",
            "7 close(3) = 0\n",
            "7 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 8\n",
            "8 landlock_restrict_self(9, 0) = 0\n",
            "8 dup3(9, 10, O_CLOEXEC) = 10\n",
            "8 execve(\"/usr/bin/true\", [\"true\"], 0x7ffc /* 3 vars */) = 0\n",
            "8 close(10) = -1 EBADF (Bad file descriptor)\n",
            "8 dup(1) = 4\n",
        ));
        let fds: Vec<String> = ev
            .iter()
            .filter_map(|e| match e {
                Event::FdDup {
                    pid,
                    old,
                    new,
                    cloexec,
                } => Some(format!("{pid} dup {old}->{new} {cloexec}")),
                Event::FdClosed { pid, fd } => Some(format!("{pid} close {fd}")),
                _ => None,
            })
            .collect();
        // The child inherits its parent's ruleset fds; after exec it holds none (they are
        // O_CLOEXEC), so its fd calls are no longer reported.
        assert_eq!(
            fds,
            ["7 dup 3->9 false", "7 close 3", "8 dup 9->10 true"],
            "{ev:#?}"
        );
    }
}
