//! The bench's scratch state: a directory holding the root-owned 0600 secret and a root-only
//! directory, and a cgroup (v2)
//! for the workload's tree. Both are removed on drop, even when the bench fails.

use anyhow::{Context, Result};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct Scratch {
    pub dir: PathBuf,
    pub secret: PathBuf,
    /// A root-owned 0700 directory: every path in it is denied to the workload.
    pub locked: PathBuf,
    pub cgroup: PathBuf,
}

impl Scratch {
    pub fn new() -> Result<Self> {
        let tag = format!("diag-bench-{}", std::process::id());
        let dir = std::env::temp_dir().join(&tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // The dropped-privilege workload must reach the secret, and be refused by its mode.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let secret = dir.join("secret");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&secret)?;
        let locked = dir.join("locked");
        std::fs::create_dir(&locked)?;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700))?;
        let cgroup = cgroup2_root()?.join(&tag);
        let scratch = Scratch {
            dir,
            secret,
            locked,
            cgroup,
        };
        std::fs::create_dir(&scratch.cgroup)
            .with_context(|| format!("creating cgroup {}", scratch.cgroup.display()))?;
        Ok(scratch)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

/// Where cgroup v2 is mounted (`/sys/fs/cgroup/unified` on a hybrid host).
fn cgroup2_root() -> Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == "cgroup2")
        .map(|f| Path::new(f[1]).to_path_buf())
        .context("no cgroup v2 hierarchy is mounted: bpftrace needs one to filter on the tree")
}
