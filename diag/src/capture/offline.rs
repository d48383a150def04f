//! What the offline backends (strace logs, audit records) share: opening an input once (a file,
//! `-` for stdin, a pipe, a FIFO), the text check on its first bytes, bounded line reading, and
//! the sink their events stream into as they are parsed.

use crate::correlate::{Offline, Trace, WALL_CLOCK_FLOOR_NS};
use crate::model::{CaptureStats, Event, Origin, Text};
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// What a log tells about the session, once its events went to the sink.
#[derive(Debug, Default)]
pub struct OfflineLog {
    pub root_pids: Vec<u32>,
    pub command: Vec<Text>,
    pub exit_status: Option<i32>,
    pub stats: CaptureStats,
    /// What the operator should know about the log's limits.
    pub notes: Vec<String>,
    /// The log shows process creation (strace with successful calls).
    pub forks_recorded: bool,
}

/// Where parsed events go, as they are parsed: nothing of a log is kept beyond what the sink
/// keeps (the correlator bounds its own tables).
pub trait Sink {
    /// A process the log names without showing its creation.
    fn process(&mut self, pid: u32, ppid: Option<u32>, comm: Text, exe: Option<Text>);
    fn event(&mut self, ev: Event);
}

impl Sink for Trace {
    fn process(&mut self, pid: u32, ppid: Option<u32>, comm: Text, exe: Option<Text>) {
        self.add_process(pid, ppid, comm, exe);
    }
    fn event(&mut self, ev: Event) {
        self.on_event(ev, &Offline);
    }
}

/// Collects the events (tests and fuzz targets look at them).
impl Sink for Vec<Event> {
    fn process(&mut self, _: u32, _: Option<u32>, _: Text, _: Option<Text>) {}
    fn event(&mut self, ev: Event) {
        self.push(ev);
    }
}

/// `analyze --pid/--comm/--since`: which failures and messages of a log are reported.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    /// These processes and their descendants (as the log shows their forks).
    pub pids: Vec<u32>,
    /// Processes by name, as the log names them (comm).
    pub comms: Vec<String>,
    /// Wall-clock nanoseconds since the epoch.
    pub since_ns: Option<u64>,
}

/// Descendants of `--pid` processes remembered; beyond it later forks are not followed.
const MAX_SELECTED: usize = 65_536;

/// A sink that passes on only what a [`LogFilter`] selects; the process tree (forks, execs,
/// exits, Landlock calls) always passes, so what is kept is still explained.
pub struct Filtered<'a> {
    sink: &'a mut dyn Sink,
    filter: &'a LogFilter,
    selected: std::collections::HashSet<u32>,
    /// Failures left out, and those kept under --since because the log gave them no date.
    left_out: u64,
    undated: u64,
}

impl<'a> Filtered<'a> {
    pub fn new(sink: &'a mut dyn Sink, filter: &'a LogFilter) -> Self {
        Filtered {
            sink,
            filter,
            selected: filter.pids.iter().copied().collect(),
            left_out: 0,
            undated: 0,
        }
    }

    fn keeps(&mut self, o: &Origin, failure: bool) -> bool {
        let f = self.filter;
        let by_pid = f.pids.is_empty() || self.selected.contains(&o.pid);
        let by_comm =
            f.comms.is_empty() || f.comms.iter().any(|c| c.as_bytes() == o.comm.as_bytes());
        let by_time = match f.since_ns {
            Some(since) if o.time_ns >= WALL_CLOCK_FLOOR_NS => o.time_ns >= since,
            Some(_) => {
                self.undated += failure as u64;
                true
            }
            None => true,
        };
        let keep = by_pid && by_comm && by_time;
        self.left_out += (failure && !keep) as u64;
        keep
    }

    /// A child of a selected process is selected too.
    fn follow(&mut self, parent: Option<u32>, child: u32) {
        if parent.is_some_and(|p| self.selected.contains(&p)) && self.selected.len() < MAX_SELECTED
        {
            self.selected.insert(child);
        }
    }

    /// What the filter did, for the report's warnings: how many, then what.
    pub fn notes(&self) -> Vec<String> {
        let counted = [
            (self.left_out, "failures of the log were left out by --pid/--comm/--since"),
            (self.undated, "failures have no date in the log (strace without -ttt): --since could not apply to them, they are kept"),
        ];
        (counted.iter())
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect()
    }
}

impl Sink for Filtered<'_> {
    fn process(&mut self, pid: u32, ppid: Option<u32>, comm: Text, exe: Option<Text>) {
        self.follow(ppid, pid);
        self.sink.process(pid, ppid, comm, exe);
    }

    fn event(&mut self, ev: Event) {
        let keep = match &ev {
            Event::Failure(f) => self.keeps(&f.origin, true),
            Event::Message(m) => self.keeps(&m.origin, false),
            Event::Fork(f) => {
                self.follow(Some(f.parent_pid), f.child_pid);
                true
            }
            _ => true,
        };
        if keep {
            self.sink.event(ev);
        }
    }
}

/// How much of an input is sniffed for binary content.
const SNIFF: u64 = 64 * 1024;
/// Longest line kept; longer lines are cut here (the rest is skipped, not held).
pub const MAX_LINE: usize = 1 << 20;

/// An input opened once and checked: its reader starts at the first byte (the sniffed head is
/// read again from memory, never from a second open, so pipes and FIFOs lose nothing).
pub struct Opened {
    pub reader: Box<dyn BufRead + Send>,
    /// A regular file named by a path: it may be closed and reopened at an offset.
    pub reopenable: Option<PathBuf>,
}

/// Opens `path` (`-` is stdin) and checks that it is a text log, with the reason in one line.
pub fn open(path: &Path) -> Result<Opened, String> {
    let stdin = path.as_os_str() == "-";
    let file = if stdin {
        // A new descriptor for stdin, so the reader owns it like any other input.
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
    } else {
        File::open(path)
    }
    .map_err(|e| format!("cannot read it: {e}"))?;
    let kind = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?
        .file_type();
    if kind.is_dir() {
        return Err("is a directory, not a log".into());
    }
    if !(kind.is_file() || kind.is_fifo() || kind.is_char_device() || kind.is_socket()) {
        return Err("is not a regular file, pipe or character device".into());
    }
    let reopenable = (kind.is_file() && !stdin).then(|| path.to_path_buf());
    let mut head = Vec::new();
    (&file)
        .take(SNIFF)
        .read_to_end(&mut head)
        .map_err(|e| format!("cannot read it: {e}"))?;
    check_text(&head)?;
    Ok(Opened {
        reader: Box::new(BufReader::new(Cursor::new(head).chain(file))),
        reopenable,
    })
}

/// Opens a regular file read before at `offset` (after the text check passed).
pub fn reopen_at(path: &Path, offset: u64) -> std::io::Result<Box<dyn BufRead + Send>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    Ok(Box::new(BufReader::new(f)))
}

/// The same check on bytes in memory.
pub fn check_text(head: &[u8]) -> Result<(), String> {
    if head.iter().all(u8::is_ascii_whitespace) {
        return Err("is empty".into());
    }
    if let Some(at) = head.iter().position(|&b| b == 0) {
        return Err(format!(
            "is binary data (a NUL byte at offset {at}), not a text log"
        ));
    }
    Ok(())
}

/// Reads the next line into `buf` (cleared first), at most [`MAX_LINE`] bytes of it; the rest
/// of a longer line is skipped. Returns the bytes consumed from `reader` (0 at the end).
pub fn read_line(reader: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<u64> {
    buf.clear();
    let mut used = reader.take(MAX_LINE as u64).read_until(b'\n', buf)? as u64;
    if buf.len() >= MAX_LINE && buf.last() != Some(&b'\n') {
        used += reader.skip_until(b'\n')? as u64;
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlong_line_is_cut_and_its_rest_skipped() {
        let mut text = vec![b'a'; MAX_LINE + 10];
        text.extend_from_slice(b"\nnext\n");
        let mut r: &[u8] = &text;
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf).unwrap(), MAX_LINE as u64 + 11);
        assert_eq!(buf.len(), MAX_LINE);
        assert_eq!(read_line(&mut r, &mut buf).unwrap(), 5);
        assert_eq!(buf, b"next\n");
        assert_eq!(read_line(&mut r, &mut buf).unwrap(), 0);
    }
}
