//! What `attach` traces: existing processes (and their descendants) or a cgroup's members,
//! found through procfs and cgroupfs.

use anyhow::{bail, Context, Result};
use procfs::process::Process;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// A process alive at attach time.
#[derive(Clone, Debug)]
pub struct Seed {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub comm: String,
    pub exe: Option<String>,
    pub cmdline: Vec<String>,
    /// Its threads, all of which must be tracked.
    pub tids: Vec<u32>,
}

/// A cgroup to attach to.
#[derive(Clone, Debug)]
pub struct CgroupTarget {
    /// The v2 cgroup id (its directory's inode), filtered in the kernel; None on v1.
    pub v2_id: Option<u64>,
    pub seeds: Vec<Seed>,
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// `pid` as it is now, with its threads.
pub fn seed(pid: u32) -> Result<Seed> {
    let p = Process::new(pid as i32).with_context(|| format!("no process {pid}"))?;
    let stat = p
        .stat()
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let tids = p.tasks()?.flatten().map(|t| t.tid as u32).collect();
    Ok(Seed {
        pid,
        ppid: Some(stat.ppid as u32),
        comm: stat.comm,
        exe: p.exe().ok().map(|e| e.display().to_string()),
        cmdline: p.cmdline().unwrap_or_default(),
        tids,
    })
}

/// `pids` and every descendant alive now, parents first.
pub fn pid_tree(pids: &[i64]) -> Result<Vec<Seed>> {
    let mut roots = BTreeSet::new();
    for &pid in pids {
        if pid <= 0 || pid > u32::MAX as i64 {
            bail!("--pid {pid}: not a process id (must be a positive number)");
        }
        let pid = pid as u32;
        if pid == std::process::id() {
            bail!("--pid {pid}: that is diag itself");
        }
        let s = seed(pid).map_err(|_| anyhow::anyhow!("--pid {pid}: no such process"))?;
        if s.exe.is_none() && is_kernel_thread(pid) {
            bail!(
                "--pid {pid}: {} is a kernel thread, which makes no syscalls to diagnose",
                s.comm
            );
        }
        roots.insert(pid);
    }
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for p in procfs::process::all_processes()?.flatten() {
        if let Ok(st) = p.stat() {
            children
                .entry(st.ppid as u32)
                .or_default()
                .push(st.pid as u32);
        }
    }
    let mut order: Vec<u32> = roots.iter().copied().collect();
    let mut i = 0;
    while i < order.len() {
        for &c in children.get(&order[i]).into_iter().flatten() {
            if !order.contains(&c) {
                order.push(c);
            }
        }
        i += 1;
    }
    // A process may exit while we look: keep the ones still there. diag itself (attached to an
    // ancestor) is no part of the tree: tracing itself, it would feed on its own calls.
    Ok(order
        .into_iter()
        .filter(|&p| p != std::process::id())
        .filter_map(|p| seed(p).ok())
        .collect())
}

/// PF_KTHREAD in /proc/PID/stat flags.
fn is_kernel_thread(pid: u32) -> bool {
    Process::new(pid as i32)
        .and_then(|p| p.stat())
        .is_ok_and(|s| s.flags & 0x0020_0000 != 0)
}

pub fn cgroup(path: &Path) -> Result<CgroupTarget> {
    let fs = nix::sys::statfs::statfs(path)
        .with_context(|| format!("--cgroup {}: cannot read", path.display()))?;
    let magic = fs.filesystem_type().0 as i64;
    if !path.is_dir() || (magic != CGROUP2_SUPER_MAGIC && magic != CGROUP_SUPER_MAGIC) {
        bail!("--cgroup {}: not a cgroup directory (expected a directory under a cgroup or cgroup2 mount)", path.display());
    }
    let v2 = magic == CGROUP2_SUPER_MAGIC;
    let seeds = members(path)
        .with_context(|| format!("--cgroup {}: reading cgroup.procs", path.display()))?
        .into_iter()
        .filter_map(|p| seed(p).ok())
        .collect();
    let v2_id = v2
        .then(|| std::fs::metadata(path).map(|m| m.ino()))
        .transpose()?;
    Ok(CgroupTarget { v2_id, seeds })
}

/// The processes of cgroup `dir` (diag itself left out).
fn members(dir: &Path) -> Result<Vec<u32>> {
    Ok(std::fs::read_to_string(dir.join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .filter(|&p| p != std::process::id())
        .collect())
}

/// The processes of cgroup `dir` and of every cgroup below it (a pod's containers). They are traced by pid and followed to their descendants: the kernel filters on one
/// cgroup id, not on a subtree.
pub fn cgroup_tree(dir: &Path) -> Result<Vec<Seed>> {
    let mut pids =
        members(dir).with_context(|| format!("reading {}/cgroup.procs", dir.display()))?;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        // A container that ends meanwhile takes its cgroup with it.
        if d != dir {
            pids.extend(members(&d).into_iter().flatten());
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
    }
    pids.sort_unstable();
    Ok(pids.into_iter().filter_map(|p| seed(p).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_pids_and_finds_descendants() {
        assert!(pid_tree(&[0]).unwrap_err().to_string().contains("positive"));
        assert!(pid_tree(&[-5])
            .unwrap_err()
            .to_string()
            .contains("positive"));
        assert!(pid_tree(&[i32::MAX as i64])
            .unwrap_err()
            .to_string()
            .contains("no such process"));
        let me = std::process::id();
        assert!(pid_tree(&[me as i64])
            .unwrap_err()
            .to_string()
            .contains("diag itself"));
        let mut parent = std::process::Command::new("sh")
            .args(["-c", "sleep 5; :"])
            .spawn()
            .unwrap();
        let root = parent.id();
        let mut seeds = pid_tree(&[root as i64]).unwrap();
        for _ in 0..1000 {
            // The forked child is "sh" until it has exec'd sleep.
            if seeds.iter().any(|s| s.comm == "sleep") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            seeds = pid_tree(&[root as i64]).unwrap();
        }
        parent.kill().unwrap();
        parent.wait().unwrap();
        assert_eq!(seeds[0].pid, root);
        assert!(seeds[0].tids.contains(&root));
        assert!(seeds
            .iter()
            .any(|s| s.comm == "sleep" && s.ppid == Some(root)));
        // diag itself is left out of an ancestor's tree.
        let ancestor = pid_tree(&[std::os::unix::process::parent_id() as i64]).unwrap();
        assert!(ancestor.iter().all(|s| s.pid != me));
    }

    #[test]
    fn a_file_is_not_a_cgroup() {
        let err = cgroup(Path::new("/etc/hostname")).unwrap_err().to_string();
        assert!(err.contains("not a cgroup"), "{err}");
    }
}
