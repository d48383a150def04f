//! The benchmark workload: a deterministic syscall mix with a known number of real EACCES
//! denials, so a tracer's failure count can be checked against the truth.
//!
//! `mix`: successful opens, denied opens, fork/exit, fork+exec of /bin/true.
//! `burst`: P processes × T threads doing denied opens as fast as they can for D seconds.
//! `distinct`: N denied opens, each of a path of its own (`DIR/i` under a root-only DIR).
//! Each prints one line on stdout: `denied=N elapsed_ms=MS end_unix_ms=MS`.
//!
//! Run as root: it joins `--cgroup` (a v2 directory, so bpftrace can filter on the tree), then
//! drops to `--uid` (65534) so that opening the root-owned 0600 `--secret` is a real DAC denial.

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "diag's benchmark workload")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Args)]
struct Common {
    /// A root-owned 0600 file: every open of it is denied once privileges are dropped.
    #[arg(long)]
    secret: PathBuf,
    /// Join this cgroup (v2 directory) before anything else.
    #[arg(long)]
    cgroup: Option<PathBuf>,
    /// Drop to this uid and gid when started as root.
    #[arg(long, default_value_t = 65534)]
    uid: u32,
}

#[derive(Subcommand)]
enum Mode {
    /// The mixed workload (defaults: about 2 s untraced on the reference machine).
    Mix {
        /// Successful open+close pairs (of --readable).
        #[arg(long, default_value_t = 100_000)]
        opens: u64,
        /// Denied opens of --secret.
        #[arg(long, default_value_t = 100_000)]
        denied: u64,
        /// fork + _exit + wait.
        #[arg(long, default_value_t = 3_000)]
        forks: u64,
        /// fork + exec /bin/true + wait.
        #[arg(long, default_value_t = 300)]
        execs: u64,
        #[arg(long, default_value = "/etc/passwd")]
        readable: PathBuf,
    },
    /// Denied opens as fast as possible from several processes and threads.
    Burst {
        #[arg(long, default_value_t = 2)]
        procs: u32,
        #[arg(long, default_value_t = 2)]
        threads: u32,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Denied opens of distinct paths: each is a failure of its own for a tracer to report.
    Distinct {
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// A root-owned 0700 directory: opening anything in it is EACCES.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(dir) = &cli.common.cgroup {
        std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
            .with_context(|| format!("joining cgroup {}", dir.display()))?;
    }
    drop_privileges(cli.common.uid)?;
    let secret = c_path(&cli.common.secret)?;
    ensure!(
        open_errno(&secret) == Some(libc::EACCES),
        "opening the secret file must fail with EACCES: run as root with a root-owned 0600 file"
    );
    let start = Instant::now();
    let denied = match cli.mode {
        Mode::Mix {
            opens,
            denied,
            forks,
            execs,
            readable,
        } => mix(&secret, &c_path(&readable)?, opens, denied, forks, execs)?,
        Mode::Burst {
            procs,
            threads,
            seconds,
        } => burst(&secret, procs, threads, Duration::from_secs_f64(seconds))?,
        Mode::Distinct { count, dir } => distinct(&dir, count)?,
    };
    // The wall clock at the end, for a tracer's time from here to its own exit.
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?;
    // The probe above made one denial too.
    println!(
        "denied={} elapsed_ms={:.1} end_unix_ms={:.1}",
        denied + 1,
        start.elapsed().as_secs_f64() * 1e3,
        end.as_secs_f64() * 1e3
    );
    Ok(())
}

fn c_path(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).context("path with a NUL byte")
}

fn drop_privileges(uid: u32) -> Result<()> {
    // SAFETY: plain syscalls on this process's credentials.
    unsafe {
        if libc::geteuid() != 0 {
            return Ok(());
        }
        ensure!(
            libc::setgroups(0, std::ptr::null()) == 0
                && libc::setresgid(uid, uid, uid) == 0
                && libc::setresuid(uid, uid, uid) == 0,
            "dropping to uid {uid}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Opens `path` read-only and closes it: None on success, else the errno.
fn open_errno(path: &CString) -> Option<i32> {
    // SAFETY: a valid C string; the fd is closed right away.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: fd was just opened by us.
        unsafe { libc::close(fd) };
        return None;
    }
    std::io::Error::last_os_error().raw_os_error()
}

fn mix(
    secret: &CString,
    readable: &CString,
    opens: u64,
    denied: u64,
    forks: u64,
    execs: u64,
) -> Result<u64> {
    for _ in 0..opens {
        if let Some(e) = open_errno(readable) {
            bail!("opening the readable file failed: errno {e}");
        }
    }
    for _ in 0..denied {
        deny_once(secret)?;
    }
    for _ in 0..forks {
        // SAFETY: single-threaded; the child only calls _exit.
        match unsafe { libc::fork() } {
            0 => unsafe { libc::_exit(0) },
            -1 => bail!("fork: {}", std::io::Error::last_os_error()),
            pid => wait_ok(pid)?,
        }
    }
    for _ in 0..execs {
        let status = Command::new("/bin/true")
            .status()
            .context("running /bin/true")?;
        ensure!(status.success(), "/bin/true: {status}");
    }
    Ok(denied)
}

fn deny_once(secret: &CString) -> Result<()> {
    match open_errno(secret) {
        Some(libc::EACCES) => Ok(()),
        other => bail!("expected EACCES opening the secret file, got {other:?}"),
    }
}

fn distinct(dir: &Path, count: u64) -> Result<u64> {
    for i in 0..count {
        let path = c_path(&dir.join(i.to_string()))?;
        deny_once(&path)?;
    }
    Ok(count)
}

fn wait_ok(pid: libc::pid_t) -> Result<()> {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    ensure!(
        r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child {pid} failed (status {status:#x})"
    );
    Ok(())
}

/// Forks `procs` children of `threads` threads each; every child sends its count through a
/// pipe (8-byte writes are atomic) and the parent sums them.
fn burst(secret: &CString, procs: u32, threads: u32, length: Duration) -> Result<u64> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    ensure!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0,
        "pipe2"
    );
    // SAFETY: pipe2 just returned these descriptors, owned here only.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let deadline = Instant::now() + length;
    let mut children = Vec::new();
    for _ in 0..procs {
        // SAFETY: the parent is single-threaded; the child never returns into the parent's code.
        match unsafe { libc::fork() } {
            0 => {
                let made = burst_child(secret, threads, deadline);
                let code = match made {
                    Ok(n) => {
                        let bytes = n.to_le_bytes();
                        // SAFETY: writing 8 bytes from a local buffer to our pipe.
                        let w = unsafe { libc::write(fds[1], bytes.as_ptr().cast(), 8) };
                        i32::from(w != 8)
                    }
                    Err(_) => 1,
                };
                // SAFETY: leave without running the parent's destructors twice.
                unsafe { libc::_exit(code) }
            }
            -1 => bail!("fork: {}", std::io::Error::last_os_error()),
            pid => children.push(pid),
        }
    }
    drop(write_end);
    for pid in children {
        wait_ok(pid)?;
    }
    let mut all = Vec::new();
    std::fs::File::from(read_end).read_to_end(&mut all)?;
    ensure!(
        all.len() == procs as usize * 8,
        "a burst child did not report"
    );
    Ok(all
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .sum())
}

fn burst_child(secret: &CString, threads: u32, deadline: Instant) -> Result<u64> {
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<u64> {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        for _ in 0..64 {
                            deny_once(secret)?;
                        }
                        n += 64;
                    }
                    Ok(n)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("burst thread panicked"))
            .sum()
    })
}
