//! One kernel audit record, in any of the forms it is kept in: audit.log
//! (`type=AVC msg=audit(1700000000.123:42): ...`), dmesg (`[ 12.3] audit: type=1400
//! audit(...): ...`) or `journalctl -k` (a syslog prefix in front).

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
}

static HEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"type=(?:UNKNOWN\[(\d+)\]|(\d+)|([A-Z_]+))\s+(?:msg=)?audit\((\d+)\.(\d+):(\d+)\):\s?",
    )
    .expect("valid regex")
});

pub fn parse(line: &str) -> Option<Record> {
    let c = HEAD.captures(line)?;
    let kind = match (c.get(1).or(c.get(2)), c.get(3)) {
        (Some(n), _) => n.as_str().parse().ok()?,
        (None, Some(name)) => TYPE_NAMES.iter().find(|(n, _)| *n == name.as_str())?.1,
        _ => return None,
    };
    let secs: u64 = c[4].parse().ok()?;
    let frac = &c[5];
    let frac_ns: u64 =
        frac.parse::<u64>().ok()? * 10u64.checked_pow(9u32.checked_sub(frac.len() as u32)?)?;
    let serial = c[6].parse().ok()?;
    // auditd's enriched format puts interpreted fields after a GS byte.
    let body = line[c.get(0)?.end()..]
        .split('\x1d')
        .next()
        .unwrap_or("")
        .trim_end();
    let (fields, perms) = fields(body);
    let mut cut = body.len().min(MAX_BODY);
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(Record {
        kind,
        time_ns: secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)?,
        serial,
        body: body[..cut].to_string(),
        fields,
        perms,
    })
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

/// `key=value` pairs (quoted, hex or bare) and SELinux's `{ perms }`.
fn fields(body: &str) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
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
        let mut bytes = if !quoted && STRING_FIELDS.contains(&key) {
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
