//! Decoding of open and clone flags into the names strace would print.

const OPEN_FLAGS: &[(u64, &str)] = &[
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o10000, "O_DSYNC"),
    (0o40000, "O_DIRECT"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o10000000, "O_PATH"),
    (0o20000000, "O_TMPFILE"),
];

/// `O_RDWR|O_NOCTTY|O_CLOEXEC`-style text.
pub fn open_flags(flags: u64) -> String {
    let mut parts = vec![match flags & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    }
    .to_string()];
    let mut rest = flags & !3;
    // O_TMPFILE includes O_DIRECTORY's bit: name it once.
    for &(bit, name) in OPEN_FLAGS.iter().rev() {
        if rest & bit == bit {
            parts.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#o}"));
    }
    parts.join("|")
}

/// Access mode of open flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenAccess {
    pub read: bool,
    pub write: bool,
    pub truncate: bool,
    pub create: bool,
    pub path_only: bool,
}

pub fn open_access(flags: u64) -> OpenAccess {
    let mode = flags & 3;
    let path_only = flags & 0o10000000 != 0;
    OpenAccess {
        read: !path_only && (mode == 0 || mode == 2),
        write: !path_only && (mode == 1 || mode == 2),
        truncate: flags & 0o1000 != 0,
        create: flags & 0o100 != 0,
        path_only,
    }
}

const CLONE_FLAGS: &[(u64, &str)] = &[
    (0x100, "CLONE_VM"),
    (0x200, "CLONE_FS"),
    (0x400, "CLONE_FILES"),
    (0x800, "CLONE_SIGHAND"),
    (0x1000, "CLONE_PIDFD"),
    (0x2000, "CLONE_PTRACE"),
    (0x4000, "CLONE_VFORK"),
    (0x8000, "CLONE_PARENT"),
    (0x10000, "CLONE_THREAD"),
    (0x20000, "CLONE_NEWNS"),
    (0x40000, "CLONE_SYSVSEM"),
    (0x80000, "CLONE_SETTLS"),
    (0x100000, "CLONE_PARENT_SETTID"),
    (0x200000, "CLONE_CHILD_CLEARTID"),
    (0x800000, "CLONE_UNTRACED"),
    (0x1000000, "CLONE_CHILD_SETTID"),
    (0x2000000, "CLONE_NEWCGROUP"),
    (0x4000000, "CLONE_NEWUTS"),
    (0x8000000, "CLONE_NEWIPC"),
    (0x10000000, "CLONE_NEWUSER"),
    (0x20000000, "CLONE_NEWPID"),
    (0x40000000, "CLONE_NEWNET"),
    (0x80000000, "CLONE_IO"),
];

pub const CLONE_THREAD: u64 = 0x10000;
pub const CLONE_NEWUSER: u64 = 0x10000000;

/// `CLONE_VM|CLONE_THREAD|SIGCHLD`-style text (the low byte is the exit signal).
pub fn clone_flags(flags: u64) -> String {
    let mut parts: Vec<String> = CLONE_FLAGS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let known: u64 = CLONE_FLAGS.iter().map(|(b, _)| b).fold(0xff, |a, b| a | b);
    match flags & 0xff {
        0 => {}
        17 => parts.push("SIGCHLD".into()),
        sig => parts.push(format!("signal {sig}")),
    }
    if flags & !known != 0 {
        parts.push(format!("{:#x}", flags & !known));
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

/// Names strace prints that the decoding tables above do not carry.
const OTHER_NAMES: &[(u64, &str)] = &[
    (0, "O_RDONLY"),
    (1, "O_WRONLY"),
    (2, "O_RDWR"),
    (0o100000, "O_LARGEFILE"),
    (0o4010000, "O_SYNC"),
    (0o4000, "O_NDELAY"),
    (0, "PROT_NONE"),
    (1, "PROT_READ"),
    (2, "PROT_WRITE"),
    (4, "PROT_EXEC"),
    (17, "SIGCHLD"),
];

/// Turns flag text as strace prints it (`O_RDWR|O_CLOEXEC`, `CLONE_VM|SIGCHLD`, `0x800`) back
/// into bits. Names it does not know are skipped; None when nothing was recognised.
pub fn parse(text: &str) -> Option<u64> {
    let mut bits = 0;
    let mut any = false;
    for part in text.split('|').map(str::trim) {
        let known = OPEN_FLAGS
            .iter()
            .chain(CLONE_FLAGS)
            .chain(OTHER_NAMES)
            .find(|(_, n)| *n == part)
            .map(|(b, _)| *b);
        let value = known.or_else(|| parse_number(part));
        if let Some(v) = value {
            bits |= v;
            any = true;
        }
    }
    any.then_some(bits)
}

/// `0x1f`, `0755` (octal) or `42`.
pub fn parse_number(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flag_text_back_into_bits() {
        assert_eq!(parse("O_RDWR"), Some(2));
        assert_eq!(
            parse("O_RDWR|O_NOCTTY|O_CLOEXEC"),
            Some(0o2 | 0o400 | 0o2000000)
        );
        assert_eq!(
            parse("CLONE_VM|CLONE_THREAD|SIGCHLD"),
            Some(0x100 | CLONE_THREAD | 17)
        );
        assert_eq!(parse("PROT_READ|PROT_EXEC"), Some(5));
        assert_eq!(parse("O_WRONLY|0x200000"), Some(1 | 0x200000));
        assert_eq!(parse("AT_FDCWD"), None);
    }

    #[test]
    fn open_flags_text() {
        assert_eq!(open_flags(0o2), "O_RDWR");
        assert_eq!(
            open_flags(0o2 | 0o400 | 0o2000000),
            "O_RDWR|O_CLOEXEC|O_NOCTTY"
        );
        assert_eq!(
            open_flags(0o10000000 | 0o2000000),
            "O_RDONLY|O_PATH|O_CLOEXEC"
        );
        let a = open_access(0o2);
        assert!(a.read && a.write && !a.create);
    }

    #[test]
    fn clone_flags_text() {
        assert_eq!(
            clone_flags(0x1200011),
            "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD"
        );
        assert_eq!(clone_flags(0), "0");
    }
}
