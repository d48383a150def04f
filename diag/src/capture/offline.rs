//! What the offline backends (strace logs, audit records) hand to `diag analyze`, and the checks
//! every input file passes first.

use crate::model::{CaptureStats, Event, Text};
use std::io::Read;
use std::path::Path;

/// A log turned into events, with what it tells about the session.
#[derive(Debug, Default)]
pub struct OfflineLog {
    /// In time order.
    pub events: Vec<Event>,
    /// Processes the log names without showing their creation: (pid, ppid, comm, exe).
    pub processes: Vec<(u32, Option<u32>, Text, Option<Text>)>,
    pub root_pids: Vec<u32>,
    pub command: Vec<Text>,
    pub exit_status: Option<i32>,
    pub stats: CaptureStats,
    /// What the operator should know about the log's limits.
    pub notes: Vec<String>,
}

/// How much of a file is sniffed for binary content.
const SNIFF: u64 = 64 * 1024;

/// Rejects what cannot be a text log, with the reason in one line.
pub fn check_text_file(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err("is a directory".into());
    }
    let mut head = Vec::new();
    file.take(SNIFF)
        .read_to_end(&mut head)
        .map_err(|e| format!("cannot read it: {e}"))?;
    check_text(&head)
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
