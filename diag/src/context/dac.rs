//! The DAC check, made as the failing process would make it: its fsuid, fsgid, groups and
//! capabilities against the file's mode. A stat plus mode check: never a real open.

use super::path::{FileKind, PathFacts};
use super::process::{ProcessContext, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DacVerdict {
    pub allowed: bool,
    /// A measured statement: "/dev/ptmx is crw-rw-rw- root:root, open for uid 0".
    pub why: String,
}

fn class_bits(mode: u32, uid: u32, gid: u32, p: &ProcessContext) -> (u32, &'static str) {
    if p.fsuid == uid {
        ((mode >> 6) & 7, "owner")
    } else if p.fsgid == gid || p.groups.contains(&gid) {
        ((mode >> 3) & 7, "group")
    } else {
        (mode & 7, "other")
    }
}

pub fn check(facts: &PathFacts, access: Access, p: &ProcessContext) -> DacVerdict {
    let who = format!("uid {} gid {}", p.fsuid, p.fsgid);
    for (dir, mode, uid, gid) in &facts.ancestors {
        let (bits, _) = class_bits(*mode, *uid, *gid, p);
        let overridden = p.has_cap(CAP_DAC_OVERRIDE) || p.has_cap(CAP_DAC_READ_SEARCH);
        if bits & 1 == 0 && !overridden {
            return DacVerdict {
                allowed: false,
                why: format!(
                    "{} has mode {:o}: no search permission for {who}",
                    dir.display(),
                    mode
                ),
            };
        }
    }
    // Search permission on the ancestors decides first, even for a file that does not exist.
    if facts.kind == FileKind::Missing {
        return DacVerdict {
            allowed: true,
            why: format!(
                "{} does not exist; its directories are searchable for {who}",
                facts.path.display()
            ),
        };
    }
    let (bits, class) = class_bits(facts.mode, facts.uid, facts.gid, p);
    let is_dir = facts.kind == FileKind::Directory;
    let any_x = facts.mode & 0o111 != 0;
    let override_rw = p.has_cap(CAP_DAC_OVERRIDE);
    let read_ok = bits & 4 != 0 || override_rw || (p.has_cap(CAP_DAC_READ_SEARCH) && !access.write);
    let write_ok = bits & 2 != 0 || override_rw;
    // CAP_DAC_OVERRIDE grants exec only when some x bit is set (or on directories).
    let exec_ok = bits & 1 != 0 || (override_rw && (any_x || is_dir));
    let allowed =
        (!access.read || read_ok) && (!access.write || write_ok) && (!access.exec || exec_ok);
    let wanted: Vec<&str> = [
        (access.read, "read"),
        (access.write, "write"),
        (access.exec, "exec"),
    ]
    .iter()
    .filter(|(w, _)| *w)
    .map(|(_, n)| *n)
    .collect();
    let caps = if override_rw {
        " with CAP_DAC_OVERRIDE"
    } else {
        ""
    };
    DacVerdict {
        allowed,
        why: format!(
            "{} is {} {}:{}; {} for {who}{caps} ({class} class): {}",
            facts.path.display(),
            facts.mode_text(),
            facts.uid,
            facts.gid,
            wanted.join("+"),
            if allowed { "allowed" } else { "refused" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn facts(mode: u32, uid: u32, gid: u32) -> PathFacts {
        PathFacts {
            path: PathBuf::from("/srv/secret"),
            kind: FileKind::Regular,
            mode,
            uid,
            gid,
            resolved: None,
            mount: None,
            ancestors: vec![(PathBuf::from("/srv"), 0o755, 0, 0)],
            view: super::super::path::View::Own,
            file_caps: None,
        }
    }

    fn user(uid: u32, caps: u64) -> ProcessContext {
        ProcessContext {
            fsuid: uid,
            fsgid: uid,
            cap_effective: caps,
            ..Default::default()
        }
    }

    #[test]
    fn owner_only_file_refuses_other_users_and_allows_root() {
        let f = facts(0o600, 0, 0);
        let rd = Access {
            read: true,
            ..Default::default()
        };
        let v = check(&f, rd, &user(1000, 0));
        assert!(!v.allowed, "{}", v.why);
        assert!(v.why.contains("-rw-------"), "{}", v.why);
        assert!(check(&f, rd, &user(0, 1 << CAP_DAC_OVERRIDE)).allowed);
        // root without CAP_DAC_OVERRIDE is an ordinary "other".
        assert!(!check(&facts(0o600, 5, 5), rd, &user(0, 0)).allowed);
    }

    #[test]
    fn exec_needs_an_x_bit_even_for_root() {
        let f = facts(0o644, 0, 0);
        let x = Access {
            exec: true,
            ..Default::default()
        };
        assert!(!check(&f, x, &user(0, 1 << CAP_DAC_OVERRIDE)).allowed);
        assert!(check(&facts(0o744, 1, 1), x, &user(0, 1 << CAP_DAC_OVERRIDE)).allowed);
    }

    #[test]
    fn a_missing_file_under_an_unsearchable_directory_is_refused() {
        let mut f = facts(0, 0, 0);
        f.kind = FileKind::Missing;
        f.ancestors = vec![(PathBuf::from("/root"), 0o700, 0, 0)];
        let v = check(
            &f,
            Access {
                read: true,
                ..Default::default()
            },
            &user(65534, 0),
        );
        assert!(!v.allowed && v.why.contains("/root"), "{}", v.why);
    }

    #[test]
    fn ancestor_search_permission() {
        let mut f = facts(0o644, 1000, 1000);
        f.ancestors = vec![(PathBuf::from("/srv"), 0o700, 0, 0)];
        let v = check(
            &f,
            Access {
                read: true,
                ..Default::default()
            },
            &user(1000, 0),
        );
        assert!(!v.allowed && v.why.contains("search"), "{}", v.why);
        // A PATH search through /root as nobody: the file is not there, the directory refuses.
        f.kind = FileKind::Missing;
        let v = check(
            &f,
            Access {
                exec: true,
                ..Default::default()
            },
            &user(65534, 0),
        );
        assert!(
            !v.allowed && v.why.contains("/srv has mode 700"),
            "{}",
            v.why
        );
    }
}
