//! Puts the records of every input in one order, reading each input once, as a stream.
//!
//! One `-f` log is already in order: its records pass straight through. Several inputs (`-ff`
//! per-pid files, several logs) are merged with one record read ahead per input:
//! - when every input has timestamps, a k-way merge takes the earliest head each time (ties:
//!   the input, then the line), as a sort by time would;
//! - without timestamps, in causal order: each per-pid file's records right after the call
//!   that created its process, depth first, starting from files no call created. Which files
//!   a call created is found by a first pass over the untimed files (only their clone lines
//!   are parsed), so the roots are the same as if everything were read first.
//!
//! Memory is one read-ahead record and the unfinished calls per input, whatever the size of
//! the files. Open files are bounded too: at most a quarter of RLIMIT_NOFILE (and at most
//! 256) regular files are open at once; the least recently read is closed and reopened at the
//! offset read so far when its turn comes (strace -ff of a fork-heavy program writes
//! thousands of files). Pipes, FIFOs and stdin cannot be reopened: they stay open.

use super::records::{self, Calls, Counts, Input, Record};
use crate::capture::offline;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

const MAX_OPEN_FILES: u64 = 256;

pub struct Merge<'r> {
    inputs: Vec<Calls<'r>>,
    /// The next record of each input, read ahead.
    heads: Vec<Option<Record>>,
    /// Open regular files by when they were last read, and each one's stamp.
    open: BTreeMap<u64, usize>,
    used_at: Vec<u64>,
    clock: u64,
    max_open: usize,
    pub counts: Counts,
    /// Every input's first record has a timestamp.
    pub timed: bool,
    order: Order,
    emitted: u64,
}

enum Order {
    /// Timed inputs: (time, input, line) of each head.
    Time(BinaryHeap<Reverse<(u64, usize, u64)>>),
    /// Untimed: the inputs being read, the child on top, and those left to start from
    /// (popped from the end).
    Causal {
        stack: Vec<usize>,
        roots: Vec<usize>,
        done: Vec<bool>,
        input_of: HashMap<u32, usize>,
    },
}

impl<'r> Merge<'r> {
    /// Opens and checks every input (a few at a time) and reads its first record.
    pub fn new(inputs: Vec<Input<'r>>) -> Result<Self, String> {
        let n = inputs.len();
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft);
        let mut m = Merge {
            inputs: inputs.into_iter().map(Calls::new).collect(),
            heads: Vec::with_capacity(n),
            open: BTreeMap::new(),
            used_at: vec![0; n],
            clock: 0,
            max_open: (soft / 4).clamp(4, MAX_OPEN_FILES) as usize,
            counts: Counts::default(),
            timed: false,
            order: Order::Time(BinaryHeap::new()),
            emitted: 0,
        };
        for i in 0..n {
            let head = m.read(i)?;
            m.heads.push(head);
        }
        let mut firsts = m.heads.iter().flatten().peekable();
        m.timed = firsts.peek().is_some() && firsts.all(|r| r.time.is_some());
        m.order = if m.timed && n > 1 {
            let heads = (0..n).filter_map(|i| Some(m.key(m.heads[i].as_ref()?, i)));
            Order::Time(heads.map(Reverse).collect())
        } else {
            m.causal()?
        };
        Ok(m)
    }

    fn causal(&self) -> Result<Order, String> {
        let input_of: HashMap<u32, usize> = (self.inputs.iter().enumerate())
            .filter_map(|(i, c)| c.pid.map(|p| (p, i)))
            .collect();
        let children = if self.inputs.len() > 1 && !input_of.is_empty() {
            self.created_children(&input_of)?
        } else {
            HashSet::new()
        };
        let n = self.inputs.len();
        let mut roots: Vec<usize> = (0..n)
            .filter(|&i| self.inputs[i].pid.is_none_or(|p| !children.contains(&p)))
            .chain(0..n)
            .collect();
        roots.reverse();
        Ok(Order::Causal {
            stack: Vec::new(),
            roots,
            done: vec![false; n],
            input_of,
        })
    }

    /// The pids of inputs that some clone line of a (reopenable) input created.
    fn created_children(&self, input_of: &HashMap<u32, usize>) -> Result<HashSet<u32>, String> {
        let mut children = HashSet::new();
        let mut buf = Vec::new();
        for c in &self.inputs {
            let Some(path) = c.path() else { continue };
            let fail = |e: std::io::Error| format!("{}: cannot read it: {e}", c.name);
            let mut reader = offline::reopen_at(path, 0).map_err(fail)?;
            while offline::read_line(reader.as_mut(), &mut buf).map_err(fail)? > 0 {
                let child = records::clone_result(&String::from_utf8_lossy(&buf));
                children.extend(child.filter(|p| input_of.contains_key(p)));
            }
        }
        Ok(children)
    }

    fn key(&self, r: &Record, input: usize) -> (u64, usize, u64) {
        let t = r.time.or(self.inputs[input].last_time()).unwrap_or(0);
        (t, input, r.seq)
    }

    /// The next record of all inputs, or None at the end of them.
    pub fn next(&mut self) -> Result<Option<Record>, String> {
        let (r, input) = match &mut self.order {
            Order::Time(heap) => {
                let Some(Reverse((_, i, _))) = heap.pop() else {
                    return Ok(None);
                };
                let r = self.heads[i].take().expect("a head per key");
                if let Some(next) = self.read(i)? {
                    let key = self.key(&next, i);
                    self.heads[i] = Some(next);
                    let Order::Time(heap) = &mut self.order else {
                        unreachable!()
                    };
                    heap.push(Reverse(key));
                }
                (r, i)
            }
            Order::Causal { .. } => match self.next_causal()? {
                Some(next) => next,
                None => return Ok(None),
            },
        };
        self.emitted += 1;
        let order = match self.timed {
            true => self.key(&r, input).0,
            false => self.emitted,
        };
        Ok(Some(Record { order, ..r }))
    }

    fn next_causal(&mut self) -> Result<Option<(Record, usize)>, String> {
        loop {
            let Order::Causal {
                stack, roots, done, ..
            } = &mut self.order
            else {
                unreachable!()
            };
            let Some(&i) = stack.last() else {
                match roots.pop() {
                    Some(root) if !done[root] => {
                        done[root] = true;
                        stack.push(root);
                    }
                    Some(_) => {}
                    None => return Ok(None),
                }
                continue;
            };
            let r = match self.heads[i].take() {
                Some(r) => r,
                None => match self.read(i)? {
                    Some(r) => r,
                    None => {
                        self.stack_pop();
                        continue;
                    }
                },
            };
            let Order::Causal {
                stack,
                done,
                input_of,
                ..
            } = &mut self.order
            else {
                unreachable!()
            };
            let child = records::created_child(&r).and_then(|c| input_of.get(&c).copied());
            if let Some(ci) = child.filter(|&ci| !done[ci]) {
                done[ci] = true;
                stack.push(ci);
            }
            return Ok(Some((r, i)));
        }
    }

    fn stack_pop(&mut self) {
        if let Order::Causal { stack, .. } = &mut self.order {
            stack.pop();
        }
    }

    /// The next record of input `i`, opening its file first (and closing the least recently
    /// read one when too many are open).
    fn read(&mut self, i: usize) -> Result<Option<Record>, String> {
        self.open.remove(&self.used_at[i]);
        if !self.inputs[i].is_open() {
            if self.open.len() >= self.max_open {
                if let Some((_, lru)) = self.open.pop_first() {
                    self.inputs[lru].close();
                }
            }
            let c = &mut self.inputs[i];
            c.open().map_err(|e| format!("{}: {e}", c.name))?;
        }
        let c = &mut self.inputs[i];
        let r = c
            .next(&mut self.counts)
            .map_err(|e| format!("{}: reading the log: {e}", c.name))?;
        if c.is_open() && c.path().is_some() {
            self.clock += 1;
            self.used_at[i] = self.clock;
            self.open.insert(self.clock, i);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::strace_log::records::{Kind, Source};

    fn input(pid: Option<u32>, text: &'static str) -> Input<'static> {
        Input {
            name: "t".into(),
            pid,
            source: Source::Reader(Box::new(text.as_bytes())),
        }
    }

    fn all(m: &mut Merge) -> Vec<Record> {
        std::iter::from_fn(|| m.next().unwrap()).collect()
    }

    #[test]
    fn untimed_per_pid_files_are_ordered_causally() {
        let parent = "clone(child_stack=NULL, flags=SIGCHLD) = 21\nwrite(2, \"x\", 1) = 1\n";
        let child = "openat(AT_FDCWD, \"/dev/ptmx\", O_RDWR) = -1 EACCES (Permission denied)\n";
        // Readers in memory cannot be scanned first: the parent is given first here.
        let mut m = Merge::new(vec![input(Some(20), parent), input(Some(21), child)]).unwrap();
        assert!(!m.timed);
        let r = all(&mut m);
        let tids: Vec<u32> = r.iter().map(|r| r.tid).collect();
        assert_eq!(tids, vec![20, 21, 20]);
        assert_eq!(r.iter().map(|r| r.order).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn timed_logs_merge_by_time_across_midnight() {
        let a = "23:59:59.900000 clone(child_stack=NULL, flags=SIGCHLD) = 31\n";
        let b = "23:59:59.950000 close(1) = 0\n00:00:00.100000 close(2) = 0\n";
        let mut m = Merge::new(vec![input(Some(30), a), input(Some(31), b)]).unwrap();
        assert!(m.timed);
        let r = all(&mut m);
        let o: Vec<u64> = r.iter().map(|r| r.order).collect();
        assert!(o.windows(2).all(|w| w[0] < w[1]), "{o:?}");
        assert_eq!(r[2].tid, 31);
        assert!(matches!(r[0].kind, Kind::Call(_)));
    }
}
