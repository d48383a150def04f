//! Running the workload as another user, as sudo does: uid, gid, supplementary groups, an
//! environment built from the user's passwd entry (not root's), and no fd of diag's caller beyond
//! stdin/stdout/stderr. Resolved in the parent, applied in the child.

use anyhow::{bail, Context, Result};
use nix::unistd::{Gid, Group, Uid, User};
use std::ffi::{CString, OsString};

/// The workload's PATH: sudo's `secure_path`, so no directory of root's (`/root/.cargo/bin`) is
/// searched, for the command or by it.
const SECURE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Variables of diag's environment the workload keeps: how the terminal and the locale look,
/// never credentials (sudo keeps these too).
fn kept_by_default(name: &str) -> bool {
    matches!(name, "TERM" | "COLORTERM" | "LANG" | "LANGUAGE" | "TZ") || name.starts_with("LC_")
}

#[derive(Clone, Debug)]
pub struct Identity {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    pub home: String,
    pub shell: String,
    c_name: CString,
    /// The workload's whole environment.
    env: Vec<(OsString, OsString)>,
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
        let home = u.dir.display().to_string();
        let shell = u.shell.display().to_string();
        let mut env: Vec<(OsString, OsString)> = [
            ("HOME", home.as_str()),
            ("USER", &u.name),
            ("LOGNAME", &u.name),
            ("SHELL", &shell),
            ("PATH", SECURE_PATH),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        env.extend(std::env::vars_os().filter(|(k, _)| k.to_str().is_some_and(kept_by_default)));
        Ok(Some(Identity {
            c_name: CString::new(u.name.clone())?,
            name: u.name,
            uid: u.uid,
            gid,
            home,
            shell,
            env,
        }))
    }

    /// Passes these variables of diag's environment on as they are (`--preserve-env`), over the
    /// ones built for the user.
    pub fn preserve_env(&mut self, names: &[String]) {
        for name in names {
            if let Some(value) = std::env::var_os(name) {
                self.env.retain(|(k, _)| k != name.as_str());
                self.env.push((name.into(), value));
            }
        }
    }

    /// Drops to this identity (in the child, before exec): credentials, then the environment
    /// (replaced, so execvp searches the user's PATH), then every fd above 2 is marked
    /// close-on-exec, so nothing diag's caller had open (a root-only file) reaches the workload
    /// while diag's own exec-status pipe still reports a failed exec.
    pub fn become_(&self) -> Result<()> {
        nix::unistd::initgroups(&self.c_name, self.gid).context("initgroups")?;
        nix::unistd::setgid(self.gid).context("setgid")?;
        nix::unistd::setuid(self.uid).context("setuid")?;
        // The child is single-threaded between fork and exec, so changing its environment is safe.
        for (name, _) in std::env::vars_os() {
            std::env::remove_var(name);
        }
        for (name, value) in &self.env {
            std::env::set_var(name, value);
        }
        // SAFETY: a plain syscall; it only sets flags on this process's fds.
        if unsafe { libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) } != 0
        {
            return Err(std::io::Error::last_os_error()).context("close_range");
        }
        Ok(())
    }
}

/// `--preserve-env` names: non-empty, without `=` or NUL.
pub fn parse_env_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(format!(
            "'{}' is not an environment variable name",
            crate::model::text::escape(name)
        ));
    }
    Ok(name.to_string())
}
