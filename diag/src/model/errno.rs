//! Errno names and the `--errno` selection.

use super::errno_table::ERRNO_NAMES;

/// The default watched set (design.md §1), plus [`DEV_ERRNOS`] under /dev/ and the
/// [`scoped_errnos`] of each syscall.
pub const DEFAULT_ERRNOS: &[&str] = &["EACCES", "EPERM", "EAGAIN", "EROFS", "ENOSYS"];

/// Watched by default only on paths under /dev/: a missing or absent device is a real cause,
/// a missing file elsewhere mostly a probe.
pub const DEV_ERRNOS: [i32; 3] = [libc::ENOENT, libc::ENXIO, libc::ENODEV];

/// The errnos [`scoped_errnos`] may name, in the order of the kernel's per-syscall bits
/// (`DIAG_SCOPED_ERRNOS`).
pub const SCOPED_ERRNOS: [i32; 5] = [
    libc::ENOENT,
    libc::ENOEXEC,
    libc::ENOSPC,
    libc::EMFILE,
    libc::ENFILE,
];

/// Syscalls that return a new file descriptor: EMFILE/ENFILE there is a descriptor limit.
const FD_CREATORS: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "socket",
    "socketpair",
    "accept",
    "accept4",
    "pipe",
    "pipe2",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "epoll_create",
    "epoll_create1",
    "eventfd",
    "eventfd2",
    "memfd_create",
    "timerfd_create",
    "signalfd",
    "signalfd4",
    "pidfd_open",
    "io_uring_setup",
    "perf_event_open",
    "userfaultfd",
    "inotify_init",
    "inotify_init1",
    "fanotify_init",
];

/// Errnos watched by default for this syscall only, where they name a limit or a file the
/// kernel could not run: exec's ENOENT (a missing interpreter or loader) and ENOEXEC, the
/// namespace and inotify-watch ENOSPC, and descriptor exhaustion.
pub fn scoped_errnos(syscall: &str) -> &'static [i32] {
    match syscall {
        "execve" | "execveat" => &[libc::ENOENT, libc::ENOEXEC],
        "clone" | "clone3" | "unshare" | "inotify_add_watch" | "fanotify_mark" => &[libc::ENOSPC],
        s if FD_CREATORS.contains(&s) => &[libc::EMFILE, libc::ENFILE],
        _ => &[],
    }
}

pub fn name(errno: i32) -> String {
    match ERRNO_NAMES.get(errno as usize) {
        Some(n) if !n.is_empty() => (*n).to_string(),
        _ => format!("E{errno}"),
    }
}

pub fn number(name: &str) -> Option<i32> {
    let name = name.trim().to_ascii_uppercase();
    let alias = match name.as_str() {
        "EWOULDBLOCK" => "EAGAIN",
        "EDEADLOCK" => "EDEADLK",
        "ENOTSUP" => "EOPNOTSUPP",
        other => other,
    };
    ERRNO_NAMES
        .iter()
        .position(|n| *n == alias)
        .map(|i| i as i32)
}

/// The text glibc's `strerror` gives, which programs put in their messages.
pub fn message(errno: i32) -> String {
    // std asks the C library (strerror_r); nix's own table says "Try again" for EAGAIN where
    // glibc says "Resource temporarily unavailable".
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// What `--errno` selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrnoSelection {
    pub errnos: Vec<i32>,
    /// Also [`DEV_ERRNOS`] on paths under /dev/, and each syscall's [`scoped_errnos`].
    pub scoped: bool,
}

impl ErrnoSelection {
    pub fn contains(&self, errno: i32) -> bool {
        self.errnos.contains(&errno)
    }

    /// Whether a failure of this syscall with this errno and path is watched.
    pub fn watches(&self, syscall: &str, errno: i32, path: Option<&[u8]>) -> bool {
        self.contains(errno)
            || (self.scoped
                && (scoped_errnos(syscall).contains(&errno)
                    || (DEV_ERRNOS.contains(&errno)
                        && path.is_some_and(|p| p.starts_with(b"/dev/")))))
    }

    /// Per syscall number, the bits of [`SCOPED_ERRNOS`] watched for it (the kernel's table).
    pub fn scoped_table<const N: usize>(&self) -> [u8; N] {
        let mut table = [0u8; N];
        if !self.scoped {
            return table;
        }
        for nr in super::syscalls::all_numbers().filter(|&n| (n as usize) < N) {
            for e in scoped_errnos(&super::syscalls::name(nr)) {
                if let Some(bit) = SCOPED_ERRNOS.iter().position(|s| s == e) {
                    table[nr as usize] |= 1 << bit;
                }
            }
        }
        table
    }
}

impl Default for ErrnoSelection {
    fn default() -> Self {
        parse_selection("default").expect("default errnos are known")
    }
}

/// Parses `all`, `default` or a comma-separated list of names (`EACCES`) or numbers.
pub fn parse_selection(spec: &str) -> Result<ErrnoSelection, String> {
    let mut errnos = Vec::new();
    let mut scoped = false;
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "all" => errnos.extend(
                (1..ERRNO_NAMES.len())
                    .filter(|&e| !ERRNO_NAMES[e].is_empty())
                    .map(|e| e as i32),
            ),
            "default" => {
                errnos.extend(DEFAULT_ERRNOS.iter().filter_map(|n| number(n)));
                scoped = true;
            }
            _ => {
                let numeric = item.parse::<i32>().ok().filter(|n| (1..4096).contains(n));
                match numeric.or_else(|| number(item)) {
                    Some(e) => errnos.push(e),
                    None => {
                        return Err(format!(
                            "unknown errno '{item}' (use names like EACCES, numbers, 'default' or 'all')"
                        ))
                    }
                }
            }
        }
    }
    if errnos.is_empty() {
        return Err("--errno selects no errno".into());
    }
    errnos.sort_unstable();
    errnos.dedup();
    Ok(ErrnoSelection { errnos, scoped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_the_c_librarys() {
        assert_eq!(message(libc::EAGAIN), "Resource temporarily unavailable");
        assert_eq!(message(libc::EACCES), "Permission denied");
    }

    #[test]
    fn names() {
        assert_eq!(name(13), "EACCES");
        assert_eq!(name(11), "EAGAIN");
        assert_eq!(number("eacces"), Some(13));
        assert_eq!(number("EWOULDBLOCK"), Some(11));
        assert_eq!(message(13), "Permission denied");
    }

    #[test]
    fn default_selection_scopes_enoent_enospc_emfile() {
        let s = ErrnoSelection::default();
        assert!(s.watches("openat", libc::EACCES, None));
        assert!(s.watches("openat", libc::ENOENT, Some(b"/dev/ptmx")));
        assert!(s.watches("openat", libc::ENXIO, Some(b"/dev/net/tun")));
        assert!(!s.watches("openat", libc::ENOENT, Some(b"/etc/ld.so.preload")));
        assert!(s.watches("execve", libc::ENOENT, Some(b"./deps.sh")));
        assert!(s.watches("execve", libc::ENOEXEC, Some(b"./entrypoint.sh")));
        assert!(s.watches("inotify_add_watch", libc::ENOSPC, Some(b"static/f1")));
        assert!(!s.watches("write", libc::ENOSPC, None));
        assert!(s.watches("openat", libc::EMFILE, Some(b"testfiles/1")));
        assert!(s.watches("inotify_init1", libc::EMFILE, None));
        assert!(!s.watches("read", libc::EMFILE, None));
        assert!(!s.watches("openat", libc::EBADF, None));
        let explicit = parse_selection("EACCES").unwrap();
        assert!(!explicit.watches("execve", libc::ENOENT, None));
        let table: [u8; 512] = s.scoped_table();
        let execve = crate::model::syscalls::number("execve").unwrap() as usize;
        assert_eq!(table[execve], 0b11);
        assert_eq!(explicit.scoped_table::<512>()[execve], 0);
    }

    #[test]
    fn parse_rejects_unknown_names() {
        assert!(parse_selection("EACCES,EBOGUS")
            .unwrap_err()
            .contains("EBOGUS"));
        assert_eq!(parse_selection("13,EPERM").unwrap().errnos, vec![1, 13]);
        assert!(parse_selection("all").unwrap().contains(libc::EBADF));
    }
}
