//! Running the workload as another user: uid, gid, supplementary groups and the user's
//! environment (HOME, USER, LOGNAME, SHELL), resolved in the parent and applied in the child.

use anyhow::{bail, Context, Result};
use nix::unistd::{Gid, Group, Uid, User};
use std::ffi::CString;

#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    pub home: String,
    pub shell: String,
    c_name: CString,
}

impl Identity {
    /// `user` (name or uid) and optional `group` (name or gid); `None` when neither is set.
    pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<Self>> {
        let Some(user) = user else {
            if group.is_some() {
                bail!("run_as_group needs run_as_user");
            }
            return Ok(None);
        };
        let u = match user.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid))?,
            Err(_) => User::from_name(user)?,
        }
        .with_context(|| format!("no such user '{user}'"))?;
        let gid = match group {
            None => u.gid,
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => Gid::from_raw(gid),
                Err(_) => {
                    Group::from_name(g)?
                        .with_context(|| format!("no such group '{g}'"))?
                        .gid
                }
            },
        };
        Ok(Some(Identity {
            c_name: CString::new(u.name.clone())?,
            name: u.name,
            uid: u.uid,
            gid,
            home: u.dir.display().to_string(),
            shell: u.shell.display().to_string(),
        }))
    }

    /// Drops to this identity (in the child, before exec).
    pub fn become_(&self) -> Result<()> {
        nix::unistd::initgroups(&self.c_name, self.gid).context("initgroups")?;
        nix::unistd::setgid(self.gid).context("setgid")?;
        nix::unistd::setuid(self.uid).context("setuid")?;
        // The child is single-threaded between fork and exec, so changing its environment is safe.
        std::env::set_var("HOME", &self.home);
        std::env::set_var("USER", &self.name);
        std::env::set_var("LOGNAME", &self.name);
        std::env::set_var("SHELL", &self.shell);
        Ok(())
    }
}
