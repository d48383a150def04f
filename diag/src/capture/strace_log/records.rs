//! Reads strace inputs into whole calls: `<unfinished ...>` and `<... resumed>` halves joined,
//! lines diag has no use for dropped, and every input merged into one time order.

use super::line::{self, Body, Stamp};
use super::syntax::{self, Ret};
use crate::model::syscalls;
use std::collections::HashMap;
use std::io::BufRead;

/// Longest line kept; strace lines with huge buffers are cut here (they still parse as
/// truncated strings or are skipped).
const MAX_LINE: usize = 1 << 20;

/// One strace output stream: a `-f` log, or one `-ff` file with the pid from its name.
pub struct Input<'r> {
    pub name: String,
    pub pid: Option<u32>,
    pub reader: Box<dyn BufRead + 'r>,
}

#[derive(Clone, Debug)]
pub struct Record {
    /// Nanoseconds when the log has timestamps, else the position in a causal order.
    pub order: u64,
    pub tid: u32,
    pub kind: Kind,
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

/// What reading found, besides the records.
#[derive(Debug, Default)]
pub struct Reading {
    pub records: Vec<Record>,
    pub timed: bool,
    pub lines: u64,
    pub skipped_lines: u64,
    pub successful_calls: u64,
    /// Lines of a log without pid prefixes and without a pid in its file name.
    pub unknown_pid_lines: u64,
}

/// Stands for the traced command when strace printed no pid for it.
pub const UNKNOWN_PID: u32 = 0;

/// Beyond `syscalls::STATE_ON_SUCCESS`, the successful calls a log rebuilds the tree from, and
/// the positional writes that may carry messages; failed calls are all kept (the errno filter
/// comes later).
const TREE_AND_WRITES: &[&str] = &[
    "clone", "clone3", "fork", "vfork", "execve", "execveat", "pwrite64", "pwritev", "pwritev2",
];

/// A record before ordering: where it came from, and its time if the log has one.
struct Raw {
    input: usize,
    seq: u64,
    time: Option<u64>,
    record: Record,
}

pub fn read(inputs: Vec<Input>) -> std::io::Result<Reading> {
    let mut reading = Reading::default();
    let mut raws = Vec::new();
    let pids: Vec<Option<u32>> = inputs.iter().map(|i| i.pid).collect();
    for (idx, mut input) in inputs.into_iter().enumerate() {
        read_one(idx, &mut input, &mut raws, &mut reading)?;
    }
    reading.timed = !raws.is_empty() && raws.iter().all(|r| r.time.is_some());
    reading.records = order(raws, &pids, reading.timed);
    Ok(reading)
}

fn read_one(
    idx: usize,
    input: &mut Input,
    raws: &mut Vec<Raw>,
    reading: &mut Reading,
) -> std::io::Result<()> {
    let mut pending: HashMap<u32, (String, String, Option<u64>, u64)> = HashMap::new();
    let mut day = DayClock::default();
    let mut buf = Vec::new();
    let mut seq = 0u64;
    loop {
        buf.clear();
        let reader: &mut dyn BufRead = &mut input.reader;
        if std::io::Read::take(reader, MAX_LINE as u64).read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        if buf.len() >= MAX_LINE && buf.last() != Some(&b'\n') {
            input.reader.skip_until(b'\n')?; // the rest of an overlong line
        }
        seq += 1;
        reading.lines += 1;
        let text = String::from_utf8_lossy(&buf);
        let Some(l) = line::parse(&text) else {
            reading.skipped_lines += (!text.trim().is_empty()) as u64;
            continue;
        };
        // Without -f, or before strace saw a second process, lines carry no pid.
        let tid = l.pid.or(input.pid).unwrap_or_else(|| {
            reading.unknown_pid_lines += 1;
            UNKNOWN_PID
        });
        let time = l.stamp.map(|s| day.ns(s));
        let kind = match l.body {
            Body::Call { name, rest } => call(name, rest),
            Body::Unfinished { name, partial } => {
                pending.insert(tid, (name.to_string(), partial.to_string(), time, seq));
                continue;
            }
            Body::Resumed { name, rest } => match pending.remove(&tid) {
                Some((n, partial, t0, s0)) if n == name => {
                    let k = call(name, &format!("{partial}{rest}"));
                    push(raws, reading, idx, s0, t0, tid, k);
                    continue;
                }
                _ => None,
            },
            Body::Exited(code) => Some(Kind::Exited(code)),
            Body::Killed(sig) => Some(Kind::Killed(signal_number(sig))),
            Body::Note => continue,
        };
        if kind.is_none() {
            reading.skipped_lines += 1;
        }
        push(raws, reading, idx, seq, time, tid, kind);
    }
    Ok(())
}

fn push(
    raws: &mut Vec<Raw>,
    reading: &mut Reading,
    input: usize,
    seq: u64,
    time: Option<u64>,
    tid: u32,
    kind: Option<Kind>,
) {
    let Some(kind) = kind else { return };
    if let Kind::Call(c) = &kind {
        if matches!(c.ret, Ret::Ok(..)) {
            reading.successful_calls += 1;
            if !syscalls::state_on_success(&c.name) && !TREE_AND_WRITES.contains(&c.name.as_str()) {
                return;
            }
        } else if c.ret == Ret::Unknown {
            return;
        }
    }
    raws.push(Raw {
        input,
        seq,
        time,
        record: Record {
            order: 0,
            tid,
            kind,
        },
    });
}

/// A call line, or None when it does not parse.
fn call(name: &str, rest: &str) -> Option<Kind> {
    let (args, after) = syntax::split_call(rest)?;
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

/// `-t`/`-tt` print the time of day: a log that runs past midnight wraps, so a jump back of
/// more than twelve hours is taken as the next day.
#[derive(Default)]
struct DayClock {
    last: u64,
    days: u64,
}

impl DayClock {
    const DAY: u64 = 86_400 * 1_000_000_000;

    fn ns(&mut self, stamp: Stamp) -> u64 {
        match stamp {
            Stamp::Epoch(ns) => ns,
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

/// Puts the records of every input in one order: by time when every line has a timestamp; by
/// line within a single log; and for untimed per-pid files, causally: each child's records
/// right after the call that created it.
fn order(mut raws: Vec<Raw>, pids: &[Option<u32>], timed: bool) -> Vec<Record> {
    if timed {
        raws.sort_by_key(|r| (r.time, r.input, r.seq));
        return raws
            .into_iter()
            .map(|r| Record {
                order: r.time.unwrap_or(0),
                ..r.record
            })
            .collect();
    }
    raws.sort_by_key(|r| (r.input, r.seq));
    let mut out = if pids.len() <= 1 {
        raws.into_iter().map(|r| r.record).collect()
    } else {
        causal(raws, pids)
    };
    for (i, r) in out.iter_mut().enumerate() {
        r.order = i as u64 + 1;
    }
    out
}

fn causal(raws: Vec<Raw>, pids: &[Option<u32>]) -> Vec<Record> {
    let mut per_input: Vec<Vec<Record>> = vec![Vec::new(); pids.len()];
    for r in raws {
        per_input[r.input].push(r.record);
    }
    let input_of: HashMap<u32, usize> = pids
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.map(|p| (p, i)))
        .collect();
    let children: std::collections::HashSet<u32> = per_input
        .iter()
        .flatten()
        .filter_map(created_child)
        .collect();
    let mut done = vec![false; pids.len()];
    let mut out = Vec::new();
    let roots: Vec<usize> = (0..pids.len())
        .filter(|&i| pids[i].is_none_or(|p| !children.contains(&p)))
        .chain(0..pids.len())
        .collect();
    for root in roots {
        if done[root] {
            continue;
        }
        done[root] = true;
        let mut stack = vec![(root, 0usize)];
        while let Some((input, pos)) = stack.pop() {
            let Some(r) = per_input[input].get(pos) else {
                continue;
            };
            stack.push((input, pos + 1));
            let child = created_child(r).and_then(|c| input_of.get(&c).copied());
            out.push(r.clone());
            if let Some(ci) = child.filter(|&ci| !done[ci]) {
                done[ci] = true;
                stack.push((ci, 0));
            }
        }
    }
    out
}

/// The pid or tid a successful clone/fork/vfork/clone3 returned.
fn created_child(r: &Record) -> Option<u32> {
    match &r.kind {
        Kind::Call(c) if crate::model::syscalls::is_clone(&c.name) => match c.ret {
            Ret::Ok(v, _) if v > 0 => u32::try_from(v).ok(),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(pid: Option<u32>, text: &'static str) -> Input<'static> {
        Input {
            name: "t".into(),
            pid,
            reader: Box::new(text.as_bytes()),
        }
    }

    #[test]
    fn joins_unfinished_calls_and_orders_the_clone_first() {
        let log = "10 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>\n\
                   11 openat(AT_FDCWD, \"/dev/ptmx\", O_RDWR) = -1 EACCES (Permission denied)\n\
                   10 <... clone resumed>, child_tidptr=0x1) = 11\n\
                   10 getpid() = 10\n";
        let r = read(vec![input(None, log)]).unwrap();
        assert!(!r.timed);
        let names: Vec<_> = r
            .records
            .iter()
            .map(|r| match &r.kind {
                Kind::Call(c) => (r.tid, c.name.clone()),
                _ => (r.tid, String::new()),
            })
            .collect();
        assert_eq!(names, vec![(10, "clone".into()), (11, "openat".into())]);
        assert_eq!(created_child(&r.records[0]), Some(11));
        assert_eq!(r.successful_calls, 2);
    }

    #[test]
    fn lines_without_a_pid_are_the_traced_command() {
        let log = "openat(AT_FDCWD, \"/dev/ptmx\", O_RDWR) = -1 EACCES (Permission denied)\n\
                   [pid  12] close(1) = 0\n";
        let r = read(vec![input(None, log)]).unwrap();
        let tids: Vec<u32> = r.records.iter().map(|r| r.tid).collect();
        assert_eq!(tids, vec![UNKNOWN_PID, 12]);
        assert_eq!(r.unknown_pid_lines, 1);
    }

    #[test]
    fn untimed_per_pid_files_are_ordered_causally() {
        let parent = "clone(child_stack=NULL, flags=SIGCHLD) = 21\nwrite(2, \"x\", 1) = 1\n";
        let child = "openat(AT_FDCWD, \"/dev/ptmx\", O_RDWR) = -1 EACCES (Permission denied)\n";
        let r = read(vec![input(Some(21), child), input(Some(20), parent)]).unwrap();
        let tids: Vec<u32> = r.records.iter().map(|r| r.tid).collect();
        assert_eq!(tids, vec![20, 21, 20]);
        assert_eq!(
            r.records.iter().map(|r| r.order).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn timed_logs_merge_by_time_across_midnight() {
        let a = "23:59:59.900000 clone(child_stack=NULL, flags=SIGCHLD) = 31\n";
        let b = "23:59:59.950000 close(1) = 0\n00:00:00.100000 close(2) = 0\n";
        let r = read(vec![input(Some(30), a), input(Some(31), b)]).unwrap();
        assert!(r.timed);
        let o: Vec<u64> = r.records.iter().map(|r| r.order).collect();
        assert!(o.windows(2).all(|w| w[0] < w[1]), "{o:?}");
        assert_eq!(r.records[2].tid, 31);
    }
}
