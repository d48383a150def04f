//! Offline backend: strace output (`strace -f -o trace.log`, `-ff` per-pid files, `-tt`/`-ttt`
//! /`-T` timestamps, `-y`/`-yy` fd paths, `-Z`, `-s N`) turned into model events.
//!
//! Reading is a stream in three steps: `line` classifies a line, `records` joins
//! `<unfinished ...>` halves, `merge` puts the inputs in one time order, and `events` rebuilds
//! the process tree, names and stdio fds and hands each event to the sink as it comes. Memory
//! stays bounded whatever the size of the log.

mod events;
mod line;
mod merge;
mod records;
mod syntax;

pub use records::{Input, Source};

use super::offline::{OfflineLog, Sink};
use super::CaptureConfig;
use std::path::{Path, PathBuf};

/// What a strace log cannot tell, so the report does not pretend to.
const NOT_IN_STRACE_LOGS: &str = "not known from this log: a layer's verdict beyond what the sandbox's own calls in it show (strace shows errnos, not who refused), seccomp filters, the files' types, modes and mounts, the processes' limits";

/// Reads strace logs into `sink`. `-` is stdin; a name that does not exist but has `-ff`
/// siblings (`trace.log.1234`) stands for all of them. Errors are one line, for the operator.
pub fn read_files(
    paths: &[PathBuf],
    config: &CaptureConfig,
    sink: &mut dyn Sink,
) -> Result<OfflineLog, String> {
    let mut inputs = Vec::new();
    for path in paths {
        for (file, pid) in expand(path)? {
            inputs.push(Input {
                name: file.display().to_string(),
                pid,
                source: Source::Path(file),
            });
        }
    }
    parse(inputs, config, sink)
}

/// Parses inputs into `sink` (the fuzz target feeds bytes here).
pub fn parse(
    inputs: Vec<Input>,
    config: &CaptureConfig,
    sink: &mut dyn Sink,
) -> Result<OfflineLog, String> {
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let per_pid_files = inputs.len() > 1 && inputs.iter().all(|i| i.pid.is_some());
    let mut merge = merge::Merge::new(inputs)?;
    let mut b = events::Builder::default();
    let mut records = 0u64;
    while let Some(r) = merge.next()? {
        records += 1;
        b.record(&r, config, sink);
    }
    let counts = &merge.counts;
    if records == 0 && counts.skipped_lines == counts.lines {
        return Err(format!(
            "{}: no strace lines found (expected lines like `1234 openat(AT_FDCWD, \"/dev/ptmx\", O_RDWR) = -1 EACCES (Permission denied)`)",
            names.join(", ")
        ));
    }
    let mut notes = vec![NOT_IN_STRACE_LOGS.to_string()];
    if counts.successful_calls == 0 {
        notes.push("the log shows no successful call (recorded with -Z?): the process tree, names, messages and Landlock rules cannot be rebuilt from it".into());
    }
    if !merge.timed && per_pid_files {
        notes.push("per-pid files without timestamps: events are in causal order only; record with -ttt for times".into());
    }
    if b.truncated_messages > 0 {
        notes.push(format!(
            "{} writes were cut by strace's string limit: messages may be incomplete; record with -s 4096",
            b.truncated_messages
        ));
    }
    if counts.unknown_pid_lines > 0 {
        notes.push(format!(
            "{} lines had no pid (strace without -f, or before a second process): they are shown as pid {}",
            counts.unknown_pid_lines,
            records::UNKNOWN_PID
        ));
    }
    if counts.skipped_lines > 0 {
        notes.push(format!(
            "{} of {} lines were not strace call lines and were skipped",
            counts.skipped_lines, counts.lines
        ));
    }
    // What a bound cut, or the log got wrong: how many, then what.
    let counted = [
        (counts.mismatched_resumes, "`<... resumed>` lines named another call than the one unfinished on their thread: they were skipped, the unfinished call kept"),
        (counts.pending_evicted, "`<unfinished ...>` calls were forgotten to bound memory: too many were pending at once"),
        (counts.released_early, "unfinished clones held back too many lines: what followed them was read before the child was known"),
        (b.forgotten_processes, "processes without an exit line were forgotten to bound memory: their later names and stdio fds are unknown"),
    ];
    notes.extend(
        (counted.iter())
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}")),
    );
    Ok(OfflineLog {
        root_pids: b.root.into_iter().collect(),
        command: b.command,
        exit_status: b.root_status,
        stats: b.stats,
        notes,
        forks_recorded: counts.successful_calls > 0,
    })
}

/// `trace.log` → itself, or its `-ff` files `trace.log.<pid>` when it does not exist.
fn expand(path: &Path) -> Result<Vec<(PathBuf, Option<u32>)>, String> {
    let pid_of = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .and_then(|e| e.parse::<u32>().ok())
    };
    if path.as_os_str() == "-" || path.exists() {
        return Ok(vec![(path.to_path_buf(), pid_of(path))]);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let stem = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut found: Vec<(PathBuf, Option<u32>)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            match (name, &stem) {
                (Some(n), Some(s)) => n
                    .strip_prefix(s.as_str())
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|pid| pid.parse::<u32>().is_ok()),
                _ => false,
            }
        })
        .map(|p| {
            let pid = pid_of(&p);
            (p, pid)
        })
        .collect();
    if found.is_empty() {
        return Err(format!(
            "{}: no such file (nor per-pid files {0}.<pid> from strace -ff)",
            path.display()
        ));
    }
    found.sort();
    Ok(found)
}
