//! The pids controller, on cgroup v1, v2 or hybrid hierarchies.

use crate::model::PidsAtFailure;
use procfs::ProcessCGroups;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidsCgroup {
    /// The cgroup directory holding `pids.max`.
    pub dir: PathBuf,
    pub current: u64,
    /// None = "max".
    pub max: Option<u64>,
    /// The `max` counter of `pids.events`: forks refused so far.
    pub refused: u64,
}

/// The cgroup hierarchies mounted in diag's mount namespace.
#[derive(Clone, Debug, Default)]
pub struct Mounts {
    /// The v1 pids controller.
    pub pids_v1: Option<PathBuf>,
    /// The v2 (unified) hierarchy.
    pub v2: Option<PathBuf>,
    /// How many v1 hierarchies are mounted (any controller).
    pub v1_hierarchies: usize,
}

impl Mounts {
    pub fn read() -> Self {
        let mut found = Mounts::default();
        if let Ok(mi) = procfs::process::Process::myself().and_then(|p| p.mountinfo()) {
            for m in mi.iter() {
                if m.fs_type == "cgroup2" && found.v2.is_none() {
                    found.v2 = Some(m.mount_point.clone());
                }
                if m.fs_type == "cgroup" {
                    found.v1_hierarchies += 1;
                    if m.super_options.contains_key("pids") {
                        found.pids_v1 = Some(m.mount_point.clone());
                    }
                }
            }
        }
        found
    }

    /// `v2`, `v1` or `hybrid` (both), or `none`.
    pub fn layout(&self) -> &'static str {
        match (self.v1_hierarchies > 0, self.v2.is_some()) {
            (true, true) => "hybrid",
            (true, false) => "v1",
            (false, true) => "v2",
            (false, false) => "none",
        }
    }

    /// Whether the v2 hierarchy offers the pids controller.
    pub fn v2_has_pids(&self) -> bool {
        self.v2.as_deref().is_some_and(controllers_include_pids)
    }
}

/// Where the v1 pids controller and the v2 hierarchy are mounted.
pub fn mounts() -> (Option<PathBuf>, Option<PathBuf>) {
    let m = Mounts::read();
    (m.pids_v1, m.v2)
}

/// The nearest cgroup, from the process's own up to the root, whose `pids.max` is set; else its
/// own. Limits are hierarchical: any ancestor can refuse the fork.
pub fn pids_cgroup(cgroups: &ProcessCGroups) -> Option<PidsCgroup> {
    let (v1, v2) = mounts();
    let (mount, rel) = cgroups.0.iter().find_map(|c| {
        if c.controllers.iter().any(|k| k == "pids") {
            v1.clone().map(|m| (m, c.pathname.clone()))
        } else if c.hierarchy == 0 {
            v2.clone()
                .filter(|m| m.join("cgroup.controllers").exists())
                .filter(|m| controllers_include_pids(m))
                .map(|m| (m, c.pathname.clone()))
        } else {
            None
        }
    })?;
    let own = mount.join(rel.trim_start_matches('/'));
    let mut dir = own.clone();
    loop {
        if let Some(pc) = read(&dir).filter(|p| p.max.is_some()) {
            return Some(pc);
        }
        if dir == mount || !dir.pop() {
            return read(&own);
        }
    }
}

fn controllers_include_pids(mount: &Path) -> bool {
    std::fs::read_to_string(mount.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|k| k == "pids"))
}

/// Reads `pids.current`, `pids.max` and `pids.events` in `dir`.
pub fn read(dir: &Path) -> Option<PidsCgroup> {
    let current = std::fs::read_to_string(dir.join("pids.current"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let max_text = std::fs::read_to_string(dir.join("pids.max")).ok()?;
    let max = max_text.trim().parse().ok();
    let refused = std::fs::read_to_string(dir.join("pids.events"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("max ").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0);
    Some(PidsCgroup {
        dir: dir.to_path_buf(),
        current,
        max,
        refused,
    })
}

/// Directories looked at when a cgroup is searched for by id.
const ID_SEARCH_LIMIT: usize = 20_000;

/// The pids cgroup the kernel named at a failure, with its count and limit then. `seen`, the
/// one procfs showed, names its directory when it is the same cgroup or an ancestor of it.
pub fn at_failure(pids: PidsAtFailure, seen: Option<PidsCgroup>) -> Option<PidsCgroup> {
    // The task sits in the root pids cgroup: nothing limits it.
    if pids.cgroup_id == 0 {
        return None;
    }
    let hint = seen.as_ref().map(|s| s.dir.as_path());
    let dir = dir_with_id(pids.cgroup_id, hint);
    let refused = seen
        .filter(|s| Some(&s.dir) == dir.as_ref())
        .map_or(0, |s| s.refused);
    Some(PidsCgroup {
        dir: dir.unwrap_or_else(|| {
            PathBuf::from(format!(
                "(pids cgroup id {}, since removed)",
                pids.cgroup_id
            ))
        }),
        current: pids.current,
        max: pids.limit,
        refused,
    })
}

/// The directory of the pids cgroup whose id (its inode number in the hierarchy that holds the
/// pids controller) is `id`: `hint` and its ancestors within that hierarchy first, else a
/// bounded walk of it.
fn dir_with_id(id: u64, hint: Option<&Path>) -> Option<PathBuf> {
    let (v1, v2) = mounts();
    let root = v1.or(v2.filter(|m| controllers_include_pids(m)))?;
    let dev = std::fs::metadata(&root).ok()?.dev();
    let is_it = |dir: &Path| std::fs::metadata(dir).is_ok_and(|m| m.ino() == id && m.dev() == dev);
    let in_hierarchy = hint
        .into_iter()
        .flat_map(Path::ancestors)
        .take_while(|d| d.starts_with(&root));
    if let Some(found) = in_hierarchy.into_iter().find(|d| is_it(d)) {
        return Some(found.to_path_buf());
    }
    let mut queue = std::collections::VecDeque::from([root]);
    for _ in 0..ID_SEARCH_LIMIT {
        let dir = queue.pop_front()?;
        if is_it(&dir) {
            return Some(dir);
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            queue.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    None
}

/// Is `path` a cgroup directory (v1 or v2)?
pub fn is_cgroup_dir(path: &Path) -> bool {
    path.is_dir() && (path.join("cgroup.procs").is_file() || path.join("tasks").is_file())
}
