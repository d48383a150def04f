//! Correlation: the process tree, deduplicated failures with their context, messages split into
//! lines, and Landlock domains, all built from the event stream of any backend.

pub mod landlock;

use crate::capture::syscall_args::mapped_fd;
use crate::context::{self, FailureContext, ProcessContext, Seen, TaskCounts};
use crate::model::{
    syscalls, CaptureStats, DeathSignal, Event, Failure, Flush, Fork, Message, Origin,
    PathIdentity, Text,
};
use landlock::LandlockTracker;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};

/// Bound on kept message lines: the first half and the last half are kept (a long log's error
/// is usually at its end), the middle counted.
const MAX_MESSAGES: usize = 2000;
/// Bound on distinct failures; the rest are counted.
const MAX_FAILURE_GROUPS: usize = 5000;
pub const MAX_EXECS_KEPT: usize = 16;

#[derive(Clone, Debug, Default)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: Text,
    pub exe: Option<Text>,
    pub first_seen_ns: u64,
    /// When it last exec'd successfully.
    pub exec_ns: Option<u64>,
    /// Its successful execs (time, file), the first [`MAX_EXECS_KEPT`]: a PATH search's misses
    /// are told apart by a later exec of the same name, which need not be the last one.
    pub execs: Vec<(u64, Text)>,
    pub exited: bool,
    /// Its exit status, where the backend knows it.
    pub exit_status: Option<i32>,
}

/// Bound on kept recovered failures; the rest are counted.
const MAX_RECOVERED: usize = 500;

/// One deduplicated failure: the same (pid, syscall, errno, path, kernel evidence).
#[derive(Clone, Debug)]
pub struct FailureGroup {
    pub failure: Failure,
    /// Calls, across the group's own process and any folded ones.
    pub count: u64,
    /// Other processes whose identical failure was folded into this group.
    pub other_pids: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    pub context: Option<FailureContext>,
    /// From a flight recorder: what the process did next that made it a candidate (None: the
    /// failure was reported at once).
    pub flush: Option<Flush>,
}

/// Reads live state for the correlator; offline backends use [`Offline`].
pub trait LiveView {
    /// `relatives`: living candidates (nearest first) to read the filesystem through when the
    /// failing process has already exited.
    /// `counts`: the task counts the trace's failures share.
    /// `seen`: the process and its relatives as read while alive, for when it has exited.
    fn snapshot(
        &self,
        failure: &Failure,
        relatives: &[u32],
        seen: &Seen,
        counts: &mut TaskCounts,
    ) -> Option<FailureContext>;
    /// The process's credentials, limits and cgroup now (at its exec), kept in case it exits
    /// before a failure of it is examined.
    fn sight(&self, pid: u32) -> Option<ProcessContext>;
    fn fd_path(&self, pid: u32, fd: i32) -> Option<Text>;
    /// The file mapped at `addr` in `pid`'s memory.
    fn mapping_path(&self, pid: u32, addr: u64) -> Option<Text>;
    fn exe(&self, pid: u32) -> Option<Text>;
}

/// What a log read after the fact records, beyond its events.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogScope {
    /// Process creation is in the log (strace with successful calls; audit logs and `-Z` lack it).
    pub forks_recorded: bool,
}

/// Times from this one on are wall-clock (nanoseconds since the epoch, after 2001): logs with
/// dates (audit records, `strace -ttt`) carry them; time-of-day and relative stamps stay below.
pub const WALL_CLOCK_FLOOR_NS: u64 = 1_000_000_000 * 1_000_000_000;

/// No live process to look at (logs analysed after the fact).
pub struct Offline;

impl LiveView for Offline {
    fn snapshot(
        &self,
        _: &Failure,
        _: &[u32],
        _: &Seen,
        _: &mut TaskCounts,
    ) -> Option<FailureContext> {
        None
    }
    fn sight(&self, _: u32) -> Option<ProcessContext> {
        None
    }
    fn fd_path(&self, _: u32, _: i32) -> Option<Text> {
        None
    }
    fn mapping_path(&self, _: u32, _: u64) -> Option<Text> {
        None
    }
    fn exe(&self, _: u32) -> Option<Text> {
        None
    }
}

/// The running system, through procfs.
pub struct Procfs;

impl LiveView for Procfs {
    fn snapshot(
        &self,
        f: &Failure,
        relatives: &[u32],
        seen: &Seen,
        counts: &mut TaskCounts,
    ) -> Option<FailureContext> {
        let ids = f.origin.uid.zip(f.origin.gid);
        // A cut path names no file: examining it would describe some other (or no) file.
        let whole_path = f.path.as_ref().filter(|_| !f.path_truncated());
        let mut ctx = context::snapshot(
            f.origin.pid,
            ids,
            relatives,
            seen,
            whole_path.map(Text::as_bytes),
            counts,
            syscalls::is_clone(&f.syscall),
            f.at_failure.as_deref(),
        );
        ctx.refusal = context::refusal::RefusalFacts::read(f, ctx.path.as_ref());
        if let (Some(cut), true) = (f.path_cut, f.path_truncated()) {
            ctx.notes.push(format!(
                "path: only its first {} bytes were copied and the whole path could not be read back from the process: not examined",
                cut.head
            ));
        }
        Some(ctx)
    }
    fn sight(&self, pid: u32) -> Option<ProcessContext> {
        ProcessContext::read(pid).ok()
    }
    fn fd_path(&self, pid: u32, fd: i32) -> Option<Text> {
        let p = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
        Some(Text::new(std::os::unix::ffi::OsStrExt::as_bytes(
            p.as_os_str(),
        )))
    }
    fn mapping_path(&self, pid: u32, addr: u64) -> Option<Text> {
        let maps = procfs::process::Process::new(pid as i32)
            .ok()?
            .maps()
            .ok()?;
        maps.into_iter().find_map(|m| match m.pathname {
            procfs::process::MMapPath::Path(p) if (m.address.0..m.address.1).contains(&addr) => {
                Some(Text::new(std::os::unix::ffi::OsStrExt::as_bytes(
                    p.as_os_str(),
                )))
            }
            _ => None,
        })
    }
    fn exe(&self, pid: u32) -> Option<Text> {
        let p = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
        Some(Text::new(std::os::unix::ffi::OsStrExt::as_bytes(
            p.as_os_str(),
        )))
    }
}

/// `mmap` and `mprotect` name no path: the file is the one the fd argument held, or the one
/// mapped at the address, named while the process may still hold it (ptrace stops it at the
/// failure; under eBPF the fd is often closed by now).
fn name_mapped_file(f: &mut Failure, live: &dyn LiveView) {
    let Some(args) = f.args.filter(|_| f.path.is_none()) else {
        return;
    };
    let pid = f.origin.pid;
    let named = match f.syscall.as_str() {
        "mprotect" | "pkey_mprotect" => live.mapping_path(pid, args[0]),
        _ => mapped_fd(&f.syscall, &args).and_then(|fd| live.fd_path(pid, fd)),
    };
    // Only a file reachable by name: not "socket:[..]", "/memfd:x (deleted)", or a removed file.
    f.path =
        named.filter(|p| p.as_bytes().starts_with(b"/") && !p.as_bytes().ends_with(b" (deleted)"));
}

/// The same failure regardless of the process: (syscall, errno, path, no_enter, cap, comm).
type Signature<'a> = (&'a str, i32, PathIdentity<'a>, bool, Option<u32>, &'a [u8]);

fn signature(f: &Failure) -> Signature<'_> {
    (
        &f.syscall,
        f.errno,
        f.path_identity(),
        f.evidence.no_enter,
        f.evidence.denied_capability,
        f.origin.comm.as_bytes(),
    )
}

/// The groups one signature made: the first (whose failure is the signature), how many, the
/// last, and the last process folded into it.
struct Fold {
    first: usize,
    groups: usize,
    last: usize,
    folded_pid: u32,
}
/// Distinct processes a signature keeps its own group for, before further ones fold.
const FOLD_AFTER: usize = 8;
/// Process-table size above which exited processes nothing refers to are pruned.
const PROCESS_TABLE_SOFT_LIMIT: usize = 4096;

/// What makes two failures the same group: (pid, syscall, errno, path, kernel evidence).
type Identity<'a> = (u32, &'a str, i32, PathIdentity<'a>, bool, Option<u32>);

fn identity(f: &Failure) -> Identity<'_> {
    (
        f.origin.pid,
        &f.syscall,
        f.errno,
        f.path_identity(),
        f.evidence.no_enter,
        f.evidence.denied_capability,
    )
}

#[derive(Default)]
pub struct Trace {
    pub processes: BTreeMap<u32, ProcessInfo>,
    pub failures: Vec<FailureGroup>,
    /// Recorded failures that led to no complaint and no death (not candidates).
    pub recovered: Vec<(Failure, u64)>,
    pub recovered_dropped: u64,
    pub messages: Vec<Message>,
    pub landlock: LandlockTracker,
    pub stats: CaptureStats,
    /// Failures beyond the distinct-failure bound, and message lines beyond theirs.
    pub failures_dropped: u64,
    pub messages_dropped: u64,
    /// Time of the first event, for relative times.
    pub start_ns: Option<u64>,
    /// The launched command's pid until it exec's: until then it is still diag (finding the
    /// command on PATH, `--user` and policy setup), and only its exec of the command is the
    /// workload's.
    pub launching: Option<u32>,
    /// The tree was traced from its first instruction (`run`): every Landlock domain created in it
    /// was seen, so a process without one can only be confined by a domain diag itself is in.
    pub traced_from_start: bool,
    /// Set when the trace was read from a log after the fact: this host's files, processes
    /// and sysctls say nothing about it.
    pub from_log: Option<LogScope>,
    /// Exited processes removed from the table because nothing in the report refers to them.
    pub processes_pruned: u64,
    /// Folds by the hash of their signature; a hit is confirmed against the first group's
    /// failure, so a lookup borrows the failure (a fork loop brings a new pid per event).
    signatures: HashMap<u64, Vec<Fold>>,
    prune_at: usize,
    /// Groups by the hash of their identity; a hit is confirmed field by field. Looking up a
    /// failure borrows it: the per-event key no longer clones the syscall name and the path.
    index: HashMap<u64, Vec<usize>>,
    hasher: RandomState,
    /// Shared by the failures' context snapshots.
    pub task_counts: TaskCounts,
    /// Each process as read when it exec'd (or its parent's, inherited at fork): what is known
    /// of it if it exits before its failure is examined. Pruned with the process table.
    sightings: HashMap<u32, ProcessContext>,
    partial_lines: HashMap<(u32, i32), Message>,
    /// The newest lines once `messages` holds its half of [`MAX_MESSAGES`].
    message_tail: VecDeque<Message>,
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
            execs: vec![],
            exited: false,
            exit_status: None,
        });
    }

    pub fn on_event(&mut self, ev: Event, live: &dyn LiveView) {
        let t = ev.time_ns();
        if t != 0 && self.start_ns.is_none_or(|s| t < s) {
            self.start_ns = Some(t);
        }
        if self.is_diags_own(&ev) {
            return;
        }
        match ev {
            Event::Failure(f) => {
                self.note_comm(f.origin.pid, &f.origin.comm, f.origin.time_ns);
                self.count_failure(f, 1, live, None)
            }
            Event::Repeated { failure, times } => self.count_failure(failure, times, live, None),
            Event::Recent {
                failure,
                times,
                flush,
            } if flush.in_trouble() => {
                self.note_comm(
                    failure.origin.pid,
                    &failure.origin.comm,
                    failure.origin.time_ns,
                );
                self.count_failure(failure, times, live, Some(flush))
            }
            Event::Recent { failure, times, .. } => {
                if self.recovered.len() < MAX_RECOVERED {
                    self.recovered.push((failure, times));
                } else {
                    self.recovered_dropped += times;
                }
            }
            Event::Message(m) => self.on_message(m),
            Event::Fork(f) if self.is_same_process(&f) => self.on_known_child_forked(f),
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
                        execs: vec![],
                        exited: false,
                        exit_status: None,
                    },
                );
                self.sight(f.child_pid, live);
                self.landlock.fork(f.parent_pid, f.child_pid);
            }
            Event::Exec(e) => {
                if self.launching == Some(e.origin.pid) {
                    self.launching = None;
                }
                self.landlock.exec(e.origin.pid);
                self.sight(e.origin.pid, live);
                let exe = live.exe(e.origin.pid).or(Some(e.filename));
                let p = self.process_mut(e.origin.pid, e.origin.time_ns);
                p.comm = e.origin.comm;
                if p.execs.len() < MAX_EXECS_KEPT {
                    p.execs
                        .push((e.origin.time_ns, exe.clone().unwrap_or_default()));
                }
                p.exe = exe;
                p.exec_ns = Some(e.origin.time_ns);
            }
            Event::Exit(e) => {
                self.flush_lines_of(e.pid);
                if let Some(p) = self.processes.get_mut(&e.pid) {
                    p.exited = true;
                    p.exit_status = e.status;
                }
                if let Some(sig) = e.signal.filter(|s| s.from_kernel(e.pid)) {
                    self.on_killed(e.pid, e.time_ns, sig, live);
                }
                self.prune_processes();
            }
            Event::Landlock(call) => {
                self.note_comm(call.origin.pid, &call.origin.comm, call.origin.time_ns);
                self.landlock.call(&call, &|pid, fd| live.fd_path(pid, fd));
            }
            Event::FdOpened { pid, fd, path } => self.landlock.fd_opened(pid, fd, path),
            Event::FdDup {
                pid,
                old,
                new,
                cloexec,
            } => self.landlock.fd_dup(pid, old, new, cloexec),
            Event::FdClosed { pid, fd } => self.landlock.fd_closed(pid, fd),
        }
    }

    /// Reads `pid` while it may still be alive; a process already gone (or a zombie) forgets
    /// what was seen before (a recycled pid, or a process that moved cgroup before its exec).
    fn sight(&mut self, pid: u32, live: &dyn LiveView) {
        match live.sight(pid) {
            Some(seen) => self.sightings.insert(pid, seen),
            None => self.sightings.remove(&pid),
        };
    }

    /// Whether a fork record names the process already in the table rather than a new one on a
    /// recycled pid. The parent's record can arrive after a short-lived child exec'd and exited
    /// (eBPF sends it when the parent's clone returns; ptrace stops come in no fixed order), so an
    /// exited entry is the same process unless another parent is on record: a pid comes back
    /// only after its old owner was reaped, and the same parent getting it again needs a
    /// wrap-around of the whole pid space between two records of one fork.
    fn is_same_process(&self, f: &Fork) -> bool {
        self.processes
            .get(&f.child_pid)
            .is_some_and(|p| !p.exited || p.ppid.is_none_or(|ppid| ppid == f.parent_pid))
    }

    /// A fork whose child is already known: the eBPF backend reports each process twice (by
    /// its parent and by itself), and ptrace stops arrive in no fixed order, so a child's own
    /// events can come first. Fill in what is missing; keep what the child did since.
    fn on_known_child_forked(&mut self, f: Fork) {
        let parent_exe = self
            .processes
            .get(&f.parent_pid)
            .and_then(|p| p.exe.clone());
        let Some(child) = self.processes.get_mut(&f.child_pid) else {
            return;
        };
        if child.ppid.is_some() {
            return;
        }
        child.ppid = Some(f.parent_pid);
        if child.exe.is_none() {
            child.exe = parent_exe;
        }
        self.landlock.fork(f.parent_pid, f.child_pid);
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

    /// A death by a signal the kernel sent is a failure of its own: the call it was killed on
    /// (seccomp's SIGSYS names it), else the process's last failed call.
    fn on_killed(&mut self, pid: u32, time_ns: u64, sig: DeathSignal, live: &dyn LiveView) {
        let last = self
            .failures
            .iter()
            .filter(|g| g.failure.origin.pid == pid)
            .max_by_key(|g| g.last_ns)
            .map(|g| g.failure.syscall.clone());
        let syscall = match sig.syscall {
            Some(nr) => syscalls::name(nr),
            None => last.unwrap_or_else(|| "unknown".into()),
        };
        let comm = self
            .processes
            .get(&pid)
            .map(|p| p.comm.clone())
            .unwrap_or_default();
        let f = Failure {
            origin: Origin {
                time_ns,
                pid,
                tid: pid,
                comm,
                ..Origin::default()
            },
            syscall,
            signal: Some(sig),
            ..Failure::default()
        };
        // A death is reported as it happens, not handed over by a recorder.
        self.count_failure(f, 1, live, None);
    }

    /// Adds `times` calls of failure `f` (the last at `f`'s time) to its group.
    fn count_failure(
        &mut self,
        mut f: Failure,
        times: u64,
        live: &dyn LiveView,
        flush: Option<Flush>,
    ) {
        name_mapped_file(&mut f, live);
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
            g.count += times;
            g.last_ns = g.last_ns.max(t);
            return;
        }
        let sig = signature(&f);
        let sig_hash = self.hasher.hash_one(sig);
        let failures = &self.failures;
        let fold = self.signatures.get_mut(&sig_hash).and_then(|folds| {
            folds
                .iter_mut()
                .find(|k| signature(&failures[k.first].failure) == sig)
        });
        if let Some(k) = fold.filter(|k| k.groups >= FOLD_AFTER) {
            // A fork loop failing the same way in each child: count it, keep one group, and
            // remember no per-process key, so memory stays flat however many children come.
            let g = &mut self.failures[k.last];
            g.count += times;
            if k.folded_pid != f.origin.pid {
                g.other_pids += 1;
                k.folded_pid = f.origin.pid;
            }
            g.last_ns = g.last_ns.max(t);
            return;
        }
        if self.failures.len() >= MAX_FAILURE_GROUPS {
            self.failures_dropped += times;
            return;
        }
        let relatives = self.relatives(f.origin.pid);
        let seen = Seen {
            own: self.sightings.get(&f.origin.pid).cloned(),
            relatives_pids: if syscalls::is_clone(&f.syscall) {
                relatives
                    .iter()
                    .filter_map(|r| Some((*r, self.sightings.get(r)?.pids.clone()?)))
                    .collect()
            } else {
                Vec::new()
            },
        };
        let context = live.snapshot(&f, &relatives, &seen, &mut self.task_counts);
        let at = self.failures.len();
        self.index.entry(hash).or_default().push(at);
        let folds = self.signatures.entry(sig_hash).or_default();
        match folds
            .iter_mut()
            .find(|k| signature(&self.failures[k.first].failure) == signature(&f))
        {
            Some(k) => {
                k.groups += 1;
                k.last = at;
                k.folded_pid = 0;
            }
            None => folds.push(Fold {
                first: at,
                groups: 1,
                last: at,
                folded_pid: 0,
            }),
        }
        self.failures.push(FailureGroup {
            failure: f,
            count: times,
            other_pids: 0,
            first_ns: t,
            last_ns: t,
            context,
            flush,
        });
    }

    /// Keeps the table bounded under fork loops: exited processes that no failure or message
    /// refers to, and that are no ancestor of one, are dropped (and counted).
    fn prune_processes(&mut self) {
        if self.processes.len() < self.prune_at.max(PROCESS_TABLE_SOFT_LIMIT) {
            return;
        }
        let mut keep: std::collections::HashSet<u32> = self
            .failures
            .iter()
            .map(|g| g.failure.origin.pid)
            .chain(
                self.messages
                    .iter()
                    .chain(&self.message_tail)
                    .map(|m| m.origin.pid),
            )
            .collect();
        for pid in keep.clone() {
            keep.extend(self.ancestors(pid));
        }
        let before = self.processes.len();
        self.processes
            .retain(|pid, p| !p.exited || p.ppid.is_none() || keep.contains(pid));
        self.processes_pruned += (before - self.processes.len()) as u64;
        self.landlock
            .retain_processes(|pid| self.processes.contains_key(&pid));
        self.sightings
            .retain(|pid, _| self.processes.contains_key(pid));
        self.prune_at = 2 * self.processes.len();
    }

    /// A failure of the launched child before its exec, other than the exec itself.
    fn is_diags_own(&self, ev: &Event) -> bool {
        let f = match ev {
            Event::Failure(f) => f,
            Event::Repeated { failure, .. } | Event::Recent { failure, .. } => failure,
            _ => return false,
        };
        self.launching == Some(f.origin.pid) && !syscalls::is_exec(&f.syscall)
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
        if self.messages.len() < MAX_MESSAGES / 2 {
            self.messages.push(m);
            return;
        }
        if self.message_tail.len() == MAX_MESSAGES / 2 {
            self.message_tail.pop_front();
            self.messages_dropped += 1;
        }
        self.message_tail.push_back(m);
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
        self.messages.extend(self.message_tail.drain(..));
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

    /// The traced processes closest to `pid`: its own descendants, then each ancestor, nearest
    /// first, followed by that ancestor's other descendants. When `pid` has exited, the first
    /// living one most likely shares its mount namespace (namespaces are inherited down the tree).
    pub fn relatives(&self, pid: u32) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        self.push_descendants(pid, pid, &mut out);
        for a in self.ancestors(pid) {
            if !self.processes.contains_key(&a) {
                break; // outside the traced tree (diag itself)
            }
            out.push(a);
            self.push_descendants(a, pid, &mut out);
        }
        out
    }

    fn push_descendants(&self, of: u32, except: u32, out: &mut Vec<u32>) {
        let mut frontier = vec![of];
        while let Some(p) = frontier.pop() {
            for c in self.processes.values().filter(|c| c.ppid == Some(p)) {
                if c.pid != except && !out.contains(&c.pid) {
                    out.push(c.pid);
                    frontier.push(c.pid);
                }
            }
        }
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
    use crate::model::{Exec, Fork, Origin, PathCut};

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
        // The kernel's count of further identical calls lands in the same group.
        let Event::Failure(again) = fail(90) else {
            unreachable!()
        };
        tr.on_event(
            Event::Repeated {
                failure: again,
                times: 40,
            },
            &Offline,
        );
        assert_eq!(tr.failures.len(), 1);
        assert_eq!((tr.failures[0].count, tr.failures[0].last_ns), (42, 90));

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
    fn a_long_output_keeps_its_head_and_its_tail() {
        let mut tr = Trace::new();
        let lines = MAX_MESSAGES as u64 + 500;
        for i in 0..lines {
            tr.on_event(
                Event::Message(Message {
                    origin: origin(4, i + 1),
                    fd: 2,
                    text: Text::new(format!("line {i}\n")),
                    truncated: false,
                }),
                &Offline,
            );
        }
        tr.finish(CaptureStats::default());
        let kept: Vec<_> = tr.messages.iter().map(|m| m.text.lossy()).collect();
        assert_eq!(kept.len(), MAX_MESSAGES);
        assert_eq!(tr.messages_dropped, 500);
        assert_eq!(kept[0], "line 0");
        assert_eq!(
            kept[MAX_MESSAGES / 2 - 1],
            format!("line {}", MAX_MESSAGES / 2 - 1)
        );
        assert_eq!(
            kept[MAX_MESSAGES / 2],
            format!("line {}", MAX_MESSAGES / 2 + 500)
        );
        assert_eq!(kept.last().unwrap(), &format!("line {}", lines - 1));
    }

    #[test]
    fn distinct_failures_share_one_task_count_scan_per_uid() {
        // Each distinct failure gets its own context snapshot, read live from /proc (this test
        // process stands in for the traced one); counting the uid's tasks must not rescan /proc
        // for each of them, except for a failed clone, whose verdict the count is.
        let me = std::process::id();
        let mut tr = Trace::new();
        let fail = |syscall: &str, i: u32| {
            Event::Failure(Failure {
                origin: Origin {
                    uid: Some(0),
                    gid: Some(0),
                    ..origin(me, u64::from(i) + 1)
                },
                syscall: syscall.into(),
                errno: 13,
                path: Some(Text::new(format!("/nonexistent/{i}"))),
                ..Default::default()
            })
        };
        for i in 0..200 {
            tr.on_event(fail("openat", i), &Procfs);
        }
        assert_eq!(tr.failures.len(), 200);
        assert_eq!(tr.task_counts.scans, 1);
        let counted = |g: &FailureGroup| g.context.as_ref()?.process.as_ref()?.uid_tasks;
        assert!(tr
            .failures
            .iter()
            .all(|g| counted(g).is_some_and(|n| n > 0)));
        tr.on_event(fail("clone", 0), &Procfs);
        assert_eq!(tr.task_counts.scans, 2, "a failed clone counts afresh");
    }

    #[test]
    fn a_mapping_failure_is_named_by_its_fd_or_its_address() {
        // This test process stands in for the traced one, alive at the failure as under ptrace.
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib.so");
        std::fs::write(&lib, b"x").unwrap();
        let file = std::fs::File::open(&lib).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let me = std::process::id();
        let fail = |syscall: &str, args: [u64; 6]| {
            Event::Failure(Failure {
                origin: origin(me, 1),
                syscall: syscall.into(),
                errno: libc::EPERM,
                flags: Some(5), // PROT_READ|PROT_EXEC
                args: Some(args),
                ..Default::default()
            })
        };
        let mut tr = Trace::new();
        tr.on_event(fail("mmap", [0, 4096, 5, 0x2, fd as u64, 0]), &Procfs);
        // An anonymous mapping (MAP_ANONYMOUS) names no file, whatever its fd argument.
        tr.on_event(fail("mmap", [0, 4096, 5, 0x22, fd as u64, 0]), &Procfs);
        // mprotect: the file mapped at the address (this test's own code).
        let code = a_mapping_failure_is_named_by_its_fd_or_its_address as *const () as u64;
        tr.on_event(fail("mprotect", [code, 4096, 5, 0, 0, 0]), &Procfs);
        let paths: Vec<_> = tr
            .failures
            .iter()
            .map(|g| g.failure.path.as_ref().map(|p| p.lossy()))
            .collect();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert_eq!(
            paths,
            vec![
                Some(lib.to_string_lossy().into_owned()),
                None,
                Some(exe.to_string_lossy().into_owned())
            ]
        );
        assert!(tr.failures[0].context.as_ref().unwrap().path.is_some());
    }

    #[test]
    fn a_process_gone_before_its_failure_is_judged_on_what_its_exec_showed() {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        // SAFETY: setrlimit is async-signal-safe; the child only execs afterwards.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NPROC, 77, 77)
                    .map_err(std::io::Error::from)
            })
        };
        #[allow(clippy::zombie_processes)] // reaped at the end: it must stay a zombie until then
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        // Wait for the exec (its comm becomes "sleep").
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n"
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let mut tr = Trace::new();
        tr.on_event(
            Event::Exec(Exec {
                origin: origin(pid, 1),
                filename: Text::from("/usr/bin/sleep"),
            }),
            &Procfs,
        );
        // Killed but not reaped, as the eBPF backend finds a failed process: a zombie, whose
        // /proc shows the root cgroup and no threads.
        child.kill().unwrap();
        let stat = || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        while !stat().contains(") Z ") {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        tr.on_event(
            Event::Failure(Failure {
                origin: Origin {
                    uid: Some(4242),
                    gid: Some(4242),
                    ..origin(pid, 2)
                },
                syscall: "clone3".into(),
                errno: libc::EAGAIN,
                ..Default::default()
            }),
            &Procfs,
        );
        let ctx = tr.failures[0].context.as_ref().unwrap();
        let p = ctx.process.as_ref().unwrap();
        assert!(p.from_event && p.sighted);
        assert_eq!((p.nproc_limit, p.ruid), (Some(77), 4242));
        assert!(
            ctx.notes[0].contains("read when it exec'd"),
            "{:?}",
            ctx.notes
        );
    }

    #[test]
    fn cut_paths_with_one_head_stay_apart_and_a_read_back_one_takes_its_repeats() {
        let head = "/d".repeat(200).into_bytes();
        let cut = |tail_hash: u64, resolved: bool| PathCut {
            head: head.len(),
            tail: Some((500, tail_hash)),
            resolved,
        };
        let fail = |path: Vec<u8>, cut: PathCut| Failure {
            origin: origin(5, 1),
            syscall: "openat".into(),
            errno: 13,
            path: Some(Text::new(path)),
            path_cut: Some(cut),
            ..Default::default()
        };
        let mut tr = Trace::new();
        let whole = [head.clone(), b"/tail-one".to_vec()].concat();
        tr.on_event(Event::Failure(fail(whole.clone(), cut(1, true))), &Offline);
        tr.on_event(Event::Failure(fail(head.clone(), cut(2, false))), &Offline);
        assert_eq!(tr.failures.len(), 2, "same head, different tails");
        // The kernel's repeat count names the path by its head, like it first reported it.
        tr.on_event(
            Event::Repeated {
                failure: fail(head.clone(), cut(1, false)),
                times: 9,
            },
            &Offline,
        );
        assert_eq!(tr.failures.len(), 2);
        assert_eq!(tr.failures[0].count, 10);
        assert_eq!(
            tr.failures[0].failure.path.as_ref().unwrap().as_bytes(),
            whole
        );
        // Nine more processes failing on the cut path: folded after FOLD_AFTER, apart from the
        // other tail's.
        for pid in 10..20 {
            let mut f = fail(head.clone(), cut(2, false));
            f.origin.pid = pid;
            tr.on_event(Event::Failure(f), &Offline);
        }
        let on_tail_two = tr
            .failures
            .iter()
            .filter(|g| g.failure.path_cut.is_some_and(|c| c.tail == Some((500, 2))));
        assert_eq!(on_tail_two.map(|g| g.count).sum::<u64>(), 11);
        assert_eq!(tr.failures[0].count, 10);
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
        // 1 ─ 2 ─ 3, 1 ─ 4, 3 ─ 5: own children first, then outwards.
        for (p, c) in [(1, 4), (3, 5)] {
            tr.on_event(
                Event::Fork(Fork {
                    time_ns: 2,
                    parent_pid: p,
                    child_pid: c,
                    comm: Text::from("c"),
                }),
                &Offline,
            );
        }
        assert_eq!(tr.relatives(3), vec![5, 2, 1, 4]);
    }

    #[test]
    fn a_process_reported_twice_keeps_its_first_fork() {
        let mut tr = Trace::new();
        let fork = |parent, t| {
            Event::Fork(Fork {
                time_ns: t,
                parent_pid: parent,
                child_pid: 7,
                comm: Text::from("c"),
            })
        };
        tr.on_event(fork(1, 5), &Offline);
        tr.on_event(
            Event::Exec(Exec {
                origin: origin(7, 6),
                filename: Text::from("/bin/true"),
            }),
            &Offline,
        );
        tr.on_event(fork(1, 9), &Offline);
        let p = &tr.processes[&7];
        assert_eq!((p.ppid, p.first_seen_ns, p.exec_ns), (Some(1), 5, Some(6)));
        assert_eq!(p.comm.lossy(), "x", "the exec's name, not the late fork's");

        // A short-lived child that exec'd and exited before its parent's record came (eBPF sends
        // it when the parent's clone returns): still the child's own name and program.
        let child_forked = |t| {
            Event::Fork(Fork {
                time_ns: t,
                parent_pid: 1,
                child_pid: 9,
                comm: Text::from("sh"),
            })
        };
        tr.on_event(child_forked(20), &Offline);
        tr.on_event(
            Event::Exec(Exec {
                origin: origin(9, 21),
                filename: Text::from("/bin/cat"),
            }),
            &Offline,
        );
        tr.on_event(
            Event::Exit(crate::model::Exit {
                time_ns: 22,
                pid: 9,
                status: Some(1),
                signal: None,
            }),
            &Offline,
        );
        tr.on_event(child_forked(23), &Offline);
        let p = &tr.processes[&9];
        assert_eq!(
            (
                p.comm.lossy().as_str(),
                p.exe.as_ref().map(Text::lossy).as_deref(),
                p.exited
            ),
            ("x", Some("/bin/cat"), true),
            "the late fork record leaves the exited child's own name"
        );

        // A child whose own event came first (ptrace stops come in no fixed order): its fork
        // still names the parent, and keeps what the child did.
        tr.on_event(
            Event::Exec(Exec {
                origin: origin(8, 10),
                filename: Text::from("/bin/sh"),
            }),
            &Offline,
        );
        tr.on_event(
            Event::Fork(Fork {
                time_ns: 9,
                parent_pid: 1,
                child_pid: 8,
                comm: Text::from("c"),
            }),
            &Offline,
        );
        let p = &tr.processes[&8];
        assert_eq!((p.ppid, p.exec_ns), (Some(1), Some(10)));

        // A recycled pid: the exited process's entry gives way to the new one.
        tr.on_event(
            Event::Exit(crate::model::Exit {
                time_ns: 11,
                pid: 7,
                status: None,
                signal: None,
            }),
            &Offline,
        );
        tr.on_event(fork(8, 12), &Offline);
        let p = &tr.processes[&7];
        assert_eq!((p.ppid, p.first_seen_ns, p.exec_ns), (Some(8), 12, None));
    }

    #[test]
    fn a_fork_loop_folds_into_bounded_groups_and_prunes_the_table() {
        let mut tr = Trace::new();
        tr.add_process(1, None, Text::from("sh"), None);
        for child in 2..10_000u32 {
            tr.on_event(
                Event::Fork(Fork {
                    time_ns: child as u64,
                    parent_pid: 1,
                    child_pid: child,
                    comm: Text::from("sh"),
                }),
                &Offline,
            );
            tr.on_event(
                Event::Failure(Failure {
                    origin: Origin {
                        pid: child,
                        tid: child,
                        time_ns: child as u64,
                        comm: Text::from("cat"),
                        ..Default::default()
                    },
                    syscall: "openat".into(),
                    errno: 13,
                    path: Some(Text::from("/secret")),
                    ..Default::default()
                }),
                &Offline,
            );
            tr.on_event(
                Event::Exit(crate::model::Exit {
                    time_ns: child as u64,
                    pid: child,
                    status: None,
                    signal: None,
                }),
                &Offline,
            );
        }
        assert_eq!(
            tr.failures.len(),
            FOLD_AFTER,
            "one group per process up to the fold point"
        );
        let total: u64 = tr.failures.iter().map(|g| g.count).sum();
        assert_eq!(total, 9_998, "every call is counted");
        assert_eq!(
            tr.failures.last().unwrap().other_pids,
            9_998 - FOLD_AFTER as u64
        );
        assert!(
            tr.processes.len() <= 2 * PROCESS_TABLE_SOFT_LIMIT,
            "table bounded: {}",
            tr.processes.len()
        );
        assert!(tr.processes_pruned > 0);
        // Processes a kept failure refers to stay, with their ancestry.
        for g in &tr.failures[..FOLD_AFTER - 1] {
            assert!(tr.processes.contains_key(&g.failure.origin.pid));
        }
        assert!(tr.processes.contains_key(&1));
    }
}
