//! A path as the failing process sees it: through `/proc/PID/root`, in its mount namespace.

use super::filecaps::FileCaps;
use crate::model::FileAtFailure;
use anyhow::{Context, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    CharDevice,
    BlockDevice,
    Symlink(String),
    Fifo,
    Socket,
    Missing,
}

#[derive(Clone, Debug)]
pub struct PathFacts {
    /// The path as the process named it (made absolute against its cwd).
    pub path: PathBuf,
    pub kind: FileKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Symlinks resolved, in the process's view.
    pub resolved: Option<PathBuf>,
    pub mount: Option<MountFacts>,
    /// Ancestor directories with their mode/uid/gid, outermost first (for search permission).
    pub ancestors: Vec<(PathBuf, u32, u32, u32)>,
    /// Whose view of the filesystem these facts were read in.
    pub view: View,
    /// File capabilities (`security.capability`) of a regular file.
    pub file_caps: Option<FileCaps>,
}

/// Whose mount namespace and root a path was examined in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The failing process's own `/proc/PID/root`.
    Own,
    /// The process had exited: a living relative in the traced tree (forked from the same
    /// ancestors, so it most likely shares the mount namespace).
    Relative(u32),
    /// Nobody left to look through: diag's own view of the host.
    Host,
    /// The file the call's descriptor held, as the kernel saw it at the failure (its mount's
    /// flags, mode and owner; no ancestors, no file capabilities).
    AtFailure,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountFacts {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub read_only: bool,
    pub noexec: bool,
    pub nosuid: bool,
}

impl PathFacts {
    /// `path` as `pid` sees it; when `pid` has exited, as the first living of `relatives` sees it.
    pub fn read(pid: u32, relatives: &[u32], path: &[u8]) -> Result<Self> {
        let raw = Path::new(std::ffi::OsStr::from_bytes_compat(path));
        let alive = |p: u32| Path::new(&format!("/proc/{p}/root")).exists();
        let view = if alive(pid) {
            View::Own
        } else {
            relatives
                .iter()
                .copied()
                .find(|&r| alive(r))
                .map_or(View::Host, View::Relative)
        };
        let proc_dir = match view {
            View::Own => Some(PathBuf::from(format!("/proc/{pid}"))),
            View::Relative(r) => Some(PathBuf::from(format!("/proc/{r}"))),
            View::Host | View::AtFailure => None,
        };
        let root = proc_dir
            .as_ref()
            .map_or_else(|| PathBuf::from("/"), |d| d.join("root"));
        let path = if raw.is_absolute() {
            raw.to_path_buf()
        } else {
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
                .context("relative path, and the process's cwd is gone")?;
            cwd.join(raw)
        };
        let inside = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        let (kind, mode, uid, gid) = match std::fs::symlink_metadata(inside(&path)) {
            Ok(m) => (
                kind_of(&m, &inside(&path)),
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
            ),
            Err(_) => (FileKind::Missing, 0, 0, 0),
        };
        let resolved = resolve_in_root(&root, &path);
        let mounts_path = proc_dir.as_ref().map_or_else(
            || PathBuf::from("/proc/self/mountinfo"),
            |d| d.join("mountinfo"),
        );
        let file_caps = (kind == FileKind::Regular)
            .then(|| super::filecaps::read(&inside(&path)))
            .flatten();
        let mount = std::fs::read_to_string(mounts_path)
            .ok()
            .and_then(|t| mount_for(&t, resolved.as_deref().unwrap_or(&path)));
        let ancestors = path
            .ancestors()
            .skip(1)
            .filter_map(|a| {
                let m = std::fs::metadata(inside(a)).ok()?;
                Some((a.to_path_buf(), m.mode() & 0o7777, m.uid(), m.gid()))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Ok(PathFacts {
            path,
            kind,
            mode,
            uid,
            gid,
            resolved,
            mount,
            ancestors,
            view,
            file_caps,
        })
    }

    /// The file an fd-based call named, from the kernel's facts at the failure. What procfs
    /// showed in the process's own view (`read`) keeps its ancestors and file capabilities, and
    /// names the mount when the kernel's walk could not.
    pub fn at_failure(path: &[u8], file: &FileAtFailure, read: Option<PathFacts>) -> Self {
        let path = PathBuf::from(std::ffi::OsStr::from_bytes_compat(path));
        let own = read.filter(|r| r.view == View::Own);
        let mount_point = file
            .mount_point
            .clone()
            .or_else(|| Some(own.as_ref()?.mount.as_ref()?.mount_point.clone()));
        PathFacts {
            kind: kind_of_mode(file.mode),
            mode: file.mode & 0o7777,
            uid: file.uid,
            gid: file.gid,
            resolved: Some(path.clone()),
            mount: mount_point.map(|mount_point| MountFacts {
                mount_point,
                fs_type: file.fs_type.clone(),
                read_only: file.mount.read_only,
                noexec: file.mount.noexec,
                nosuid: file.mount.nosuid,
            }),
            ancestors: own
                .as_ref()
                .map(|r| r.ancestors.clone())
                .unwrap_or_default(),
            view: View::AtFailure,
            file_caps: own.and_then(|r| r.file_caps),
            path,
        }
    }

    /// The mount holding the path, unless it was read in diag's own view of the host, where it
    /// describes some other namespace's mount (or none of the process's).
    pub fn own_mount(&self) -> Option<&MountFacts> {
        self.mount.as_ref().filter(|_| self.view != View::Host)
    }

    /// The relatives to pass to [`PathFacts::read`] so another path is examined in the same view.
    pub fn view_pids(&self) -> Vec<u32> {
        match self.view {
            View::Relative(r) => vec![r],
            View::Own | View::Host | View::AtFailure => vec![],
        }
    }

    /// `crw-rw-rw-`-style text.
    pub fn mode_text(&self) -> String {
        let t = match self.kind {
            FileKind::Directory => 'd',
            FileKind::CharDevice => 'c',
            FileKind::BlockDevice => 'b',
            FileKind::Symlink(_) => 'l',
            FileKind::Fifo => 'p',
            FileKind::Socket => 's',
            _ => '-',
        };
        let mut s = String::from(t);
        for shift in [6, 3, 0] {
            let bits = (self.mode >> shift) & 7;
            s.push(if bits & 4 != 0 { 'r' } else { '-' });
            s.push(if bits & 2 != 0 { 'w' } else { '-' });
            s.push(if bits & 1 != 0 { 'x' } else { '-' });
        }
        s
    }

    pub fn describe_kind(&self) -> String {
        match &self.kind {
            FileKind::Regular => "a regular file".into(),
            FileKind::Directory => "a directory".into(),
            FileKind::CharDevice => "a character device node".into(),
            FileKind::BlockDevice => "a block device node".into(),
            FileKind::Symlink(t) => format!("a symlink to {t}"),
            FileKind::Fifo => "a FIFO".into(),
            FileKind::Socket => "a socket".into(),
            FileKind::Missing => "missing".into(),
        }
    }
}

trait FromBytesCompat {
    fn from_bytes_compat(b: &[u8]) -> &Self;
}
impl FromBytesCompat for std::ffi::OsStr {
    fn from_bytes_compat(b: &[u8]) -> &Self {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

/// The kind an `st_mode` names (a symlink's target is not known from it).
fn kind_of_mode(mode: u32) -> FileKind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileKind::Directory,
        libc::S_IFCHR => FileKind::CharDevice,
        libc::S_IFBLK => FileKind::BlockDevice,
        libc::S_IFLNK => FileKind::Symlink(String::new()),
        libc::S_IFIFO => FileKind::Fifo,
        libc::S_IFSOCK => FileKind::Socket,
        _ => FileKind::Regular,
    }
}

fn kind_of(m: &std::fs::Metadata, at: &Path) -> FileKind {
    match kind_of_mode(m.mode()) {
        FileKind::Symlink(_) => FileKind::Symlink(
            std::fs::read_link(at)
                .map(|l| l.display().to_string())
                .unwrap_or_default(),
        ),
        kind => kind,
    }
}

/// Resolves symlinks of `path` inside `root`, one component at a time, so absolute link targets
/// stay inside the process's root. Missing trailing components are kept as named.
pub fn resolve_in_root(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::from("/");
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .map(|c| c.as_os_str().to_owned())
        .collect();
    let mut hops = 0;
    while let Some(comp) = pending.pop() {
        match comp.to_str() {
            Some("/") | Some(".") => continue,
            Some("..") => {
                out.pop();
                continue;
            }
            _ => {}
        }
        let candidate = out.join(&comp);
        let inside = root.join(candidate.strip_prefix("/").ok()?);
        match std::fs::read_link(&inside) {
            Ok(target) => {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                pending.extend(target.components().rev().map(|c| c.as_os_str().to_owned()));
            }
            Err(_) => out = candidate,
        }
    }
    Some(out)
}

/// The mount holding `path` in a mountinfo text: the longest matching mount point, last wins.
pub fn mount_for(mountinfo: &str, path: &Path) -> Option<MountFacts> {
    let mut best: Option<MountFacts> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        if fields.len() < sep + 3 || fields.len() < 6 {
            continue;
        }
        let mount_point = PathBuf::from(unescape_octal(fields[4]));
        if !path.starts_with(&mount_point) {
            continue;
        }
        let opts: Vec<&str> = fields[5].split(',').collect();
        let facts = MountFacts {
            fs_type: fields[sep + 1].to_string(),
            read_only: opts.contains(&"ro"),
            noexec: opts.contains(&"noexec"),
            nosuid: opts.contains(&"nosuid"),
            mount_point,
        };
        let longer = best
            .as_ref()
            .is_none_or(|b| facts.mount_point.as_os_str().len() >= b.mount_point.as_os_str().len());
        if longer {
            best = Some(facts);
        }
    }
    best
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push(u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
30 22 0:5 / /dev rw,nosuid - devtmpfs udev rw\n\
31 30 0:25 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw,gid=5,mode=620\n\
40 22 0:40 / /mnt/no\\040exec ro,noexec - tmpfs tmpfs rw\n";

    #[test]
    fn longest_mount_wins() {
        let m = mount_for(MOUNTINFO, Path::new("/dev/pts/3")).unwrap();
        assert_eq!(m.fs_type, "devpts");
        assert!(m.noexec && !m.read_only);
        let m = mount_for(MOUNTINFO, Path::new("/dev/ptmx")).unwrap();
        assert_eq!(m.fs_type, "devtmpfs");
        let m = mount_for(MOUNTINFO, Path::new("/mnt/no exec/x")).unwrap();
        assert!(m.read_only && m.noexec);
        assert_eq!(
            mount_for(MOUNTINFO, Path::new("/etc")).unwrap().fs_type,
            "ext4"
        );
    }

    #[test]
    fn resolves_symlinks_inside_a_root() {
        let dir = std::env::temp_dir().join(format!("diag-resolve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("dev/pts")).unwrap();
        std::os::unix::fs::symlink("pts/ptmx", dir.join("dev/ptmx")).unwrap();
        std::os::unix::fs::symlink("/dev", dir.join("devlink")).unwrap();
        assert_eq!(
            resolve_in_root(&dir, Path::new("/dev/ptmx")).unwrap(),
            Path::new("/dev/pts/ptmx")
        );
        assert_eq!(
            resolve_in_root(&dir, Path::new("/devlink/ptmx")).unwrap(),
            Path::new("/dev/pts/ptmx")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
