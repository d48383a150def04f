//! What access a failed call needed, in DAC and Landlock terms.

use crate::context::dac::Access;
use crate::correlate::landlock as ll;
use crate::model::{flags, Failure};
use std::path::{Path, PathBuf};

/// The access a call needed on one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needed {
    /// The path the access applies to: the file, or its parent for create/remove.
    pub path: PathBuf,
    pub dac: Access,
    /// Landlock filesystem rights.
    pub landlock: u64,
    /// Human text: "write_file", "execute", ...
    pub what: String,
}

fn parent(p: &Path) -> PathBuf {
    p.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// `path` is the resolved path of the failure (symlinks followed in the process's root);
/// `exists` and `is_dir` describe it.
pub fn needed(f: &Failure, path: &Path, exists: bool, is_dir: bool) -> Option<Needed> {
    let rw = |read: bool, write: bool| Access {
        read,
        write,
        exec: false,
    };
    let on = |p: PathBuf, dac: Access, bits: u64| Needed {
        path: p,
        dac,
        landlock: bits,
        what: ll::access_names(bits).join("+"),
    };
    let name = f.syscall.as_str();
    Some(match name {
        "open" | "openat" | "openat2" | "creat" => {
            let fl = if name == "creat" {
                0o1101
            } else {
                f.flags.unwrap_or(0)
            };
            let a = flags::open_access(fl);
            if a.create && !exists {
                on(
                    parent(path),
                    Access {
                        read: false,
                        write: true,
                        exec: true,
                    },
                    ll::MAKE_REG,
                )
            } else {
                let read_bit = if is_dir { ll::READ_DIR } else { ll::READ_FILE };
                let bits = (if a.read { read_bit } else { 0 })
                    | (if a.write { ll::WRITE_FILE } else { 0 })
                    | (if a.truncate && !is_dir {
                        ll::TRUNCATE
                    } else {
                        0
                    });
                on(path.to_path_buf(), rw(a.read, a.write), bits)
            }
        }
        "execve" | "execveat" => on(
            path.to_path_buf(),
            Access {
                read: false,
                write: false,
                exec: true,
            },
            ll::EXECUTE,
        ),
        "mkdir" | "mkdirat" => on(
            parent(path),
            Access {
                write: true,
                exec: true,
                read: false,
            },
            ll::MAKE_DIR,
        ),
        "unlink" | "unlinkat" if !is_dir => on(
            parent(path),
            Access {
                write: true,
                exec: true,
                read: false,
            },
            ll::REMOVE_FILE,
        ),
        "rmdir" | "unlinkat" => on(
            parent(path),
            Access {
                write: true,
                exec: true,
                read: false,
            },
            ll::REMOVE_DIR,
        ),
        "symlink" | "symlinkat" => on(
            parent(path),
            Access {
                write: true,
                exec: true,
                read: false,
            },
            ll::MAKE_SYM,
        ),
        "mknod" | "mknodat" => on(
            parent(path),
            Access {
                write: true,
                exec: true,
                read: false,
            },
            ll::MAKE_CHAR | ll::MAKE_BLOCK | ll::MAKE_FIFO | ll::MAKE_SOCK,
        ),
        "truncate" => on(path.to_path_buf(), rw(false, true), ll::TRUNCATE),
        "chown" | "lchown" | "fchownat" | "chmod" | "fchmodat" | "fchmodat2" => {
            // Ownership changes are owner-or-capability checks, not mode checks; Landlock does
            // not restrict them.
            on(path.to_path_buf(), Access::default(), 0)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Failure;

    fn fail(syscall: &str, flags: u64) -> Failure {
        Failure {
            syscall: syscall.into(),
            errno: 13,
            flags: Some(flags),
            ..Default::default()
        }
    }

    #[test]
    fn open_rdwr_needs_read_and_write() {
        let n = needed(
            &fail("openat", 0o2 | 0o400),
            Path::new("/dev/ptmx"),
            true,
            false,
        )
        .unwrap();
        assert_eq!(n.landlock, ll::READ_FILE | ll::WRITE_FILE);
        assert_eq!(n.what, "write_file+read_file");
        assert!(n.dac.read && n.dac.write);
    }

    #[test]
    fn creating_a_file_needs_make_reg_on_the_parent() {
        let n = needed(&fail("openat", 0o101), Path::new("/ro/new"), false, false).unwrap();
        assert_eq!(n.path, Path::new("/ro"));
        assert_eq!(n.landlock, ll::MAKE_REG);
    }

    #[test]
    fn exec_needs_execute() {
        let n = needed(&fail("execve", 0), Path::new("/mnt/x"), true, false).unwrap();
        assert_eq!(n.landlock, ll::EXECUTE);
        assert!(n.dac.exec);
    }
}
