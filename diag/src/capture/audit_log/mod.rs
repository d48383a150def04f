//! Offline backend: kernel audit records (audit.log, dmesg, `journalctl -k`). Records of one
//! event share their `audit(TIME:SERIAL)` id and are read together; each denial record
//! (Landlock, SELinux AVC, AppArmor, seccomp) becomes a failure whose layer the record names.
//!
//! Reading is a stream: the kernel writes an event's records one after the other (auditd and
//! dmesg may interleave a few events), so records are grouped in a small window of recent
//! events, and an event leaves the window (to be judged and handed to the sink) when newer
//! ones push it out. Memory stays bounded whatever the size of the log.

mod denial;
mod lsm;
mod record;

use super::offline::{self, OfflineLog, Sink};
use super::CaptureConfig;
use crate::model::{syscalls, Event, Text};
use denial::Verdict;
use record::Record;
use std::collections::{HashSet, VecDeque};
use std::io::BufRead;
use std::path::PathBuf;

/// Events open at once while grouping: an event whose records are further apart than this
/// many other events is judged in parts.
const WINDOW: usize = 64;
/// Records kept per event (a SYSCALL, its PATHs, CWD, PROCTITLE, the denial...).
const MAX_RECORDS_PER_EVENT: usize = 32;
/// Distinct notes kept (seccomp kills); repeats are counted on the note.
const MAX_NOTES: usize = 100;
/// Processes declared to the sink, remembered so each is declared once.
const MAX_DECLARED: usize = 65_536;

/// What an audit log cannot tell, so the report does not pretend to.
const NOT_IN_AUDIT_RECORDS: &str = "not known from this log: process creation, seccomp refusals (audited only for filters installed with SECCOMP_FILTER_FLAG_LOG), the files' types and mounts, the processes' limits";

/// An audit log read so far.
#[derive(Default)]
pub struct Stream {
    window: VecDeque<Vec<Record>>,
    lines: u64,
    records: u64,
    /// Records written by `ausearch -i` (dated in the local time of the host that ran it).
    interpreted: u64,
    /// journald's records without an event id, each read alone.
    alone: u64,
    events: u64,
    failures: u64,
    dropped_records: u64,
    /// Each distinct note and how many times it came.
    notes: Vec<(String, u64)>,
    dropped_notes: u64,
    declared: HashSet<u32>,
}

pub fn read_files(
    paths: &[PathBuf],
    config: &CaptureConfig,
    sink: &mut dyn Sink,
) -> Result<OfflineLog, String> {
    let mut stream = Stream::default();
    for path in paths {
        let mut input = offline::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        stream
            .read(input.reader.as_mut(), config, sink)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if stream.records == 0 {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "{}: no audit records found in {} lines (expected lines like `type=AVC msg=audit(1700000000.123:42): ...` or `audit: type=1400 audit(...): ...`)",
            names.join(", "),
            stream.lines
        ));
    }
    Ok(stream.finish(config, sink))
}

impl Stream {
    /// Reads the records of one reader, handing on each event that leaves the window.
    pub fn read(
        &mut self,
        reader: &mut dyn BufRead,
        config: &CaptureConfig,
        sink: &mut dyn Sink,
    ) -> std::io::Result<()> {
        let mut buf = Vec::new();
        while offline::read_line(reader, &mut buf)? > 0 {
            self.lines += 1;
            if let Some(r) = record::parse(&String::from_utf8_lossy(&buf)) {
                self.records += 1;
                self.interpreted += r.interpreted as u64;
                self.alone += r.alone as u64;
                self.add(r, config, sink);
            }
        }
        Ok(())
    }

    fn add(&mut self, r: Record, config: &CaptureConfig, sink: &mut dyn Sink) {
        // `ausearch -i` may date the records of one event in different forms: its serial
        // alone (unique in a boot) ties them.
        let same = |g: &Vec<Record>| {
            g[0].serial == r.serial && (g[0].time_ns == r.time_ns || r.interpreted)
        };
        if let Some(g) = (!r.alone)
            .then(|| self.window.iter_mut().rev().find(|g| same(g)))
            .flatten()
        {
            if g.len() < MAX_RECORDS_PER_EVENT {
                g.push(r);
            } else {
                self.dropped_records += 1;
            }
            return;
        }
        if self.window.len() >= WINDOW {
            let oldest = self.window.pop_front().expect("a full window");
            self.judge(&oldest, config, sink);
        }
        self.window.push_back(vec![r]);
    }

    /// Turns one event's denial into a failure for the sink, or a note.
    fn judge(&mut self, g: &[Record], config: &CaptureConfig, sink: &mut dyn Sink) {
        self.events += 1;
        match denial::verdict(g) {
            Some(Verdict::Failure(f, ppid)) => {
                let watched = syscalls::number(&f.syscall)
                    .is_none_or(|n| config.syscalls.contains(&n))
                    && config.errnos.watches(
                        &f.syscall,
                        f.errno,
                        f.path.as_ref().map(|p| p.as_bytes()),
                    );
                if !watched {
                    return;
                }
                self.failures += 1;
                if self.declared.len() >= MAX_DECLARED {
                    self.declared.clear(); // declaring again is harmless, only slower
                }
                if self.declared.insert(f.origin.pid) {
                    let exe = g
                        .iter()
                        .find(|r| r.kind == record::SYSCALL)
                        .and_then(|r| r.get("exe"))
                        .map(Text::new);
                    sink.process(f.origin.pid, ppid, f.origin.comm.clone(), exe);
                }
                sink.event(Event::Failure(*f));
            }
            Some(Verdict::Note(n)) => self.note(n),
            None => {}
        }
    }

    fn note(&mut self, n: String) {
        let full = self.notes.len() >= MAX_NOTES;
        match self.notes.iter_mut().find(|(t, _)| *t == n) {
            Some((_, times)) => *times += 1,
            None if full => self.dropped_notes += 1,
            None => self.notes.push((n, 1)),
        }
    }

    /// Judges the events still in the window and says what the log held back.
    pub fn finish(mut self, config: &CaptureConfig, sink: &mut dyn Sink) -> OfflineLog {
        while let Some(g) = self.window.pop_front() {
            self.judge(&g, config, sink);
        }
        let mut log = OfflineLog {
            notes: (self.notes.iter())
                .map(|(n, times)| match times {
                    1 => n.clone(),
                    _ => format!("{n} ({times} times)"),
                })
                .collect(),
            ..OfflineLog::default()
        };
        if self.dropped_notes > 0 {
            log.notes.push(format!(
                "{} more audit notes beyond the first {MAX_NOTES} distinct ones were not kept",
                self.dropped_notes
            ));
        }
        if self.dropped_records > 0 {
            log.notes.push(format!(
                "{} audit records beyond {MAX_RECORDS_PER_EVENT} in one event were not read",
                self.dropped_records
            ));
        }
        if self.failures == 0 && log.notes.is_empty() {
            log.notes.push(format!(
                "{} audit events read; none is a denial diag knows (Landlock, SELinux AVC, AppArmor, seccomp)",
                self.events
            ));
        }
        if self.interpreted > 0 {
            log.notes.push("`ausearch -i` dates its records in the local time of the host that ran it: they are read as UTC".into());
        }
        if self.alone > 0 {
            log.notes.push(format!("{} journal audit lines carry no event id: each was read alone, a denial's call implied by the denial (journalctl -o verbose, ausearch or dmesg keep the ids)", self.alone));
        }
        log.notes.push(NOT_IN_AUDIT_RECORDS.into());
        log
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{errno, Failure};

    fn failures(text: &str) -> (Vec<Failure>, Vec<String>) {
        let config = CaptureConfig::default();
        let mut events = Vec::new();
        let mut stream = Stream::default();
        stream
            .read(&mut text.as_bytes(), &config, &mut events)
            .unwrap();
        let log = stream.finish(&config, &mut events);
        let f = events
            .into_iter()
            .filter_map(|e| match e {
                Event::Failure(f) => Some(f),
                _ => None,
            })
            .collect();
        (f, log.notes)
    }

    fn layer(f: &Failure) -> &str {
        &f.evidence.audit.as_ref().unwrap().layer
    }

    #[test]
    fn selinux_avc_with_its_syscall_record() {
        let (f, _) = failures(concat!(
            r#"type=AVC msg=audit(1700000000.123:456): avc:  denied  { read write } for  pid=3084 comm="tmux: server" path="/dev/ptmx" dev="devtmpfs" ino=91 scontext=system_u:system_r:container_t:s0:c1,c2 tcontext=system_u:object_r:ptmx_t:s0 tclass=chr_file permissive=0"#,
            "\n",
            r#"type=SYSCALL msg=audit(1700000000.123:456): arch=c000003e syscall=257 success=no exit=-13 a0=ffffff9c a1=55d0c0ffee00 a2=80002 a3=0 items=0 ppid=3083 pid=3084 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=(none) ses=3 comm=746D75783A20736572766572 exe="/usr/bin/tmux" subj=system_u:system_r:container_t:s0:c1,c2 key=(null)"#,
            "\n",
            // permissive: logged, not refused
            r#"type=AVC msg=audit(1700000000.200:457): avc:  denied  { open } for  pid=3084 comm="tmux: server" path="/etc/shadow" scontext=a tcontext=b tclass=file permissive=1"#,
        ));
        assert_eq!(f.len(), 1);
        let f = &f[0];
        assert_eq!(layer(f), "selinux");
        assert_eq!(
            (f.origin.pid, f.syscall.as_str(), f.errno),
            (3084, "openat", libc::EACCES)
        );
        assert_eq!(f.origin.comm.lossy(), "tmux: server");
        assert_eq!(f.path.as_ref().unwrap().lossy(), "/dev/ptmx");
        assert_eq!(f.flags, Some(0x80002));
        assert_eq!(f.origin.uid, Some(1000));
    }

    #[test]
    fn apparmor_denial_in_dmesg_form_without_a_syscall_record() {
        let (f, _) = failures(
            r#"[12345.678901] audit: type=1400 audit(1700000001.500:77): apparmor="DENIED" operation="open" class="file" profile="docker-default" name="/dev/ptmx" pid=4242 comm="tmux" requested_mask="wr" denied_mask="wr" fsuid=0 ouid=0"#,
        );
        let f = &f[0];
        assert_eq!(layer(f), "apparmor");
        assert_eq!((f.origin.pid, f.syscall.as_str()), (4242, "open"));
        assert_eq!(errno::name(f.errno), "EACCES");
        assert_eq!(f.path.as_ref().unwrap().lossy(), "/dev/ptmx");
    }

    #[test]
    fn absurd_exit_values_imply_the_errno() {
        let (f, _) = failures(concat!(
            r#"type=AVC msg=audit(1.0:1): avc:  denied  { open } for  pid=7 path="/x" scontext=a:b:c_t:s0 tcontext=a:b:d_t:s0 tclass=file permissive=0"#,
            "\n",
            r#"type=SYSCALL msg=audit(1.0:1): arch=c000003e syscall=257 success=no exit=-9223372036854775808 pid=7"#,
        ));
        assert_eq!(f[0].errno, libc::EACCES);
    }

    #[test]
    fn seccomp_errno_is_a_failure_and_a_kill_is_a_note() {
        let (f, notes) = failures(concat!(
            r#"type=SECCOMP msg=audit(1700000002.000:88): auid=1000 uid=1000 gid=1000 ses=2 subj=unconfined pid=5150 comm="python3" exe="/usr/bin/python3.11" sig=0 arch=c000003e syscall=425 compat=0 ip=0x7f6f0e51e719 code=0x50026"#,
            "\n",
            r#"Nov 28 20:56:39 vm kernel: audit: type=1326 audit(1700000003.000:89): auid=4294967295 uid=0 gid=0 ses=4294967295 pid=5151 comm="curl" exe="/usr/bin/curl" sig=31 arch=c000003e syscall=41 compat=0 ip=0x7f0 code=0x80000000"#,
        ));
        assert_eq!(f.len(), 1);
        assert_eq!(layer(&f[0]), "seccomp");
        assert_eq!(
            (f[0].syscall.as_str(), errno::name(f[0].errno).as_str()),
            ("io_uring_setup", "ENOSYS")
        );
        assert!(
            notes
                .iter()
                .any(|n| n.contains("socket") && n.contains("KILL_PROCESS")),
            "{notes:?}"
        );
    }

    #[test]
    fn landlock_denial_without_a_syscall_record_implies_open() {
        let (f, _) = failures(
            "type=UNKNOWN[1423] msg=audit(1795899766.929:12): domain=157bd2aff blockers=fs.write_file,fs.read_file path=2F6465762F70746D78 dev=\"devtmpfs\" ino=91",
        );
        let f = &f[0];
        assert_eq!(layer(f), "landlock");
        assert_eq!((f.syscall.as_str(), f.errno), ("open", libc::EACCES));
        assert_eq!(f.path.as_ref().unwrap().lossy(), "/dev/ptmx");
    }
}
