//! Writing report files: created 0600, never through a symlink, `-` meaning stdout.

use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `content` to `path` (or stdout for `-`).
pub fn write_output(path: &Path, content: &str) -> Result<()> {
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(content.as_bytes())?;
        return Ok(out.flush()?);
    }
    write_file(path, content, std::fs::OpenOptions::new().truncate(true))
}

/// Appends `content` to `path` (a CI step summary the runner created, or a new 0600 file).
pub fn append_output(path: &Path, content: &str) -> Result<()> {
    write_file(path, content, std::fs::OpenOptions::new().append(true))
}

fn write_file(path: &Path, content: &str, how: &mut std::fs::OpenOptions) -> Result<()> {
    let mut f = how
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(content.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Checks up front that a report can be written there, so a bad path fails before the trace.
pub fn check_writable(path: &Path) -> Result<()> {
    if path == Path::new("-") {
        return Ok(());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        anyhow::bail!(
            "cannot write {}: directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        anyhow::bail!("cannot write {}: it is a directory", path.display());
    }
    if path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        anyhow::bail!(
            "cannot write {}: it is a symlink, which diag does not follow",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    struct TempDir(PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn report_files_are_private_and_never_followed_through_a_symlink() {
        let dir = TempDir(std::env::temp_dir().join(format!("diag-write-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let report = dir.0.join("r.json");
        let summary = dir.0.join("summary.md");
        write_output(&report, "{}\n").unwrap();
        append_output(&summary, "a\n").unwrap();
        append_output(&summary, "b\n").unwrap();
        // Under the usual umask 022 a plain create would be 0644.
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&report), 0o600);
        assert_eq!(mode(&summary), 0o600);
        assert_eq!(std::fs::read_to_string(&summary).unwrap(), "a\nb\n");
        let link = dir.0.join("link.json");
        std::os::unix::fs::symlink(&report, &link).unwrap();
        assert!(write_output(&link, "x").is_err());
    }
}
