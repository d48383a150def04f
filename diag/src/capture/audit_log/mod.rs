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
                    && config
                        .errnos
                        .watches(f.errno, f.path.as_ref().map(|p| p.as_bytes()));
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
                log.events.push(Event::Failure(*f));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{errno, Failure};

    fn failures(text: &str) -> (Vec<Failure>, Vec<String>) {
        let mut c = Collected::default();
        collect(text.as_bytes(), &mut c).unwrap();
        let log = build(c, &CaptureConfig::default());
        let f = log
            .events
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
