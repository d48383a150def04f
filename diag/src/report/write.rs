//! Writing report files as `sudo` would in a directory other users can write to: a new private
//! file (0600, `O_EXCL|O_NOFOLLOW`, random name) beside the target, renamed over it, so nothing
//! another user planted at the target (a FIFO, a symlink, a 0666 file) is opened, read or kept.
//! `-` means stdout.

use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, SFlag};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Who should own the report files once written (CI under sudo: the runner's user).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// `SUDO_UID`/`SUDO_GID`, when both are set and numeric.
    pub fn from_sudo() -> Option<Owner> {
        let id = |var| std::env::var(var).ok()?.parse().ok();
        Some(Owner {
            uid: id("SUDO_UID")?,
            gid: id("SUDO_GID")?,
        })
    }
}

/// Where `-` writes: stdout, or the descriptor `run --report-fd` named.
static REPORT_FD: std::sync::OnceLock<std::os::fd::OwnedFd> = std::sync::OnceLock::new();

/// Sends what would go to stdout to `fd` instead (`run --report-fd`), so it does not mix with
/// the traced command's output. The descriptor is marked close-on-exec: the command does not
/// inherit it.
pub fn send_stdout_to(fd: i32) -> Result<()> {
    use std::os::fd::BorrowedFd;
    if fd <= 2 {
        bail!("--report-fd {fd}: use a descriptor above 2 (e.g. --report-fd 3 3>report.json)");
    }
    // SAFETY: the descriptor is only borrowed to be checked and duplicated (with CLOEXEC).
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)
        .map_err(|e| anyhow::anyhow!("--report-fd {fd}: {}", e.desc()))
        .and_then(|_| Ok(borrowed.try_clone_to_owned()?))?;
    // The original stays open in diag (it is the caller's); mark it too so no child gets it.
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    REPORT_FD
        .set(owned)
        .map_err(|_| anyhow::anyhow!("--report-fd given twice"))
}

/// The writer behind `-`.
pub fn stdout() -> Box<dyn Write> {
    match REPORT_FD.get().and_then(|fd| fd.try_clone().ok()) {
        Some(fd) => Box::new(std::fs::File::from(fd)),
        None => Box::new(std::io::stdout()),
    }
}

/// Writes `content` to `path` (or stdout for `-`), replacing whatever regular file was there.
pub fn write_output(path: &Path, content: &str, owner: Option<Owner>) -> Result<()> {
    if path == Path::new("-") {
        let mut out = stdout();
        out.write_all(content.as_bytes())?;
        return Ok(out.flush()?);
    }
    let shown = path.display();
    refuse_unless_regular_or_absent(path).with_context(|| format!("cannot write {shown}"))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            path.file_name()
                .map_or_else(|| "report".into(), |n| n.to_string_lossy())
        ))
        .tempfile_in(dir_of(path))
        .with_context(|| format!("cannot write {shown}: creating a file beside it"))?;
    tmp.write_all(content.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {shown}"))?;
    if let Some(o) = owner {
        nix::unistd::fchown(
            tmp.as_file().as_raw_fd(),
            Some(o.uid.into()),
            Some(o.gid.into()),
        )
        .with_context(|| format!("giving {shown} to uid {}", o.uid))?;
    }
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {shown}"))?;
    Ok(())
}

/// Appends `content` to `path`: a CI step summary that the runner created. It must be a regular
/// file; a FIFO is refused without blocking on it.
pub fn append_output(path: &Path, content: &str) -> Result<()> {
    let shown = path.display();
    refuse_unless_regular_or_absent(path).with_context(|| format!("cannot write {shown}"))?;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .with_context(|| format!("cannot write {shown}"))?;
    let st = fstat(f.as_raw_fd()).with_context(|| format!("cannot write {shown}"))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        bail!("cannot write {shown}: not a regular file");
    }
    f.write_all(content.as_bytes())
        .with_context(|| format!("writing {shown}"))?;
    Ok(())
}

fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A report replaces a regular file or creates a new one; anything else is someone else's.
fn refuse_unless_regular_or_absent(path: &Path) -> Result<()> {
    let Ok(meta) = path.symlink_metadata() else {
        return Ok(());
    };
    let kind = meta.file_type();
    let what = if kind.is_dir() {
        "it is a directory"
    } else if kind.is_symlink() {
        "it is a symlink, which diag does not follow"
    } else if kind.is_fifo() {
        "it is a FIFO"
    } else if kind.is_socket() {
        "it is a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "it is a device"
    } else {
        return Ok(());
    };
    bail!("{what}")
}

/// Checks up front that a report can be written there, so a bad path fails before the trace.
pub fn check_writable(path: &Path) -> Result<()> {
    if path == Path::new("-") {
        return Ok(());
    }
    let dir = dir_of(path);
    if !dir.is_dir() {
        bail!(
            "cannot write {}: directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    refuse_unless_regular_or_absent(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Whether two paths name the same file: the same inode where the first exists, else the same
/// absolute path once the (existing) parent directories are resolved.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        return (ma.dev(), ma.ino()) == (mb.dev(), mb.ino());
    }
    resolved(a).is_some_and(|ra| resolved(b).is_some_and(|rb| ra == rb))
}

fn resolved(p: &Path) -> Option<PathBuf> {
    Some(dir_of(p).canonicalize().ok()?.join(p.file_name()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn report_files_are_private_new_files_and_never_followed_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("r.json");
        let summary = dir.path().join("summary.md");
        // Another user's world-readable file at the target is replaced, not reused.
        std::fs::write(&report, "old").unwrap();
        std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o666)).unwrap();
        let before = std::fs::metadata(&report).unwrap().ino();
        write_output(&report, "{}\n", None).unwrap();
        append_output(&summary, "a\n").unwrap();
        append_output(&summary, "b\n").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&report), 0o600);
        assert_ne!(std::fs::metadata(&report).unwrap().ino(), before);
        assert_eq!(std::fs::read_to_string(&report).unwrap(), "{}\n");
        assert_eq!(mode(&summary), 0o600);
        assert_eq!(std::fs::read_to_string(&summary).unwrap(), "a\nb\n");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&report, &link).unwrap();
        assert!(write_output(&link, "x", None).is_err());
        assert!(append_output(&link, "x").is_err());
        // Nothing is left behind beside the report.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn a_fifo_at_the_target_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("r.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
        let err = format!("{:#}", write_output(&fifo, "x", None).unwrap_err());
        assert!(err.contains("FIFO"), "{err}");
        assert!(check_writable(&fifo).is_err());
        let err = format!("{:#}", append_output(&fifo, "x").unwrap_err());
        assert!(err.contains("FIFO"), "{err}");
    }

    #[test]
    fn same_file_sees_through_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        std::fs::write(&a, "x").unwrap();
        let dotted = dir.path().join(".").join("a.log");
        assert!(same_file(&a, &dotted));
        let new = dir.path().join("new.json");
        assert!(same_file(&new, &dir.path().join("./new.json")));
        assert!(!same_file(&a, &new));
    }
}
