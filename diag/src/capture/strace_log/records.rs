//! Reads one strace input into whole calls, as a stream: `<unfinished ...>` and `<... resumed>`
//! halves joined, lines diag has no use for dropped. `merge` puts several inputs in one order.

use super::line::{self, Body, Stamp};
use super::syntax::{self, Ret};
use crate::capture::offline;
use crate::model::syscalls;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;
use std::path::PathBuf;

/// Calls left `<unfinished ...>` at once in one input (one per thread), and the bytes of
/// their text; beyond either bound the oldest is forgotten and counted.
const MAX_PENDING: usize = 4096;
const MAX_PENDING_BYTES: usize = 16 << 20;
/// Records held back behind an unfinished clone (see [`Calls`]); beyond either bound the clone
/// stops holding them and this is counted.
const MAX_HELD: usize = 50_000;
const MAX_HELD_BYTES: usize = 16 << 20;

/// The line buffer an input keeps between lines.
const LINE_CAPACITY: usize = 64 * 1024;

/// Where one strace output stream comes from.
pub enum Source<'r> {
    /// Already open (stdin, a test's bytes): read once.
    Reader(Box<dyn BufRead + 'r>),
    /// Opened when first read, checked as text then; a regular file may be closed and reopened
    /// at the offset read so far.
    Path(PathBuf),
}

/// One strace output stream: a `-f` log, or one `-ff` file with the pid from its name.
pub struct Input<'r> {
    pub name: String,
    pub pid: Option<u32>,
    pub source: Source<'r>,
}

#[derive(Clone, Debug)]
pub struct Record {
    /// Nanoseconds when the log has timestamps, else the position in a causal order (set by
    /// the merge).
    pub order: u64,
    pub tid: u32,
    pub kind: Kind,
    /// The time of the record's first line, if stamped, and its line number in its input.
    pub time: Option<u64>,
    pub seq: u64,
}

#[derive(Clone, Debug)]
pub enum Kind {
    Call(Call),
    Exited(i32),
    /// Killed by this signal number.
    Killed(i32),
}

#[derive(Clone, Debug)]
pub struct Call {
    pub name: String,
    pub args: Vec<String>,
    pub ret: Ret,
}

/// What reading found across all inputs, besides the records.
#[derive(Debug, Default)]
pub struct Counts {
    pub lines: u64,
    pub skipped_lines: u64,
    pub successful_calls: u64,
    /// Lines of a log without pid prefixes and without a pid in its file name.
    pub unknown_pid_lines: u64,
    /// `<... name resumed>` lines whose thread had another call pending: the line is skipped,
    /// the pending call kept.
    pub mismatched_resumes: u64,
    /// Unfinished calls forgotten because too many were pending at once.
    pub pending_evicted: u64,
    /// Records let through ahead of an unfinished clone that held back too many.
    pub released_early: u64,
}

/// Stands for the traced command when strace printed no pid for it.
pub const UNKNOWN_PID: u32 = 0;

/// Beyond `syscalls::STATE_ON_SUCCESS`, the successful calls a log rebuilds the tree from, and
/// the positional writes that may carry messages; failed calls are all kept (the errno filter
/// comes later).
const TREE_AND_WRITES: &[&str] = &[
    "clone", "clone3", "fork", "vfork", "execve", "execveat", "pwrite64", "pwritev", "pwritev2",
];

/// A call left `<unfinished ...>` on a thread.
struct Pending {
    name: String,
    partial: String,
    time: Option<u64>,
    seq: u64,
}

/// One input read as a stream of records in the order of their first line: a joined call
/// takes the place of its `<unfinished ...>` half. Only an unfinished clone holds back the
/// records after it (its child's lines usually come before `<... clone resumed>`, and the
/// child must be known before them); other unfinished calls (a shell's wait4) hold nothing
/// and complete where they resume.
pub struct Calls<'r> {
    pub name: String,
    pub pid: Option<u32>,
    path: Option<PathBuf>,
    reader: Option<Box<dyn BufRead + 'r>>,
    /// Bytes read so far: where a closed file is reopened.
    offset: u64,
    started: bool,
    ended: bool,
    pending: HashMap<u32, Pending>,
    /// The pending calls' threads by the line they started at, oldest first, and their size.
    pending_by_age: BTreeMap<u64, u32>,
    pending_bytes: usize,
    /// Line numbers of unfinished clones that hold back later records.
    holding: BTreeSet<u64>,
    held: BTreeMap<u64, (Record, usize)>,
    held_bytes: usize,
    ready: std::collections::VecDeque<Record>,
    day: DayClock,
    seq: u64,
    buf: Vec<u8>,
    last_time: Option<u64>,
}

impl<'r> Calls<'r> {
    pub fn new(input: Input<'r>) -> Self {
        let (path, reader) = match input.source {
            Source::Reader(r) => (None, Some(r)),
            Source::Path(p) => (Some(p), None),
        };
        Calls {
            name: input.name,
            pid: input.pid,
            started: reader.is_some(),
            path,
            reader,
            offset: 0,
            ended: false,
            pending: HashMap::new(),
            pending_by_age: BTreeMap::new(),
            pending_bytes: 0,
            holding: BTreeSet::new(),
            held: BTreeMap::new(),
            held_bytes: 0,
            ready: Default::default(),
            day: DayClock::default(),
            seq: 0,
            buf: Vec::new(),
            last_time: None,
        }
    }

    /// A regular file this input can be reopened from: the merge may close it.
    pub fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }

    pub fn is_open(&self) -> bool {
        self.reader.is_some()
    }

    /// Closes a reopenable input's file; reading reopens it where it was.
    pub fn close(&mut self) {
        if self.path.is_some() {
            self.reader = None;
        }
    }

    /// Opens the file (checked as text the first time); errors are one line for the operator.
    pub fn open(&mut self) -> Result<(), String> {
        if self.reader.is_some() || self.ended {
            return Ok(());
        }
        let Some(path) = &self.path else {
            return Ok(());
        };
        let reader = if self.started {
            offline::reopen_at(path, self.offset).map_err(|e| format!("cannot read it: {e}"))?
        } else {
            let opened = offline::open(path)?;
            if opened.reopenable.is_none() {
                self.path = None; // a FIFO or a device: read once, never closed
            }
            opened.reader
        };
        self.started = true;
        self.reader = Some(reader);
        Ok(())
    }

    /// The last timestamp seen, for a record without one in a timed merge.
    pub fn last_time(&self) -> Option<u64> {
        self.last_time
    }

    /// The next record, or None at the end. The input must be open (see [`Calls::open`]).
    pub fn next(&mut self, counts: &mut Counts) -> std::io::Result<Option<Record>> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Ok(Some(r));
            }
            if self.ended {
                return Ok(None);
            }
            self.read_line(counts)?;
        }
    }

    /// Reads one line, turning it into ready records when nothing holds them back.
    fn read_line(&mut self, counts: &mut Counts) -> std::io::Result<()> {
        let reader = self
            .reader
            .as_mut()
            .expect("the merge opens an input before reading it");
        let used = offline::read_line(reader.as_mut(), &mut self.buf)?;
        if used == 0 {
            self.end();
            return Ok(());
        }
        self.offset += used;
        self.seq += 1;
        counts.lines += 1;
        let seq = self.seq;
        let buf = std::mem::take(&mut self.buf);
        let text = String::from_utf8_lossy(&buf);
        self.line(&text, seq, counts);
        self.buf = buf;
        // One long line must not keep a megabyte per input of a -ff set.
        self.buf.shrink_to(LINE_CAPACITY);
        Ok(())
    }

    fn line(&mut self, text: &str, seq: u64, counts: &mut Counts) {
        let Some(l) = line::parse(text) else {
            counts.skipped_lines += (!text.trim().is_empty()) as u64;
            return;
        };
        // Without -f, or before strace saw a second process, lines carry no pid.
        let tid = l.pid.or(self.pid).unwrap_or_else(|| {
            counts.unknown_pid_lines += 1;
            UNKNOWN_PID
        });
        let time = l.stamp.map(|s| self.day.ns(s));
        if time.is_some() {
            self.last_time = time;
        }
        let size = text.len();
        let kind = match l.body {
            Body::Call { name, rest } => call(name, rest),
            Body::Unfinished { name, partial } => {
                self.unfinish(tid, name, partial, time, seq, counts);
                return;
            }
            Body::Resumed { name, rest } => match self.pending.get(&tid) {
                Some(p) if p.name == name => {
                    // The joined call takes its first line's place, ahead of what it held.
                    let p = self.unpend(tid).expect("just seen");
                    let held_back = self.holding.remove(&p.seq);
                    let k = call(name, &format!("{}{rest}", p.partial));
                    self.complete(p.seq, p.time, tid, k, size, counts);
                    if held_back {
                        self.release();
                    }
                    return;
                }
                Some(_) => {
                    counts.mismatched_resumes += 1;
                    None
                }
                None => None,
            },
            Body::Exited(code) => Some(Kind::Exited(code)),
            Body::Killed(sig) => Some(Kind::Killed(signal_number(sig))),
            Body::Note => return,
        };
        if kind.is_none() {
            counts.skipped_lines += 1;
        }
        if matches!(kind, Some(Kind::Exited(_) | Kind::Killed(_))) {
            self.forget(tid); // a call it never returned from
        }
        self.complete(seq, time, tid, kind, size, counts);
    }

    fn unfinish(
        &mut self,
        tid: u32,
        name: &str,
        partial: &str,
        time: Option<u64>,
        seq: u64,
        counts: &mut Counts,
    ) {
        self.forget(tid);
        while self.pending.len() >= MAX_PENDING
            || self.pending_bytes + partial.len() > MAX_PENDING_BYTES
        {
            let Some((_, &oldest)) = self.pending_by_age.first_key_value() else {
                break;
            };
            self.forget(oldest);
            counts.pending_evicted += 1;
        }
        if syscalls::is_clone(name) {
            self.holding.insert(seq);
        }
        self.pending_by_age.insert(seq, tid);
        self.pending_bytes += partial.len();
        self.pending.insert(
            tid,
            Pending {
                name: name.to_string(),
                partial: partial.to_string(),
                time,
                seq,
            },
        );
    }

    fn unpend(&mut self, tid: u32) -> Option<Pending> {
        let p = self.pending.remove(&tid)?;
        self.pending_by_age.remove(&p.seq);
        self.pending_bytes -= p.partial.len();
        Some(p)
    }

    /// Drops the call pending on `tid`, and what it held back.
    fn forget(&mut self, tid: u32) -> Option<Pending> {
        let p = self.unpend(tid)?;
        if self.holding.remove(&p.seq) {
            self.release();
        }
        Some(p)
    }

    /// A whole record that started at line `seq`: ready, or held behind an earlier clone.
    fn complete(
        &mut self,
        seq: u64,
        time: Option<u64>,
        tid: u32,
        kind: Option<Kind>,
        size: usize,
        counts: &mut Counts,
    ) {
        let Some(kind) = kind.filter(|k| keep(k, counts)) else {
            return;
        };
        let r = Record {
            order: 0,
            tid,
            kind,
            time,
            seq,
        };
        if self.holding.first().is_none_or(|&h| seq < h) {
            self.ready.push_back(r);
            return;
        }
        self.held.insert(seq, (r, size));
        self.held_bytes += size;
        while self.held.len() > MAX_HELD || self.held_bytes > MAX_HELD_BYTES {
            // A clone that never resumes must not hold the rest of the log.
            self.holding.pop_first();
            counts.released_early += 1;
            self.release();
        }
    }

    /// Moves held records no remaining clone holds back to the ready queue.
    fn release(&mut self) {
        let until = self.holding.first().copied().unwrap_or(u64::MAX);
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() > until {
                break;
            }
            let (r, size) = entry.remove();
            self.held_bytes -= size;
            self.ready.push_back(r);
        }
    }

    /// End of input: calls still unfinished never returned; what they held is ready.
    fn end(&mut self) {
        self.ended = true;
        self.reader = None;
        self.pending.clear();
        self.pending_by_age.clear();
        self.pending_bytes = 0;
        self.holding.clear();
        self.release();
    }
}

/// Whether a record is worth handing on; counts successful calls.
fn keep(kind: &Kind, counts: &mut Counts) -> bool {
    let Kind::Call(c) = kind else { return true };
    match c.ret {
        Ret::Ok(..) => {
            counts.successful_calls += 1;
            syscalls::state_on_success(&c.name) || TREE_AND_WRITES.contains(&c.name.as_str())
        }
        Ret::Unknown => false,
        Ret::Err(_) => true,
    }
}

/// A call line, or None when it does not parse.
fn call(name: &str, rest: &str) -> Option<Kind> {
    let rest = syntax::abbreviate(rest);
    let (args, after) = syntax::split_call(&rest)?;
    Some(Kind::Call(Call {
        name: name.to_string(),
        args: args.into_iter().map(str::to_string).collect(),
        ret: syntax::ret(after)?,
    }))
}

fn signal_number(name: &str) -> i32 {
    name.parse::<nix::sys::signal::Signal>()
        .map_or(0, |s| s as i32)
}

/// The pid or tid a successful clone/fork/vfork/clone3 returned.
pub fn created_child(r: &Record) -> Option<u32> {
    match &r.kind {
        Kind::Call(c) if syscalls::is_clone(&c.name) => match c.ret {
            Ret::Ok(v, _) if v > 0 => u32::try_from(v).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The pids a line's clone created, read without the rest of the call machinery: the merge
/// scans untimed per-pid files for them before ordering (`<... clone resumed>` lines carry
/// the return value).
pub fn clone_result(text: &str) -> Option<u32> {
    if !text.contains("clone") && !text.contains("fork") {
        return None;
    }
    let (name, rest) = match line::parse(text)?.body {
        Body::Call { name, rest } | Body::Resumed { name, rest } => (name, rest),
        _ => return None,
    };
    if !syscalls::is_clone(name) {
        return None;
    }
    let (_, after) = syntax::split_call(rest)?;
    match syntax::ret(after)? {
        Ret::Ok(v, _) if v > 0 => u32::try_from(v).ok(),
        _ => None,
    }
}

/// `-t`/`-tt` print the time of day: a log that runs past midnight wraps, so a jump back of
/// more than twelve hours is taken as the next day. `-r` prints the time since the previous
/// line: their sum orders the lines.
#[derive(Default)]
struct DayClock {
    /// The sum of `-r` stamps so far.
    elapsed: u64,
    last: u64,
    days: u64,
}

impl DayClock {
    const DAY: u64 = 86_400 * 1_000_000_000;

    fn ns(&mut self, stamp: Stamp) -> u64 {
        match stamp {
            Stamp::Epoch(ns) => ns,
            Stamp::SincePrevious(ns) => {
                self.elapsed += ns;
                self.elapsed
            }
            Stamp::TimeOfDay(ns) => {
                if ns + Self::DAY / 2 < self.last {
                    self.days += 1;
                }
                self.last = ns;
                ns + self.days * Self::DAY
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &'static str) -> (Vec<Record>, Counts) {
        let mut c = Calls::new(Input {
            name: "t".into(),
            pid: None,
            source: Source::Reader(Box::new(text.as_bytes())),
        });
        let mut counts = Counts::default();
        let mut out = Vec::new();
        while let Some(r) = c.next(&mut counts).unwrap() {
            out.push(r);
        }
        (out, counts)
    }

    fn names(rs: &[Record]) -> Vec<(u32, String)> {
        rs.iter()
            .map(|r| match &r.kind {
                Kind::Call(c) => (r.tid, c.name.clone()),
                _ => (r.tid, String::new()),
            })
            .collect()
    }

    #[test]
    fn joins_unfinished_calls_and_orders_the_clone_first() {
        let log = "10 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>\n\
                   11 openat(AT_FDCWD, \"/dev/ptmx\", O_RDWR) = -1 EACCES (Permission denied)\n\
                   10 <... clone resumed>, child_tidptr=0x1) = 11\n\
                   10 getpid() = 10\n";
        let (r, counts) = records(log);
        assert_eq!(names(&r), vec![(10, "clone".into()), (11, "openat".into())]);
        assert_eq!(created_child(&r[0]), Some(11));
        assert_eq!(counts.successful_calls, 2);
        assert_eq!(
            clone_result("10 <... clone resumed>, child_tidptr=0x1) = 11"),
            Some(11)
        );
    }

    #[test]
    fn only_an_unfinished_clone_holds_later_records() {
        // The shell waits for the whole run: its wait4 must not hold the child's records.
        let log = "10 wait4(-1 <unfinished ...>\n\
                   11 openat(AT_FDCWD, \"/x\", O_RDONLY) = -1 EACCES (Permission denied)\n\
                   10 <... wait4 resumed>, NULL, 0, NULL) = -1 ECHILD (No child processes)\n";
        let (r, _) = records(log);
        assert_eq!(names(&r), vec![(11, "openat".into()), (10, "wait4".into())]);
    }

    #[test]
    fn a_mismatched_resume_keeps_the_pending_call() {
        let log = "10 read(0 <unfinished ...>\n\
                   10 <... write resumed>) = -1 EBADF (Bad file descriptor)\n\
                   10 <... read resumed>, 0x7ff, 10) = -1 EIO (Input/output error)\n";
        let (r, counts) = records(log);
        assert_eq!(names(&r), vec![(10, "read".into())]);
        assert_eq!(counts.mismatched_resumes, 1);
        assert_eq!(counts.skipped_lines, 1);
    }

    #[test]
    fn a_clone_that_never_resumes_holds_until_its_thread_ends() {
        let log = "10 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>\n\
                   11 close(5) = -1 EBADF (Bad file descriptor)\n\
                   10 +++ killed by SIGKILL +++\n";
        let (r, _) = records(log);
        assert_eq!(names(&r), vec![(11, "close".into()), (10, String::new())]);
    }

    #[test]
    fn lines_without_a_pid_are_the_traced_command() {
        let log = "openat(AT_FDCWD, \"/dev/ptmx\", O_RDWR) = -1 EACCES (Permission denied)\n\
                   [pid  12] close(1) = 0\n";
        let (r, counts) = records(log);
        let tids: Vec<u32> = r.iter().map(|r| r.tid).collect();
        assert_eq!(tids, vec![UNKNOWN_PID, 12]);
        assert_eq!(counts.unknown_pid_lines, 1);
    }
}
