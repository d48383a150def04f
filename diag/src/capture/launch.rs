//! Starting the traced command: fork, hold the child on a pipe until tracing is ready, then exec.
//!
//! `std::process::Command::pre_exec` cannot hold a child (spawn blocks until exec), and a child
//! that runs before the maps are ready would miss its first syscalls. The fork happens before diag
//! starts any thread, so the child may allocate before exec.

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

/// Work done in the child between release and exec (sandbox policy, credentials).
pub type PreExec = Box<dyn FnOnce() -> Result<()>>;

/// A forked child blocked before exec.
pub struct HeldChild {
    pub pid: Pid,
    release: std::fs::File,
    exec_status: std::fs::File,
}

/// How the command ended up after release.
pub enum Started {
    Running(Pid),
    /// exec failed: the errno and the reason text.
    ExecFailed {
        pid: Pid,
        errno: i32,
        message: String,
    },
}

/// Forks `argv`, held until [`HeldChild::release`]. `pre_exec` runs in the child after release.
/// `dies_with_diag`: the child gets SIGKILL when diag dies, however it dies (PR_SET_PDEATHSIG).
pub fn spawn_held(argv: &[String], pre_exec: PreExec, dies_with_diag: bool) -> Result<HeldChild> {
    if argv.is_empty() {
        bail!("no command given after --");
    }
    let c_argv: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).context("an argument contains a NUL byte"))
        .collect::<Result<_>>()?;
    let (release_r, release_w) = pipe_cloexec()?;
    let (status_r, status_w) = pipe_cloexec()?;
    let diag = nix::unistd::getpid();
    // SAFETY: diag is single-threaded here (no thread has been started yet), so the child may
    // allocate and run ordinary code before exec.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            drop(release_w);
            drop(status_r);
            let death = dies_with_diag.then_some(diag);
            let code = child_main(release_r, status_w, &c_argv, pre_exec, death);
            // SAFETY: leaving the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => Ok(HeldChild {
            pid: child,
            release: release_w.into(),
            exec_status: status_r.into(),
        }),
    }
}

/// `dies_with`: diag's pid, when the command is to die with diag.
fn child_main(
    release: OwnedFd,
    status: OwnedFd,
    argv: &[CString],
    pre_exec: PreExec,
    dies_with: Option<Pid>,
) -> i32 {
    let mut release = std::fs::File::from(release);
    let mut status = std::fs::File::from(status);
    let mut byte = [0u8; 1];
    if release.read(&mut byte).ok() != Some(1) {
        return 126; // diag went away before releasing us
    }
    // Rust ignores SIGPIPE and ignored signals survive exec: give the command the default back.
    // SAFETY: restoring a default disposition in the single-threaded child.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // SIGKILL when diag dies. It fires when diag's main thread, which forked this child, ends;
    // exec of a setuid or file-capability program clears it (such a command outlives diag).
    if let Some(diag) = dies_with {
        let set = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        if set.is_err() || nix::unistd::getppid() != diag {
            return 126; // diag is already gone
        }
    }
    if let Err(e) = pre_exec() {
        let _ = write!(status, "E{}\n{e:#}", libc::EPERM);
        return 126;
    }
    // Set again: a change of credentials (`--user`) clears it. A policy's seccomp filter may
    // refuse prctl now, hence the first setting before pre_exec.
    if dies_with.is_some() {
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    }
    // Searched now, with the PATH and the credentials pre_exec gave the command (`--user`).
    let program = search_path(&argv[0]).unwrap_or_else(|| argv[0].clone());
    let err = nix::unistd::execvp(&program, argv).unwrap_err();
    let _ = write!(status, "E{}\n{}", err as i32, err.desc());
    if err == nix::errno::Errno::ENOENT {
        127
    } else {
        126
    }
}

/// The command's file, found on PATH without trying to exec each candidate: between fork and
/// exec the child is still diag, traced as the workload, and execvp's search (an exec ENOENT
/// per PATH entry before the one that holds the command) would show as the workload's
/// failures. None (execvp searches, and reports the error the command would get) for a name
/// with a slash or one not found.
fn search_path(name: &CString) -> Option<CString> {
    let name = name.to_str().ok()?;
    if name.contains('/') || name.is_empty() {
        return None;
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|file| {
            file.is_file() && nix::unistd::access(file, nix::unistd::AccessFlags::X_OK).is_ok()
        })
        .and_then(|file| CString::new(file.into_os_string().into_encoded_bytes()).ok())
}

/// A released child whose exec outcome has not been read yet.
pub struct Released {
    pid: Pid,
    exec_status: std::fs::File,
}

impl HeldChild {
    /// Lets the child run; returns once it has exec'd or failed to.
    pub fn release(self) -> Result<Started> {
        self.release_only()?.outcome()
    }

    /// Lets the child run without waiting for its exec: a ptrace tracer must keep serving the
    /// child's stops until then.
    pub fn release_only(mut self) -> Result<Released> {
        self.release
            .write_all(b"g")
            .context("releasing the child")?;
        Ok(Released {
            pid: self.pid,
            exec_status: self.exec_status,
        })
    }

    /// Kills a child that will never be released (setup failed).
    pub fn abandon(self) {
        let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

impl Released {
    /// Whether exec succeeded (the status pipe closed on exec) or why it failed.
    pub fn outcome(mut self) -> Result<Started> {
        let mut report = String::new();
        self.exec_status
            .read_to_string(&mut report)
            .context("reading the exec status")?;
        if report.is_empty() {
            return Ok(Started::Running(self.pid));
        }
        let (code, message) = report.split_once('\n').unwrap_or((&report, ""));
        let errno = code.trim_start_matches('E').parse().unwrap_or(0);
        Ok(Started::ExecFailed {
            pid: self.pid,
            errno,
            message: message.to_string(),
        })
    }
}

fn pipe_cloexec() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe2")
}

/// The shell convention: the exit code, or 128+N when signal N killed it.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}
