//! Offline backend: kernel audit records (audit.log, dmesg, `journalctl -k`). Records of one
//! event share their `audit(TIME:SERIAL)` id and are read together; each denial record
//! (Landlock, SELinux AVC, AppArmor, seccomp) becomes a failure whose layer the record names.

mod denial;
mod record;

use super::offline::{self, OfflineLog};
use super::CaptureConfig;
use crate::model::{syscalls, Event};
use denial::Verdict;
use record::Record;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::PathBuf;

/// Bound on records held while grouping; the rest are counted.
const MAX_RECORDS: usize = 200_000;

/// Records read so far.
#[derive(Default)]
pub struct Collected {
    pub records: Vec<Record>,
    pub lines: u64,
    pub dropped: u64,
}

pub fn read_files(paths: &[PathBuf], config: &CaptureConfig) -> Result<OfflineLog, String> {
    let mut c = Collected::default();
    for path in paths {
        offline::check_text_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let f = std::fs::File::open(path)
            .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
        collect(std::io::BufReader::new(f), &mut c)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if c.records.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "{}: no audit records found in {} lines (expected lines like `type=AVC msg=audit(1700000000.123:42): ...` or `audit: type=1400 audit(...): ...`)",
            names.join(", "),
            c.lines
        ));
    }
    Ok(build(c, config))
}

/// Parses the records of one reader.
pub fn collect(reader: impl BufRead, c: &mut Collected) -> std::io::Result<()> {
    for line in reader.split(b'\n') {
        let line = line?;
        c.lines += 1;
        match record::parse(&String::from_utf8_lossy(&line)) {
            Some(r) if c.records.len() < MAX_RECORDS => c.records.push(r),
            Some(_) => c.dropped += 1,
            None => {}
        }
    }
    Ok(())
}

/// Groups records by event and turns each denial into a failure.
pub fn build(c: Collected, config: &CaptureConfig) -> OfflineLog {
    let (records, dropped) = (c.records, c.dropped);
    let mut groups: Vec<Vec<Record>> = Vec::new();
    let mut index: HashMap<(u64, u64), usize> = HashMap::new();
    for r in records {
        let key = (r.time_ns, r.serial);
        match index.get(&key) {
            Some(&i) => groups[i].push(r),
            None => {
                index.insert(key, groups.len());
                groups.push(vec![r]);
            }
        }
    }
    groups.sort_by_key(|g| (g[0].time_ns, g[0].serial));
    let mut log = OfflineLog::default();
    for g in &groups {
        match denial::verdict(g) {
            Some(Verdict::Failure(f, ppid)) => {
                let watched = syscalls::number(&f.syscall)
                    .is_none_or(|n| config.syscalls.contains(&n))
                    && config.errnos.watches(f.errno, f.path.as_ref().map(|p| p.as_bytes()));
                if !watched {
                    continue;
                }
                if !log.processes.iter().any(|p| p.0 == f.origin.pid) {
                    let exe = g
                        .iter()
                        .find(|r| r.kind == record::SYSCALL)
                        .and_then(|r| r.get("exe"))
                        .map(crate::model::Text::new);
                    log.processes
                        .push((f.origin.pid, ppid, f.origin.comm.clone(), exe));
                }
                log.events.push(Event::Failure(f));
            }
            Some(Verdict::Note(n)) => log.notes.push(n),
            None => {}
        }
    }
    if dropped > 0 {
        log.notes.push(format!(
            "{dropped} audit records beyond the first {MAX_RECORDS} were not read"
        ));
    }
    if log.events.is_empty() && log.notes.is_empty() {
        log.notes.push(format!(
            "{} audit events read; none is a denial diag knows (Landlock, SELinux AVC, AppArmor, seccomp)",
            groups.len()
        ));
    }
    log
}
