//! The seccomp filter the launched child installs before exec, as `strace --seccomp-bpf` does:
//! SECCOMP_RET_TRACE on the syscalls diag needs to see, so every other syscall runs without a
//! stop. With `--no-prefilter` it traces every syscall, so diag can tell which calls a
//! sandbox's own filter refused (their seccomp stop never comes).

use crate::capture::CaptureConfig;
use crate::model::syscalls;
use anyhow::{anyhow, Result};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;

/// How the tree's syscalls reach diag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `run`: the child's filter traces only what diag needs.
    Prefilter,
    /// `run --no-prefilter`: the child's filter traces every syscall, with entry stops too.
    EveryStop,
    /// `attach`: a running process has no filter of diag's; every syscall stops at entry and
    /// exit (PTRACE_SYSCALL), and a missing seccomp stop means nothing.
    Attached,
}

/// Syscalls whose success diag must see too: `syscalls::STATE_ON_SUCCESS`, plus the id changes
/// diag caches per thread and the filter installs.
const ID_CHANGES: &[&str] = &[
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setfsuid",
    "setfsgid",
];

/// Calls that install a seccomp filter: from then on the process's refusals must be traced.
const FILTER_INSTALLS: &[&str] = &["seccomp", "prctl"];

fn bookkeeping(name: &str) -> bool {
    syscalls::state_on_success(name)
        || ID_CHANGES.contains(&name)
        || FILTER_INSTALLS.contains(&name)
}

/// Hot syscalls that make no access decision of their own: with `--syscalls all` their failures
/// are flow control (EAGAIN, EINTR) or bad arguments, so the prefilter lets them run without a
/// stop. Named explicitly in `--syscalls`, or with `--no-prefilter`, they are traced.
pub const UNSTOPPED: &[&str] = &[
    "read",
    "readv",
    "pread64",
    "preadv",
    "preadv2",
    "lseek",
    "futex",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "nanosleep",
    "clock_nanosleep",
    "sched_yield",
    "getpid",
    "gettid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "brk",
    "munmap",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "clock_gettime",
    "gettimeofday",
    "wait4",
    "waitid",
    "exit",
    "exit_group",
    "restart_syscall",
    "set_robust_list",
    "set_tid_address",
    "rseq",
    "getrandom",
];

/// `SECCOMP_RET_DATA` of the stop for a call settled at its seccomp stop, without an exit stop:
/// an unwatched `close()`, which releases its fd whatever it returns.
pub const SETTLED_AT_ENTRY: u64 = 1;

/// A compiled filter, ready to install in the child.
#[derive(Clone)]
pub struct Prefilter {
    program: BpfProgram,
    /// Stacked on `program`: marks `close()` with [`SETTLED_AT_ENTRY`]. Of two TRACE verdicts the
    /// kernel reports the data of the filter installed last.
    settle_at_entry: Option<BpfProgram>,
    /// How many syscalls stop, for the report.
    pub traced: usize,
    /// By syscall number: whether the call reaches a seccomp stop (unless another filter
    /// refuses it first).
    pub stops_at_seccomp: Vec<bool>,
    /// Watched syscalls that do not stop.
    pub unstopped: Vec<&'static str>,
}

impl Prefilter {
    pub fn build(config: &CaptureConfig, mode: Mode) -> Result<Self> {
        let every: Vec<u32> = syscalls::all_numbers().collect();
        let watches_all = every.iter().all(|n| config.syscalls.contains(n));
        let unstopped: Vec<&'static str> = match mode {
            Mode::Prefilter if watches_all => UNSTOPPED.to_vec(),
            _ => vec![],
        };
        let traced: Vec<u32> = match mode {
            // `attach` installs no filter; were it built, it would trace everything.
            Mode::EveryStop | Mode::Attached => every.clone(),
            Mode::Prefilter => every
                .iter()
                .copied()
                .filter(|&n| {
                    let name = syscalls::name(n);
                    (config.syscalls.contains(&n) || bookkeeping(&name))
                        && !unstopped.contains(&name.as_str())
                })
                .collect(),
        };
        let trace = SeccompAction::Trace(0);
        // The filter walks its rules one by one: list the smaller side.
        let (listed, on_match, otherwise): (Vec<u32>, _, _) = if traced.len() * 2 > every.len() {
            let allowed = every.iter().copied().filter(|n| !traced.contains(n));
            (allowed.collect(), SeccompAction::Allow, trace)
        } else {
            (traced.clone(), trace, SeccompAction::Allow)
        };
        let program = compile(listed, on_match, otherwise)?;
        let close = libc::SYS_close as u32;
        let settle_at_entry = (mode == Mode::Prefilter && !config.syscalls.contains(&close))
            .then(|| {
                compile(
                    vec![close],
                    SeccompAction::Trace(SETTLED_AT_ENTRY as u32),
                    SeccompAction::Allow,
                )
            })
            .transpose()?;
        let mut stops_at_seccomp = vec![false; diag_ebpf::MAX_SYSCALLS];
        let settled = settle_at_entry.as_ref().map(|_| close);
        for n in traced.iter().copied().chain(settled) {
            if let Some(stops) = stops_at_seccomp.get_mut(n as usize) {
                *stops = true;
            }
        }
        Ok(Prefilter {
            program,
            settle_at_entry,
            traced: traced.len(),
            stops_at_seccomp,
            unstopped,
        })
    }

    /// Installs the filter in the calling (child) process. Privileged callers keep their
    /// no_new_privs bit as it was; others must set it, as seccomp requires.
    /// How many seccomp filters [`Prefilter::install`] adds to the process.
    pub fn programs(&self) -> u32 {
        1 + self.settle_at_entry.is_some() as u32
    }

    pub fn install(&self) -> Result<()> {
        install(&self.program)?;
        self.settle_at_entry.as_ref().map_or(Ok(()), install)
    }
}

fn compile(
    listed: Vec<u32>,
    on_match: SeccompAction,
    otherwise: SeccompAction,
) -> Result<BpfProgram> {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        listed.into_iter().map(|n| (n as i64, vec![])).collect();
    let filter = SeccompFilter::new(rules, otherwise, on_match, TargetArch::x86_64)
        .map_err(|e| anyhow!("building the seccomp prefilter: {e}"))?;
    filter
        .try_into()
        .map_err(|e| anyhow!("compiling the seccomp prefilter: {e}"))
}

fn install(program: &BpfProgram) -> Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points at a valid filter that outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EACCES) {
        return Err(anyhow!("installing the seccomp prefilter: {err}"));
    }
    seccompiler::apply_filter(program).map_err(|e| anyhow!("installing the seccomp prefilter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefilter_skips_hot_calls_only_when_everything_is_watched() {
        let all = CaptureConfig::default();
        let p = Prefilter::build(&all, Mode::Prefilter).unwrap();
        assert!(p.unstopped.contains(&"futex"));
        assert_eq!(p.traced, syscalls::all_numbers().count() - UNSTOPPED.len());
        let e = Prefilter::build(&all, Mode::EveryStop).unwrap();
        assert!(e.unstopped.is_empty());
        assert_eq!(e.traced, syscalls::all_numbers().count());

        let narrow = CaptureConfig {
            syscalls: syscalls::parse_selection("read,clone").unwrap(),
            ..CaptureConfig::default()
        };
        let n = Prefilter::build(&narrow, Mode::Prefilter).unwrap();
        assert!(n.unstopped.is_empty(), "an explicit read is traced");
        let kept: std::collections::BTreeSet<&str> = syscalls::STATE_ON_SUCCESS
            .iter()
            .chain(ID_CHANGES)
            .chain(FILTER_INSTALLS)
            .copied()
            .collect();
        assert_eq!(n.traced, 2 + kept.len());
        assert!(n.stops_at_seccomp[libc::SYS_seccomp as usize]);
    }
}
