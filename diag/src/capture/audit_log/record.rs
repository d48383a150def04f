//! One kernel audit record, in any of the forms it is kept in: audit.log and `ausearch --raw`
//! (`type=AVC msg=audit(1700000000.123:42): ...`), `ausearch -i` (`type=AVC
//! msg=audit(04/25/2023 21:22:49.431:10767) : ...`, values interpreted), dmesg with or without
//! its timestamps (`[ 12.3] audit: type=1400 audit(...): ...`) or `journalctl -k` (a syslog or
//! ISO prefix in front).

use regex::Regex;
use std::sync::LazyLock;

pub const SYSCALL: u32 = 1300;
pub const PATH: u32 = 1302;
pub const CWD: u32 = 1307;
pub const SECCOMP: u32 = 1326;
pub const AVC: u32 = 1400;
pub const LANDLOCK_ACCESS: u32 = 1423;
pub const LANDLOCK_DOMAIN: u32 = 1424;
pub const APPARMOR_DENIED: u32 = 1503;

/// Type names auditd writes, for the types diag reads.
const TYPE_NAMES: &[(&str, u32)] = &[
    ("SYSCALL", SYSCALL),
    ("PATH", PATH),
    ("CWD", CWD),
    ("SECCOMP", SECCOMP),
    ("AVC", AVC),
    ("LANDLOCK_ACCESS", LANDLOCK_ACCESS),
    ("LANDLOCK_DOMAIN", LANDLOCK_DOMAIN),
    ("APPARMOR_DENIED", APPARMOR_DENIED),
];

/// Fields that hold untrusted strings: audit writes them quoted, or hex-encoded unquoted when
/// they contain spaces, quotes or control characters.
const STRING_FIELDS: &[&str] = &[
    "path",
    "name",
    "comm",
    "exe",
    "cwd",
    "proctitle",
    "cmd",
    "profile",
    "operation",
];

/// Bounds on what one record keeps, so that a log of huge records holds little: a value is cut
/// at PATH_MAX, a record keeps this many fields and field bytes, and this much of its text.
const MAX_VALUE: usize = 4096;
const MAX_FIELDS: usize = 64;
const MAX_FIELD_BYTES: usize = 16 * 1024;
const MAX_BODY: usize = 4096;
const MAX_KEY: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: u32,
    /// audit(SECONDS.MILLIS:SERIAL): the records of one event share it.
    pub time_ns: u64,
    pub serial: u64,
    /// The record's own text after `audit(...): ` (its first [`MAX_BODY`] bytes).
    pub body: String,
    pub fields: Vec<(String, Vec<u8>)>,
    /// SELinux's `{ read write }` permission set.
    pub perms: Vec<String>,
    /// journald's form has no event id: the record is an event by itself.
    pub alone: bool,
    /// Written by `ausearch -i`: values are interpreted (names for numbers, paths decoded), and
    /// the time is the local time of the host that ran ausearch.
    pub interpreted: bool,
}

/// The record type, then its time: seconds since the epoch, or `ausearch -i`'s local date
/// (`04/25/2023 21:22:49`, month first, or `25.4.2023`, day first).
static HEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"type=(?:UNKNOWN\[(\d+)\]|(\d+)|([A-Z_]+))\s+(?:msg=)?audit\((?:(\d+)|(\d{1,2})([/.])(\d{1,2})[/.](\d{4}) (\d{2}):(\d{2}):(\d{2}))\.(\d+):(\d+)\)\s?:\s?",
    )
    .expect("valid regex")
});

/// journald's own audit lines (`audit[911]: AVC avc:  denied ...`, `audit: PATH item=0 ...`):
/// the type by name, no `audit(TIME:SERIAL)` id.
static JOURNAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\baudit(?:\[\d+\])?: ([A-Z_]+) ").expect("valid regex"));
/// An ISO prefix (`journalctl -o short-iso`): `2024-10-08T18:42:47+0200`, `...T18:42:47.123Z`.
static ISO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])(\d{2}):?(\d{2}))?\s")
        .expect("valid regex")
});

pub fn parse(line: &str) -> Option<Record> {
    let Some(c) = HEAD.captures(line) else {
        return journal(line);
    };
    let kind = match (c.get(1).or(c.get(2)), c.get(3)) {
        (Some(n), _) => n.as_str().parse().ok()?,
        (None, Some(name)) => TYPE_NAMES.iter().find(|(n, _)| *n == name.as_str())?.1,
        _ => return None,
    };
    let interpreted = c.get(4).is_none();
    let secs: u64 = match c.get(4) {
        Some(s) => s.as_str().parse().ok()?,
        None => {
            let n = |i: usize| c[i].parse::<u64>().ok();
            let (month, day) = match &c[6] {
                "/" => (n(5)?, n(7)?),
                _ => (n(7)?, n(5)?),
            };
            let days = days_from_civil(n(8)?, month, day)?;
            days * 86_400 + n(9)? * 3600 + n(10)? * 60 + n(11)?
        }
    };
    let frac = &c[12];
    let frac_ns: u64 =
        frac.parse::<u64>().ok()? * 10u64.checked_pow(9u32.checked_sub(frac.len() as u32)?)?;
    let serial = c[13].parse().ok()?;
    let time_ns = secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)?;
    let id = Some((time_ns, serial));
    Some(record(kind, id, &line[c.get(0)?.end()..], interpreted))
}

/// A journald audit line: its time from an ISO prefix when there is one (the short forms have
/// no year), and no id, so it is read alone.
fn journal(line: &str) -> Option<Record> {
    let c = JOURNAL.captures(line)?;
    let kind = TYPE_NAMES.iter().find(|(n, _)| *n == &c[1])?.1;
    let mut r = record(kind, None, &line[c.get(0)?.end()..], false);
    r.time_ns = iso_time(line).unwrap_or(0);
    Some(r)
}

fn iso_time(line: &str) -> Option<u64> {
    let c = ISO.captures(line)?;
    let n = |i: usize| c.get(i).and_then(|m| m.as_str().parse::<u64>().ok());
    let days = days_from_civil(n(1)?, n(2)?, n(3)?)?;
    let local = days * 86_400 + n(4)? * 3600 + n(5)? * 60 + n(6)?;
    let offset = n(9).unwrap_or(0) * 3600 + n(10).unwrap_or(0) * 60;
    let utc = match c.get(8).map(|m| m.as_str()) {
        Some("-") => local + offset,
        _ => local.checked_sub(offset)?,
    };
    let frac = c.get(7).map_or(0, |m| {
        let digits: String = m
            .as_str()
            .chars()
            .chain(std::iter::repeat('0'))
            .take(9)
            .collect();
        digits.parse().unwrap_or(0)
    });
    utc.checked_mul(1_000_000_000)?.checked_add(frac)
}

/// A record from its type, its `audit(TIME:SERIAL)` id if it has one, and its text.
fn record(kind: u32, id: Option<(u64, u64)>, text: &str, interpreted: bool) -> Record {
    // auditd's enriched format puts interpreted fields after a GS byte.
    let body = text.split('\x1d').next().unwrap_or("").trim_end();
    let (fields, perms) = fields(body, interpreted);
    let mut cut = body.len().min(MAX_BODY);
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    Record {
        kind,
        time_ns: id.map_or(0, |(t, _)| t),
        serial: id.map_or(0, |(_, s)| s),
        alone: id.is_none(),
        body: body[..cut].to_string(),
        fields,
        perms,
        interpreted,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`), None for dates before 1970 or out of range.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

impl Record {
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    pub fn text(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    pub fn number(&self, key: &str) -> Option<i64> {
        self.text(key)?.parse().ok()
    }
}

/// `key=value` pairs (quoted, hex or bare) and SELinux's `{ perms }`. `interpreted` values
/// (`ausearch -i`) are never hex: ausearch decoded them already.
fn fields(body: &str, interpreted: bool) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let mut out = Vec::new();
    let mut perms = Vec::new();
    let mut rest = body.trim_start();
    let mut budget = MAX_FIELD_BYTES;
    while !rest.is_empty() && out.len() < MAX_FIELDS && perms.len() < MAX_FIELDS {
        if let Some(inner) = rest.strip_prefix('{') {
            let end = inner.find('}').unwrap_or(inner.len());
            let room = MAX_FIELDS - perms.len();
            perms.extend(
                inner[..end]
                    .split_whitespace()
                    .take(room)
                    .map(str::to_string),
            );
            rest = inner.get(end + 1..).unwrap_or("").trim_start();
            continue;
        }
        let token_end = rest.find([' ', '=']).unwrap_or(rest.len());
        let key = &rest[..token_end];
        if !rest[token_end..].starts_with('=') {
            rest = rest[token_end..].trim_start();
            continue;
        }
        let value = &rest[token_end + 1..];
        let (raw, quoted, used) = match value.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &value[1..];
                let end = inner.find(q).unwrap_or(inner.len());
                (&inner[..end], true, (end + 2).min(value.len()))
            }
            _ => {
                let end = value.find(' ').unwrap_or(value.len());
                (&value[..end], false, end)
            }
        };
        if key.len() > MAX_KEY {
            rest = value[used..].trim_start();
            continue;
        }
        let mut bytes = if !quoted && !interpreted && STRING_FIELDS.contains(&key) {
            hex(raw).unwrap_or_else(|| raw.as_bytes().to_vec())
        } else {
            raw.as_bytes().to_vec()
        };
        bytes.truncate(MAX_VALUE.min(budget));
        budget -= bytes.len();
        out.push((key.to_string(), bytes));
        rest = value[used..].trim_start();
    }
    (out, perms)
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_dmesg_and_journal_forms() {
        let raw = parse(r#"type=LANDLOCK_ACCESS msg=audit(1795899399.921:9): domain=157bd29c7 blockers=fs.write_file,fs.read_file path="/dev/ptmx" dev="devtmpfs" ino=91"#).unwrap();
        assert_eq!((raw.kind, raw.serial), (LANDLOCK_ACCESS, 9));
        assert_eq!(raw.time_ns, 1_795_899_399_921_000_000);
        assert_eq!(raw.get("path"), Some(&b"/dev/ptmx"[..]));
        let dmesg = parse(r#"[ 1599.228220] audit: type=1423 audit(1795899399.921:9): domain=157bd29c7 blockers=fs.write_file path="/dev/ptmx""#).unwrap();
        assert_eq!(dmesg.kind, LANDLOCK_ACCESS);
        let journal = parse(r#"Nov 28 20:56:39 vm kernel: audit: type=1300 audit(1795899399.921:9): arch=c000003e syscall=257 success=no exit=-13 pid=31384 comm="python3""#).unwrap();
        assert_eq!((journal.kind, journal.number("exit")), (SYSCALL, Some(-13)));
        let unknown = parse("type=UNKNOWN[1423] msg=audit(1.5:3): blockers=fs.read_file").unwrap();
        assert_eq!(
            (unknown.kind, unknown.time_ns),
            (LANDLOCK_ACCESS, 1_500_000_000)
        );
        assert_eq!(parse("random text"), None);
        let iso = parse(r#"2025-11-28T20:56:39+0000 vm kernel: audit: type=1400 audit(1795899399.921:9): apparmor="DENIED" operation="open""#).unwrap();
        assert_eq!((iso.kind, iso.serial), (AVC, 9));
    }

    /// journald's own audit lines, from fedora-selinux/selinux-policy#2379 (short) and the
    /// same in `-o short-iso`.
    #[test]
    fn journald_audit_lines() {
        let r = parse(r#"Oct 08 18:42:47 fedora audit[911]: AVC avc:  denied  { write } for  pid=911 comm="systemd-homed" name="home" dev="sda3" ino=196819 scontext=system_u:system_r:systemd_homed_t:s0 tcontext=system_u:object_r:systemd_homed_cache_t:s0 tclass=dir permissive=1"#).unwrap();
        assert_eq!((r.kind, r.alone, r.time_ns), (AVC, true, 0));
        assert_eq!(r.perms, ["write"]);
        assert_eq!(r.number("pid"), Some(911));
        let r = parse(r#"2024-10-08T18:42:47+0200 fedora audit[911]: AVC avc:  denied  { write } for  pid=911"#).unwrap();
        assert_eq!(r.time_ns, 1_728_405_767 * 1_000_000_000);
        assert_eq!(
            parse("Oct 08 18:42:47 fedora audit: BPF prog-id=1 op=LOAD"),
            None
        );
    }

    /// `ausearch -i`, from fedora-selinux/selinux-policy#1659 (month first) and #2408 (day
    /// first): the date is read as written, values are never hex-decoded.
    #[test]
    fn ausearch_interpreted_form() {
        let r = parse("type=SYSCALL msg=audit(04/25/2023 21:22:49.431:10767) : arch=x86_64 syscall=openat success=no exit=EACCES(Permission denied) a0=AT_FDCWD a1=0x55e3fe882420 a2=O_RDONLY a3=0x0 items=1 ppid=246901 pid=246920 auid=root uid=root comm=less exe=/usr/bin/less").unwrap();
        assert_eq!((r.kind, r.serial, r.interpreted), (SYSCALL, 10767, true));
        // 2023-04-25T21:22:49.431Z
        assert_eq!(r.time_ns, 1_682_457_769_431_000_000);
        assert_eq!(r.text("syscall").as_deref(), Some("openat"));
        assert_eq!(r.get("comm"), Some(&b"less"[..]));
        let r = parse("type=PATH msg=audit(22.10.2024 22:04:46.449:3240) : item=0 name=/cafe/face")
            .unwrap();
        assert_eq!(r.time_ns / 1_000_000_000, 1_729_634_686);
        let r =
            parse("type=PATH msg=audit(22.10.2024 22:04:46.449:3240) : item=0 name=cafe").unwrap();
        assert_eq!(r.get("name"), Some(&b"cafe"[..]), "not hex in -i output");
    }

    #[test]
    fn huge_records_are_cut() {
        let long = "2F".repeat(3 * MAX_VALUE);
        let many = "k=v ".repeat(10 * MAX_FIELDS);
        let r = parse(&format!("type=1423 msg=audit(1.0:1): path={long} {many}")).unwrap();
        assert_eq!(r.get("path").map(<[u8]>::len), Some(MAX_VALUE));
        assert_eq!(r.fields.len(), MAX_FIELDS);
        assert_eq!(r.body.len(), MAX_BODY);
    }

    #[test]
    fn hex_fields_and_selinux_perms() {
        let r = parse(r#"type=AVC msg=audit(1.000:1): avc:  denied  { read write } for  pid=7 comm=746D7578 path=2F746D702F6120622F1B name="ptmx" permissive=0"#).unwrap();
        assert_eq!(r.perms, vec!["read", "write"]);
        assert_eq!(r.get("comm"), Some(&b"tmux"[..]));
        assert_eq!(r.get("path"), Some(&b"/tmp/a b/\x1b"[..]));
        assert_eq!(r.number("pid"), Some(7));
        // A bare number is not hex-decoded.
        let r = parse("type=SYSCALL msg=audit(1.0:1): syscall=257 pid=42").unwrap();
        assert_eq!(r.text("syscall").as_deref(), Some("257"));
    }
}
