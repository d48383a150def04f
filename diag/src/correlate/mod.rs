//! Correlation: the process tree, deduplicated failures with their context, messages split into
//! lines, and Landlock domains, all built from the event stream of any backend.

pub mod landlock;

use crate::context::{self, FailureContext};
use crate::model::{CaptureStats, Event, Failure, Message, Text};
use landlock::LandlockTracker;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};

/// Bound on kept message lines; the rest are counted.
const MAX_MESSAGES: usize = 2000;
/// Bound on distinct failures; the rest are counted.
const MAX_FAILURE_GROUPS: usize = 5000;

#[derive(Clone, Debug, Default)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: Text,
    pub exe: Option<Text>,
    pub first_seen_ns: u64,
    /// When it last exec'd successfully.
    pub exec_ns: Option<u64>,
    pub exited: bool,
}

/// One deduplicated failure: the same (pid, syscall, errno, path, kernel evidence).
#[derive(Clone, Debug)]
pub struct FailureGroup {
    pub failure: Failure,
    pub count: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    pub context: Option<FailureContext>,
}

/// Reads live state for the correlator; offline backends use [`Offline`].
pub trait LiveView {
    fn snapshot(&self, failure: &Failure) -> Option<FailureContext>;
    fn fd_path(&self, pid: u32, fd: i32) -> Option<Text>;
    fn exe(&self, pid: u32) -> Option<Text>;
}

/// No live process to look at (logs analysed after the fact).
pub struct Offline;

impl LiveView for Offline {
    fn snapshot(&self, _: &Failure) -> Option<FailureContext> {
        None
    }
    fn fd_path(&self, _: u32, _: i32) -> Option<Text> {
        None
    }
    fn exe(&self, _: u32) -> Option<Text> {
        None
    }
}

/// The running system, through procfs.
pub struct Procfs;

impl LiveView for Procfs {
    fn snapshot(&self, f: &Failure) -> Option<FailureContext> {
        // Counting the uid's tasks scans /proc; it runs once per distinct failure, not per call.
        let ids = f.origin.uid.zip(f.origin.gid);
        Some(context::snapshot(
            f.origin.pid,
            ids,
            f.path.as_ref().map(Text::as_bytes),
            true,
        ))
    }
    fn fd_path(&self, pid: u32, fd: i32) -> Option<Text> {
        let p = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
        Some(Text::new(std::os::unix::ffi::OsStrExt::as_bytes(
            p.as_os_str(),
        )))
    }
    fn exe(&self, pid: u32) -> Option<Text> {
        let p = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        Some(Text::new(std::os::unix::ffi::OsStrExt::as_bytes(
            p.as_os_str(),
        )))
    }
}

/// What makes two failures the same group: (pid, syscall, errno, path, kernel evidence).
type Identity<'a> = (u32, &'a str, i32, Option<&'a [u8]>, bool, Option<u32>);

fn identity(f: &Failure) -> Identity<'_> {
    (
        f.origin.pid,
        &f.syscall,
        f.errno,
        f.path.as_ref().map(Text::as_bytes),
        f.evidence.no_enter,
        f.evidence.denied_capability,
    )
}

#[derive(Default)]
pub struct Trace {
    pub processes: BTreeMap<u32, ProcessInfo>,
    pub failures: Vec<FailureGroup>,
    pub messages: Vec<Message>,
    pub landlock: LandlockTracker,
    pub stats: CaptureStats,
    /// Failures beyond the distinct-failure bound, and message lines beyond theirs.
    pub failures_dropped: u64,
    pub messages_dropped: u64,
    /// Time of the first event, for relative times.
    pub start_ns: Option<u64>,
    /// The tree was traced from its first instruction (`run`): every Landlock domain created in it
    /// was seen, so a process without one can only be confined by a domain diag itself is in.
    pub traced_from_start: bool,
    /// Groups by the hash of their identity; a hit is confirmed field by field. Looking up a
    /// failure borrows it: the per-event key no longer clones the syscall name and the path.
    index: HashMap<u64, Vec<usize>>,
    hasher: RandomState,
    partial_lines: HashMap<(u32, i32), Message>,
}

impl Trace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a process known before any event (the launched root, or an attached pid).
    pub fn add_process(&mut self, pid: u32, ppid: Option<u32>, comm: Text, exe: Option<Text>) {
        self.processes.entry(pid).or_insert(ProcessInfo {
            pid,
            ppid,
            comm,
            exe,
            first_seen_ns: 0,
            exec_ns: None,
            exited: false,
        });
    }

    pub fn on_event(&mut self, ev: Event, live: &dyn LiveView) {
        let t = ev.time_ns();
        if t != 0 && self.start_ns.is_none_or(|s| t < s) {
            self.start_ns = Some(t);
        }
        match ev {
            Event::Failure(f) => self.on_failure(f, live),
            Event::Message(m) => self.on_message(m),
            Event::Fork(f) => {
                let comm = f.comm.clone();
                let exe = self
                    .processes
                    .get(&f.parent_pid)
                    .and_then(|p| p.exe.clone());
                self.processes.insert(
                    f.child_pid,
                    ProcessInfo {
                        pid: f.child_pid,
                        ppid: Some(f.parent_pid),
                        comm,
                        exe,
                        first_seen_ns: f.time_ns,
                        exec_ns: None,
                        exited: false,
                    },
                );
                self.landlock.fork(f.parent_pid, f.child_pid);
            }
            Event::Exec(e) => {
                let exe = live.exe(e.origin.pid).or(Some(e.filename));
                let p = self.process_mut(e.origin.pid, e.origin.time_ns);
                p.comm = e.origin.comm;
                p.exe = exe;
                p.exec_ns = Some(e.origin.time_ns);
            }
            Event::Exit(e) => {
                self.flush_lines_of(e.pid);
                if let Some(p) = self.processes.get_mut(&e.pid) {
                    p.exited = true;
                }
            }
            Event::Landlock(call) => {
                self.note_comm(call.origin.pid, &call.origin.comm, call.origin.time_ns);
                self.landlock.call(&call, &|pid, fd| live.fd_path(pid, fd));
            }
            Event::FdOpened { pid, fd, path } => self.landlock.fd_opened(pid, fd, path),
        }
    }

    fn process_mut(&mut self, pid: u32, time_ns: u64) -> &mut ProcessInfo {
        self.processes.entry(pid).or_insert_with(|| ProcessInfo {
            pid,
            first_seen_ns: time_ns,
            ..Default::default()
        })
    }

    /// Processes rename themselves (tmux's server calls itself "tmux: server").
    fn note_comm(&mut self, pid: u32, comm: &Text, time_ns: u64) {
        if comm.is_empty() {
            return;
        }
        // Compared first: this runs for every event, and a process rarely renames itself.
        let p = self.process_mut(pid, time_ns);
        if p.comm != *comm {
            p.comm = comm.clone();
        }
    }

    fn on_failure(&mut self, f: Failure, live: &dyn LiveView) {
        self.note_comm(f.origin.pid, &f.origin.comm, f.origin.time_ns);
        let id = identity(&f);
        let hash = self.hasher.hash_one(id);
        let t = f.origin.time_ns;
        let known = self.index.get(&hash).and_then(|group| {
            group
                .iter()
                .copied()
                .find(|&i| identity(&self.failures[i].failure) == id)
        });
        if let Some(i) = known {
            let g = &mut self.failures[i];
            g.count += 1;
            g.last_ns = g.last_ns.max(t);
            return;
        }
        if self.failures.len() >= MAX_FAILURE_GROUPS {
            self.failures_dropped += 1;
            return;
        }
        let context = live.snapshot(&f);
        self.index
            .entry(hash)
            .or_default()
            .push(self.failures.len());
        self.failures.push(FailureGroup {
            failure: f,
            count: 1,
            first_ns: t,
            last_ns: t,
            context,
        });
    }

    /// Splits writes into lines per (pid, fd); a line may span several writes.
    fn on_message(&mut self, m: Message) {
        self.note_comm(m.origin.pid, &m.origin.comm, m.origin.time_ns);
        let key = (m.origin.pid, m.fd);
        let mut buf = self.partial_lines.remove(&key).unwrap_or_else(|| Message {
            text: Text::default(),
            ..m.clone()
        });
        buf.truncated |= m.truncated;
        for &b in m.text.as_bytes() {
            if b == b'\n' {
                let line = std::mem::take(&mut buf.text);
                self.push_line(Message {
                    text: line,
                    ..buf.clone()
                });
                buf.origin = m.origin.clone();
            } else if buf.text.0.len() < 4096 {
                buf.text.0.push(b);
            }
        }
        if !buf.text.is_empty() {
            self.partial_lines.insert(key, buf);
        }
    }

    fn push_line(&mut self, m: Message) {
        if m.text.as_bytes().iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        if self.messages.len() >= MAX_MESSAGES {
            self.messages_dropped += 1;
        } else {
            self.messages.push(m);
        }
    }

    fn flush_lines_of(&mut self, pid: u32) {
        let keys: Vec<_> = self
            .partial_lines
            .keys()
            .filter(|(p, _)| *p == pid)
            .copied()
            .collect();
        for k in keys {
            if let Some(m) = self.partial_lines.remove(&k) {
                self.push_line(m);
            }
        }
    }

    /// Ends the trace: flushes unterminated lines and orders messages by time.
    pub fn finish(&mut self, stats: CaptureStats) {
        let pending: Vec<_> = self.partial_lines.drain().map(|(_, m)| m).collect();
        for m in pending {
            self.push_line(m);
        }
        self.messages.sort_by_key(|m| m.origin.time_ns);
        self.stats = stats;
    }

    /// Ancestors of `pid`, nearest first.
    pub fn ancestors(&self, pid: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut cur = pid;
        while let Some(pp) = self.processes.get(&cur).and_then(|p| p.ppid) {
            if out.contains(&pp) || pp == pid {
                break;
            }
            out.push(pp);
            cur = pp;
        }
        out
    }

    /// Processes still running, as far as the events tell.
    pub fn live_pids(&self) -> Vec<u32> {
        self.processes
            .values()
            .filter(|p| !p.exited)
            .map(|p| p.pid)
            .collect()
    }

    pub fn comm_of(&self, pid: u32) -> Text {
        self.processes
            .get(&pid)
            .map(|p| p.comm.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Fork, Origin};

    fn origin(pid: u32, t: u64) -> Origin {
        Origin {
            pid,
            tid: pid,
            time_ns: t,
            comm: Text::from("x"),
            ..Default::default()
        }
    }

    #[test]
    fn failures_dedupe_with_counts_and_lines_join_across_writes() {
        let mut tr = Trace::new();
        let fail = |t| {
            Event::Failure(Failure {
                origin: origin(5, t),
                syscall: "openat".into(),
                errno: 13,
                path: Some(Text::from("/dev/ptmx")),
                ..Default::default()
            })
        };
        tr.on_event(fail(10), &Offline);
        tr.on_event(fail(20), &Offline);
        assert_eq!(tr.failures.len(), 1);
        assert_eq!(
            (
                tr.failures[0].count,
                tr.failures[0].first_ns,
                tr.failures[0].last_ns
            ),
            (2, 10, 20)
        );

        let msg = |text: &str, t| {
            Event::Message(Message {
                origin: origin(4, t),
                fd: 2,
                text: Text::from(text),
                truncated: false,
            })
        };
        tr.on_event(msg("create window failed: ", 30), &Offline);
        tr.on_event(msg("fork failed: Permission denied\nnext", 31), &Offline);
        tr.finish(CaptureStats::default());
        let lines: Vec<_> = tr.messages.iter().map(|m| m.text.lossy()).collect();
        assert_eq!(
            lines,
            vec![
                "create window failed: fork failed: Permission denied",
                "next"
            ]
        );
    }

    #[test]
    fn tree_ancestry() {
        let mut tr = Trace::new();
        tr.add_process(1, None, Text::from("sh"), None);
        for (p, c) in [(1, 2), (2, 3)] {
            tr.on_event(
                Event::Fork(Fork {
                    time_ns: 1,
                    parent_pid: p,
                    child_pid: c,
                    comm: Text::from("c"),
                }),
                &Offline,
            );
        }
        assert_eq!(tr.ancestors(3), vec![2, 1]);
    }
}
