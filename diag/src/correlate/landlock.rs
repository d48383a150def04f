//! Landlock domains built in the traced tree, from the traced `landlock_*` syscalls.

use crate::model::{LandlockCall, LandlockOp, Text};
use std::collections::HashMap;

/// Filesystem access rights, in bit order (Landlock ABI 1-5).
pub const FS_ACCESS: &[&str] = &[
    "execute",
    "write_file",
    "read_file",
    "read_dir",
    "remove_dir",
    "remove_file",
    "make_char",
    "make_dir",
    "make_reg",
    "make_sock",
    "make_fifo",
    "make_block",
    "make_sym",
    "refer",
    "truncate",
    "ioctl_dev",
];

pub const EXECUTE: u64 = 1 << 0;
pub const WRITE_FILE: u64 = 1 << 1;
pub const READ_FILE: u64 = 1 << 2;
pub const READ_DIR: u64 = 1 << 3;
pub const REMOVE_DIR: u64 = 1 << 4;
pub const REMOVE_FILE: u64 = 1 << 5;
pub const MAKE_CHAR: u64 = 1 << 6;
pub const MAKE_DIR: u64 = 1 << 7;
pub const MAKE_REG: u64 = 1 << 8;
pub const MAKE_SOCK: u64 = 1 << 9;
pub const MAKE_FIFO: u64 = 1 << 10;
pub const MAKE_BLOCK: u64 = 1 << 11;
pub const MAKE_SYM: u64 = 1 << 12;
pub const REFER: u64 = 1 << 13;
pub const TRUNCATE: u64 = 1 << 14;

pub fn access_names(bits: u64) -> Vec<String> {
    FS_ACCESS
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

#[derive(Clone, Debug)]
pub struct PathRule {
    /// The path the rule's fd was opened with; None when it could not be named.
    pub path: Option<Text>,
    pub parent_fd: i32,
    pub allowed: u64,
}

#[derive(Clone, Debug)]
pub struct Domain {
    /// 1-based, in creation order.
    pub id: usize,
    pub created_by: u32,
    pub creator_comm: Text,
    pub handled_fs: u64,
    pub rules: Vec<PathRule>,
    /// Processes known to run in it (the creator and its descendants).
    pub processes: Vec<u32>,
}

#[derive(Clone, Debug, Default)]
struct Ruleset {
    handled_fs: u64,
    rules: Vec<PathRule>,
}

#[derive(Debug, Default)]
pub struct LandlockTracker {
    fd_paths: HashMap<(u32, i32), Text>,
    rulesets: HashMap<(u32, i32), Ruleset>,
    pub domains: Vec<Domain>,
    /// Domain stack (ids) of each process.
    stacks: HashMap<u32, Vec<usize>>,
}

impl LandlockTracker {
    pub fn fd_opened(&mut self, pid: u32, fd: i32, path: Text) {
        self.fd_paths.insert((pid, fd), path);
    }

    /// `resolve_fd` names an fd the tracker did not see opened (a live readlink, racy).
    pub fn call(&mut self, call: &LandlockCall, resolve_fd: &dyn Fn(u32, i32) -> Option<Text>) {
        let pid = call.origin.pid;
        match call.op {
            LandlockOp::CreateRuleset { fd, handled_fs, .. } => {
                self.fd_paths.remove(&(pid, fd));
                self.rulesets.insert(
                    (pid, fd),
                    Ruleset {
                        handled_fs,
                        rules: vec![],
                    },
                );
            }
            LandlockOp::AddPathRule {
                ruleset_fd,
                parent_fd,
                allowed,
            } => {
                let path = self
                    .fd_paths
                    .get(&(pid, parent_fd))
                    .cloned()
                    .or_else(|| resolve_fd(pid, parent_fd));
                let rs = self.rulesets.entry((pid, ruleset_fd)).or_default();
                rs.rules.push(PathRule {
                    path,
                    parent_fd,
                    allowed,
                });
            }
            LandlockOp::AddNetRule { .. } => {}
            LandlockOp::RestrictSelf { ruleset_fd, .. } => {
                let rs = self
                    .rulesets
                    .get(&(pid, ruleset_fd))
                    .cloned()
                    .unwrap_or_default();
                let id = self.domains.len() + 1;
                self.domains.push(Domain {
                    id,
                    created_by: pid,
                    creator_comm: call.origin.comm.clone(),
                    handled_fs: rs.handled_fs,
                    rules: rs.rules,
                    processes: vec![pid],
                });
                self.stacks.entry(pid).or_default().push(id);
            }
        }
    }

    /// A new process inherits its parent's domains (and, fds being copied, its fd names).
    /// Whether `pid` is known to be in a Landlock domain.
    pub fn has_domains(&self, pid: u32) -> bool {
        self.stacks.contains_key(&pid)
    }

    pub fn fork(&mut self, parent: u32, child: u32) {
        if let Some(stack) = self.stacks.get(&parent).cloned() {
            for &id in &stack {
                self.domains[id - 1].processes.push(child);
            }
            self.stacks.insert(child, stack);
        }
    }

    /// Forgets the domain stacks of processes no longer in the table; a domain's process list
    /// keeps its first members only.
    pub fn retain_processes(&mut self, keep: impl Fn(u32) -> bool) {
        self.stacks.retain(|&pid, _| keep(pid));
        for d in &mut self.domains {
            d.processes.retain(|&pid| keep(pid));
        }
    }

    /// The domains `pid` runs in, innermost last.
    pub fn domains_of(&self, pid: u32) -> Vec<&Domain> {
        self.stacks
            .get(&pid)
            .map(|s| s.iter().map(|&id| &self.domains[id - 1]).collect())
            .unwrap_or_default()
    }
}

impl Domain {
    /// Rights in `needed` that this domain handles and no rule grants for `path` (a resolved,
    /// absolute path). Landlock grants by file hierarchy: a rule on a directory covers what is
    /// beneath it.
    pub fn missing_rights(&self, path: &std::path::Path, needed: u64) -> u64 {
        let granted = self
            .rules
            .iter()
            .filter(|r| {
                r.path
                    .as_ref()
                    .is_some_and(|p| path.starts_with(std::path::Path::new(&p.lossy())))
            })
            .fold(0, |acc, r| acc | r.allowed);
        needed & self.handled_fs & !granted
    }

    /// "rw /tmp,/dev/null; ro /usr,..." style summary of the grants.
    pub fn grants_summary(&self) -> String {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for r in &self.rules {
            let label = rights_label(r.allowed, self.handled_fs);
            let path = r
                .path
                .as_ref()
                .map_or_else(|| format!("fd {}", r.parent_fd), |p| p.escaped());
            match groups.iter_mut().find(|(l, _)| *l == label) {
                Some((_, paths)) => paths.push(path),
                None => groups.push((label, vec![path])),
            }
        }
        groups
            .iter()
            .map(|(l, p)| format!("{l} {}", p.join(",")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// "rw" when a rule grants reading and writing (a rule on a file carries only the file rights),
/// "ro" for read/execute only, else the names.
fn rights_label(allowed: u64, handled: u64) -> String {
    let file_rights = handled & (EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | (1 << 15));
    if allowed & handled == handled
        || (allowed & file_rights == file_rights && allowed & WRITE_FILE != 0)
    {
        "rw".into()
    } else if allowed & !(EXECUTE | READ_FILE | READ_DIR) == 0 {
        "ro".into()
    } else {
        access_names(allowed).join("+")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Origin;

    fn call(pid: u32, op: LandlockOp) -> LandlockCall {
        LandlockCall {
            origin: Origin {
                pid,
                tid: pid,
                ..Default::default()
            },
            op,
        }
    }

    #[test]
    fn builds_a_domain_from_traced_calls_and_finds_the_missing_grant() {
        let all = (1u64 << 16) - 1;
        let ro = EXECUTE | READ_FILE | READ_DIR;
        let mut t = LandlockTracker::default();
        let none = |_: u32, _: i32| None;
        t.call(
            &call(
                10,
                LandlockOp::CreateRuleset {
                    fd: 3,
                    handled_fs: all,
                    handled_net: 0,
                    scoped: 0,
                },
            ),
            &none,
        );
        t.fd_opened(10, 4, Text::from("/tmp"));
        t.call(
            &call(
                10,
                LandlockOp::AddPathRule {
                    ruleset_fd: 3,
                    parent_fd: 4,
                    allowed: all,
                },
            ),
            &none,
        );
        t.fd_opened(10, 4, Text::from("/usr"));
        t.call(
            &call(
                10,
                LandlockOp::AddPathRule {
                    ruleset_fd: 3,
                    parent_fd: 4,
                    allowed: ro,
                },
            ),
            &none,
        );
        t.fd_opened(10, 4, Text::from("/dev/null"));
        t.call(
            &call(
                10,
                LandlockOp::AddPathRule {
                    ruleset_fd: 3,
                    parent_fd: 4,
                    allowed: all,
                },
            ),
            &none,
        );
        t.call(
            &call(
                10,
                LandlockOp::RestrictSelf {
                    ruleset_fd: 3,
                    flags: 0,
                },
            ),
            &none,
        );
        t.fork(10, 11);
        t.fork(11, 12);
        let d = t.domains_of(12);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].processes, vec![10, 11, 12]);
        assert_eq!(d[0].grants_summary(), "rw /tmp,/dev/null; ro /usr");
        let path = std::path::Path::new("/dev/ptmx");
        assert_eq!(
            d[0].missing_rights(path, READ_FILE | WRITE_FILE),
            READ_FILE | WRITE_FILE
        );
        assert_eq!(
            d[0].missing_rights(std::path::Path::new("/tmp/x"), WRITE_FILE),
            0
        );
        assert_eq!(
            d[0].missing_rights(std::path::Path::new("/usr/bin/tmux"), WRITE_FILE),
            WRITE_FILE
        );
        // /dev/nullx is not beneath /dev/null.
        assert_eq!(
            d[0].missing_rights(std::path::Path::new("/dev/nullx"), READ_FILE),
            READ_FILE
        );
        assert!(t.domains_of(99).is_empty());
    }
}
