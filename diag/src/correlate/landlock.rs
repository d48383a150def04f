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
    /// The ruleset's handled rights and rules as they were at `landlock_restrict_self` (the
    /// kernel copies them then), wherever the ruleset was built.
    pub handled_fs: u64,
    pub rules: Vec<PathRule>,
    /// The ruleset was not seen being built (built before tracing started, or reached through an
    /// fd diag could not follow): its rules are unknown and rule nothing out.
    pub rules_unknown: bool,
    /// Processes known to run in it (the creator and its descendants).
    pub processes: Vec<u32>,
    /// The fd the creator restricted itself with, while that fd is not yet known: a process's
    /// own calls can be seen before the fork that gave it its parent's fds.
    awaiting_fd: Option<i32>,
}

/// A ruleset: a kernel object reached through fds, whoever holds them.
#[derive(Clone, Debug, Default)]
struct Ruleset {
    handled_fs: u64,
    rules: Vec<PathRule>,
    /// Created before tracing started: rules were added that diag did not see.
    unknown: bool,
}

/// An fd that refers to a ruleset.
#[derive(Clone, Copy, Debug)]
struct RulesetFd {
    ruleset: usize,
    cloexec: bool,
}

#[derive(Debug, Default)]
pub struct LandlockTracker {
    fd_paths: HashMap<(u32, i32), Text>,
    rulesets: Vec<Ruleset>,
    /// Each process's fds that refer to rulesets.
    ruleset_fds: HashMap<u32, HashMap<i32, RulesetFd>>,
    pub domains: Vec<Domain>,
    /// Domain stack (ids) of each process.
    stacks: HashMap<u32, Vec<usize>>,
}

impl LandlockTracker {
    pub fn fd_opened(&mut self, pid: u32, fd: i32, path: Text) {
        self.fd_paths.insert((pid, fd), path);
        self.fd_closed(pid, fd);
    }

    /// `resolve_fd` names an fd the tracker did not see opened (a live readlink, racy).
    pub fn call(&mut self, call: &LandlockCall, resolve_fd: &dyn Fn(u32, i32) -> Option<Text>) {
        let pid = call.origin.pid;
        match call.op {
            LandlockOp::CreateRuleset { fd, handled_fs, .. } => {
                self.fd_paths.remove(&(pid, fd));
                let ruleset = Ruleset {
                    handled_fs,
                    ..Ruleset::default()
                };
                // landlock_create_ruleset returns an O_CLOEXEC fd.
                self.add_ruleset(pid, fd, ruleset, true);
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
                let ruleset = self.ruleset_at(pid, ruleset_fd).unwrap_or_else(|| {
                    // A ruleset created before tracing started: its earlier rules are unknown.
                    let unknown = Ruleset {
                        unknown: true,
                        ..Ruleset::default()
                    };
                    self.add_ruleset(pid, ruleset_fd, unknown, false)
                });
                self.rulesets[ruleset].rules.push(PathRule {
                    path,
                    parent_fd,
                    allowed,
                });
            }
            LandlockOp::AddNetRule { .. } => {}
            LandlockOp::RestrictSelf { ruleset_fd, .. } => {
                let id = self.domains.len() + 1;
                let mut d = Domain {
                    id,
                    created_by: pid,
                    creator_comm: call.origin.comm.clone(),
                    handled_fs: 0,
                    rules: vec![],
                    rules_unknown: true,
                    processes: vec![pid],
                    awaiting_fd: Some(ruleset_fd),
                };
                if let Some(rs) = self.ruleset_at(pid, ruleset_fd) {
                    d.fill_from(&self.rulesets[rs]);
                }
                self.domains.push(d);
                self.stacks.entry(pid).or_default().push(id);
            }
        }
    }

    /// Records `ruleset`, reached by `pid` through `fd`; returns its index.
    fn add_ruleset(&mut self, pid: u32, fd: i32, ruleset: Ruleset, cloexec: bool) -> usize {
        self.rulesets.push(ruleset);
        let ruleset = self.rulesets.len() - 1;
        self.ruleset_fds
            .entry(pid)
            .or_default()
            .insert(fd, RulesetFd { ruleset, cloexec });
        ruleset
    }

    fn ruleset_at(&self, pid: u32, fd: i32) -> Option<usize> {
        Some(self.ruleset_fds.get(&pid)?.get(&fd)?.ruleset)
    }

    /// `new` refers to what `old` does (dup, dup2, dup3, fcntl F_DUPFD*); a dup over a ruleset
    /// fd closes it first.
    pub fn fd_dup(&mut self, pid: u32, old: i32, new: i32, cloexec: bool) {
        let Some(fds) = self.ruleset_fds.get_mut(&pid) else {
            return;
        };
        match fds.get(&old).copied() {
            Some(rs) => fds.insert(new, RulesetFd { cloexec, ..rs }),
            None => fds.remove(&new),
        };
    }

    pub fn fd_closed(&mut self, pid: u32, fd: i32) {
        if let Some(fds) = self.ruleset_fds.get_mut(&pid) {
            fds.remove(&fd);
        }
    }

    /// Close-on-exec ruleset fds are gone after exec (the fds path rules name too).
    pub fn exec(&mut self, pid: u32) {
        if let Some(fds) = self.ruleset_fds.get_mut(&pid) {
            fds.retain(|_, f| !f.cloexec);
        }
        self.fd_paths.retain(|&(p, _), _| p != pid);
    }

    /// A new process inherits its parent's domains and, its fd table being a copy, its ruleset
    /// fds. The child's own calls may have been seen first: what it did since comes on top, and
    /// a domain it created with an fd not known then is completed from its parent's fds.
    pub fn fork(&mut self, parent: u32, child: u32) {
        if let Some(fds) = self.ruleset_fds.get(&parent).cloned() {
            let own = self.ruleset_fds.entry(child).or_default();
            for (fd, rs) in fds {
                own.entry(fd).or_insert(rs);
            }
        }
        let own_stack = self.stacks.remove(&child).unwrap_or_default();
        for &id in &own_stack {
            let d = &self.domains[id - 1];
            if d.created_by != child {
                continue;
            }
            let found = d.awaiting_fd.and_then(|fd| self.ruleset_at(parent, fd));
            if let Some(rs) = found {
                let rs = self.rulesets[rs].clone();
                self.domains[id - 1].fill_from(&rs);
            }
        }
        let mut stack = self.stacks.get(&parent).cloned().unwrap_or_default();
        for &id in &stack {
            self.domains[id - 1].processes.push(child);
        }
        for id in own_stack {
            if !stack.contains(&id) {
                stack.push(id);
            }
        }
        if !stack.is_empty() {
            self.stacks.insert(child, stack);
        }
    }

    /// Forgets the domain stacks and fds of processes no longer in the table; a domain's process
    /// list keeps its first members only.
    pub fn retain_processes(&mut self, keep: impl Fn(u32) -> bool) {
        self.stacks.retain(|&pid, _| keep(pid));
        self.ruleset_fds.retain(|&pid, _| keep(pid));
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
    fn fill_from(&mut self, rs: &Ruleset) {
        self.handled_fs = rs.handled_fs;
        self.rules = rs.rules.clone();
        self.rules_unknown = rs.unknown;
        self.awaiting_fd = None;
    }

    /// Rights in `needed` that this domain handles and no rule grants for `path` (a resolved,
    /// absolute path); none when its rules are unknown. Landlock grants by file hierarchy: a
    /// rule on a directory covers what is beneath it.
    pub fn missing_rights(&self, path: &std::path::Path, needed: u64) -> u64 {
        if self.rules_unknown {
            return 0;
        }
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

    /// A ruleset built by `pid` with one rw rule on `path`, at fd 3.
    fn build(t: &mut LandlockTracker, pid: u32, path: &str) {
        let none = |_: u32, _: i32| None;
        let all = (1u64 << 14) - 1;
        let create = LandlockOp::CreateRuleset {
            fd: 3,
            handled_fs: all,
            handled_net: 0,
            scoped: 0,
        };
        t.call(&call(pid, create), &none);
        t.fd_opened(pid, 4, Text::from(path));
        let rule = LandlockOp::AddPathRule {
            ruleset_fd: 3,
            parent_fd: 4,
            allowed: all,
        };
        t.call(&call(pid, rule), &none);
    }

    fn restrict(t: &mut LandlockTracker, pid: u32, fd: i32) {
        let op = LandlockOp::RestrictSelf {
            ruleset_fd: fd,
            flags: 0,
        };
        t.call(&call(pid, op), &|_: u32, _: i32| None);
    }

    fn denies(t: &LandlockTracker, pid: u32, path: &str) -> bool {
        t.domains_of(pid)
            .iter()
            .any(|d| d.missing_rights(std::path::Path::new(path), READ_FILE) != 0)
    }

    #[test]
    fn a_ruleset_built_in_the_parent_confines_the_child_that_restricts_itself_with_it() {
        // The supervisor's shape: the parent builds, a forked child calls restrict_self.
        let mut t = LandlockTracker::default();
        build(&mut t, 10, "/tmp");
        t.fork(10, 11);
        restrict(&mut t, 11, 3);
        assert!(t.domains_of(10).is_empty(), "the builder is not confined");
        let d = t.domains_of(11);
        assert_eq!((d.len(), d[0].rules_unknown), (1, false));
        assert_eq!(d[0].grants_summary(), "rw /tmp");
        assert!(denies(&t, 11, "/dev/ptmx") && !denies(&t, 11, "/tmp/x"));

        // The same when the child's restrict_self is seen before the fork that gave it the fd.
        let mut t = LandlockTracker::default();
        build(&mut t, 10, "/tmp");
        restrict(&mut t, 11, 3);
        assert!(t.domains_of(11)[0].rules_unknown);
        t.fork(10, 11);
        assert!(!t.domains_of(11)[0].rules_unknown);
        assert!(denies(&t, 11, "/dev/ptmx"));
    }

    #[test]
    fn ruleset_fds_follow_dup_close_and_exec() {
        let mut t = LandlockTracker::default();
        build(&mut t, 10, "/tmp");
        t.fd_dup(10, 3, 7, false);
        t.fd_closed(10, 3);
        t.exec(10);
        // fd 3 was closed; fd 7, a dup without CLOEXEC, survived the exec.
        restrict(&mut t, 10, 7);
        assert!(!t.domains_of(10)[0].rules_unknown);

        let mut t = LandlockTracker::default();
        build(&mut t, 10, "/tmp");
        t.exec(10);
        // The ruleset's own fd is O_CLOEXEC: after exec, fd 3 is not it.
        restrict(&mut t, 10, 3);
        let d = t.domains_of(10);
        assert!(d[0].rules_unknown && !denies(&t, 10, "/dev/ptmx"));
    }

    #[test]
    fn nested_domains_intersect_and_unknown_rules_rule_nothing_out() {
        let mut t = LandlockTracker::default();
        build(&mut t, 10, "/tmp");
        restrict(&mut t, 10, 3);
        t.fork(10, 11);
        build(&mut t, 11, "/dev");
        restrict(&mut t, 11, 3);
        assert_eq!(t.domains_of(11).len(), 2);
        // Each path is granted by one domain and refused by the other: both are refused.
        assert!(denies(&t, 11, "/dev/ptmx") && denies(&t, 11, "/tmp/x"));
        assert!(denies(&t, 10, "/dev/ptmx") && !denies(&t, 10, "/tmp/x"));

        // A ruleset diag did not see built (attach after the fact): restricting with it gives a
        // domain with unknown rules, which never says a right is missing.
        let mut t = LandlockTracker::default();
        restrict(&mut t, 20, 5);
        let d = t.domains_of(20);
        assert!(d[0].rules_unknown);
        assert_eq!(
            d[0].missing_rights(std::path::Path::new("/dev/ptmx"), READ_FILE),
            0
        );
    }
}
