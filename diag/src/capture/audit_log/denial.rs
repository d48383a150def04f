//! One audit event (the records sharing an `audit(TIME:SERIAL)` id) turned into a failure: the
//! layer comes straight from the denial record, the call from the SYSCALL record when there is
//! one, else from the denial record itself.

use super::lsm;
use super::record::{self as rec, Record};
use crate::model::{
    errno, flags, syscalls, text, AuditVerdict, EvidenceSource, Failure, KernelEvidence, Origin,
    Text,
};

/// seccomp's action bits (`code=`), from `linux/seccomp.h`.
const SECCOMP_RET_ACTION_FULL: u64 = 0xffff_0000;
const SECCOMP_RET_ERRNO: u64 = 0x0005_0000;
const SECCOMP_RET_DATA: u64 = 0x0000_ffff;
const SECCOMP_KILLS: &[(u64, &str)] = &[
    (0x8000_0000, "SECCOMP_RET_KILL_PROCESS"),
    (0x0000_0000, "SECCOMP_RET_KILL_THREAD"),
    (0x0003_0000, "SECCOMP_RET_TRAP"),
];

/// What one audit event says.
pub enum Verdict {
    Failure(Box<Failure>, Option<u32>),
    /// A denial that is not a failed call (seccomp killed the process): a note for the report.
    Note(String),
}

/// The layer a record speaks for, if it is a denial.
fn layer(r: &Record) -> Option<&'static str> {
    match r.kind {
        rec::LANDLOCK_ACCESS => Some("landlock"),
        rec::APPARMOR_DENIED => Some("apparmor"),
        rec::AVC if r.text("apparmor").as_deref() == Some("DENIED") => Some("apparmor"),
        rec::AVC
            if r.body.starts_with("avc:")
                && r.body.contains(" denied ")
                && r.text("permissive").as_deref() != Some("1") =>
        {
            Some("selinux")
        }
        rec::SECCOMP => Some("seccomp"),
        _ => None,
    }
}

pub fn verdict(group: &[Record]) -> Option<Verdict> {
    let (denial, layer) = group.iter().find_map(|r| Some((r, layer(r)?)))?;
    let sys = group.iter().find(|r| r.kind == rec::SYSCALL);
    let pick = |key: &str| sys.and_then(|s| s.get(key)).or_else(|| denial.get(key));
    let pid = pick("pid").and_then(number).unwrap_or(0);
    let comm = Text::new(pick("comm").unwrap_or_default());
    let call_record = sys.or((layer == "seccomp").then_some(denial));
    let syscall = call_record
        .and_then(|r| r.text("syscall"))
        .map(|s| match s.parse::<u32>() {
            Ok(nr) => syscalls::name_on_audit_arch(
                call_record.and_then(|r| r.text("arch")).as_deref(),
                nr,
            ),
            Err(_) => s, // `ausearch -i` already named it
        })
        .unwrap_or_else(|| implied_syscall(denial, layer).to_string());

    if layer == "seccomp" {
        let code = denial
            .text("code")
            .and_then(|c| u64::from_str_radix(c.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        let action = code & SECCOMP_RET_ACTION_FULL;
        if let Some((_, name)) = SECCOMP_KILLS.iter().find(|(a, _)| *a == action) {
            return Some(Verdict::Note(format!(
                "seccomp answered {syscall} of pid {pid} ({}) with {name}: the process got SIGSYS",
                comm.escaped()
            )));
        }
        if action != SECCOMP_RET_ERRNO {
            return None; // LOG, TRACE, USER_NOTIF, ALLOW: the call went on
        }
    }
    let errno = sys
        .and_then(exit_errno)
        .unwrap_or_else(|| implied_errno(denial, layer));
    let path = path(group, denial);
    // `ausearch -i` names the flags (`O_RDWR|O_CLOEXEC`) where the raw record has hex.
    let flag_arg = sys.and_then(|s| s.text(&format!("a{}", syscalls::flag_arg(&syscall)?)));
    let flags = flag_arg
        .as_deref()
        .and_then(|a| u64::from_str_radix(a, 16).ok().or_else(|| flags::parse(a)));
    let flags_text = flag_arg.filter(|_| sys.is_some_and(|s| s.interpreted));
    let explained = lsm::explain(group, denial, layer);
    let failure = Failure {
        origin: Origin {
            time_ns: denial.time_ns,
            pid,
            tid: pid,
            comm,
            uid: pick("uid").and_then(number),
            gid: pick("gid").and_then(number),
        },
        syscall,
        errno,
        path,
        path_cut: None,
        flags,
        flags_text,
        args: None,
        evidence: KernelEvidence {
            audit: Some(AuditVerdict {
                layer: layer.into(),
                record: describe(group, denial),
                explained: explained.as_ref().map(|e| text::escape(&e.why)),
                remedy: explained.map(|e| text::escape(&e.remedy)),
            }),
            source: EvidenceSource::CallOnly,
            ..KernelEvidence::default()
        },
        signal: None,
        at_failure: None,
    };
    let ppid = sys.and_then(|s| s.get("ppid")).and_then(number);
    Some(Verdict::Failure(Box::new(failure), ppid))
}

/// A number, or `ausearch -i`'s `unknown(29)` for an id it could not name (a name such as
/// `root` is not looked up: this host's users are not the log's).
fn number(v: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(v).ok()?;
    let s = s
        .strip_prefix("unknown(")
        .and_then(|n| n.strip_suffix(')'))
        .unwrap_or(s);
    s.parse().ok()
}

/// The errno of a failed call: `exit=-13`, or `ausearch -i`'s `exit=EACCES(Permission denied)`.
fn exit_errno(sys: &Record) -> Option<i32> {
    if let Some(e) = sys.number("exit") {
        return i32::try_from(e.checked_neg()?).ok().filter(|&n| n > 0);
    }
    let text = sys.text("exit")?;
    errno::number(text.split('(').next()?)
}

/// The errno a layer returns for this denial when no SYSCALL record gives it.
fn implied_errno(denial: &Record, layer: &str) -> i32 {
    let blockers = denial.text("blockers").unwrap_or_default();
    let code = denial.text("code").unwrap_or_default();
    match layer {
        "landlock" if blockers.contains("fs.refer") => libc::EXDEV,
        "landlock" if blockers.contains("scope.") || blockers.contains("change_topology") => {
            libc::EPERM
        }
        "apparmor" if denial.text("operation").as_deref() == Some("capable") => libc::EPERM,
        "seccomp" => u64::from_str_radix(code.trim_start_matches("0x"), 16)
            .map_or(libc::EPERM, |c| (c & SECCOMP_RET_DATA) as i32),
        _ => libc::EACCES,
    }
}

/// The call a denial implies when no SYSCALL record names it: Landlock checks read_file and
/// write_file only when a file is opened, and execute on exec; AppArmor names its operation.
fn implied_syscall(denial: &Record, layer: &str) -> &'static str {
    let blockers = denial.text("blockers").unwrap_or_default();
    let rights: Vec<&str> = blockers.split(',').collect();
    match layer {
        "landlock"
            if rights
                .iter()
                .all(|r| matches!(*r, "fs.read_file" | "fs.write_file")) =>
        {
            "open"
        }
        "landlock" if rights == ["fs.execute"] => "execve",
        "apparmor" => match denial.text("operation").as_deref() {
            Some("open") => "open",
            Some("exec") => "execve",
            Some("mkdir") => "mkdir",
            Some("unlink") => "unlink",
            Some("ptrace") => "ptrace",
            Some("signal") => "kill",
            _ => "unknown",
        },
        "selinux" if denial.perms.iter().any(|p| p == "open") => "open",
        "selinux" if denial.perms.iter().any(|p| p == "execute") => "execve",
        _ => "unknown",
    }
}

/// The full path the denial is about: Landlock's and SELinux's `path=`, AppArmor's `name=`,
/// the first PATH record (joined to CWD when relative), or SELinux's bare `name=` last.
fn path(group: &[Record], denial: &Record) -> Option<Text> {
    let item = group
        .iter()
        .find(|r| r.kind == rec::PATH)
        .and_then(|r| r.get("name"));
    let cwd = group
        .iter()
        .find(|r| r.kind == rec::CWD)
        .and_then(|r| r.get("cwd"));
    let apparmor = (denial.get("apparmor").is_some() || denial.kind == rec::APPARMOR_DENIED)
        .then(|| denial.get("name"))
        .flatten();
    if let Some(p) = denial.get("path").or(apparmor) {
        return Some(Text::new(p));
    }
    if let Some(p) = item {
        return Some(Text::new(match cwd {
            Some(c) if !p.starts_with(b"/") => [c, b"/", p].concat(),
            _ => p.to_vec(),
        }));
    }
    denial.get("name").map(Text::new)
}

/// The denial record (with Landlock's domain record) as evidence, safe for a terminal.
fn describe(group: &[Record], denial: &Record) -> String {
    let mut s = format!("type={} {}", denial.kind, denial.body);
    if let Some(d) = group.iter().find(|r| r.kind == rec::LANDLOCK_DOMAIN) {
        s.push_str(&format!("; type={} {}", d.kind, d.body));
    }
    text::escape(&s)
}
