//! Errno names and the `--errno` selection.

use super::errno_table::ERRNO_NAMES;

/// The default watched set (design.md §1). ENOENT is added only for paths under /dev/.
pub const DEFAULT_ERRNOS: &[&str] = &["EACCES", "EPERM", "EAGAIN", "EROFS", "ENOSYS"];

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
    /// Also ENOENT, but only on paths under /dev/.
    pub dev_enoent: bool,
}

impl ErrnoSelection {
    pub fn contains(&self, errno: i32) -> bool {
        self.errnos.contains(&errno)
    }

    /// Whether a failure with this errno and path is watched.
    pub fn watches(&self, errno: i32, path: Option<&[u8]>) -> bool {
        self.contains(errno)
            || (self.dev_enoent
                && errno == libc::ENOENT
                && path.is_some_and(|p| p.starts_with(b"/dev/")))
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
    let mut dev_enoent = false;
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "all" => errnos.extend(
                (1..ERRNO_NAMES.len())
                    .filter(|&e| !ERRNO_NAMES[e].is_empty())
                    .map(|e| e as i32),
            ),
            "default" => {
                errnos.extend(DEFAULT_ERRNOS.iter().filter_map(|n| number(n)));
                dev_enoent = true;
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
    Ok(ErrnoSelection { errnos, dev_enoent })
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
    fn default_selection_watches_dev_enoent_only() {
        let s = ErrnoSelection::default();
        assert!(s.watches(libc::EACCES, None));
        assert!(s.watches(libc::ENOENT, Some(b"/dev/ptmx")));
        assert!(!s.watches(libc::ENOENT, Some(b"/etc/ld.so.preload")));
        assert!(!s.watches(libc::EBADF, None));
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
