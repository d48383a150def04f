//! Loads diag's eBPF object, configures it, attaches what this kernel allows, and reads events.

use super::{decode, kernel_offsets, tracefs, tracing_probe};
use crate::capture::{CaptureConfig, ProbeReport};
use crate::model::{CaptureStats, Event};
use anyhow::{anyhow, bail, Context, Result};
use aya::{
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{FExit, RawTracePoint, TracePoint},
    Btf, Ebpf, EbpfLoader, Endianness,
};
use diag_ebpf::{
    counter, flush, globals, FailureKey, MessageTail, Recorder, Repeats, TaskState, MAX_ERRNO,
    MAX_SYSCALLS,
};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

static EBPF_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/diag.bpf.o"));

/// Why the eBPF backend is absent from this build, if it is.
pub fn missing_reason() -> Option<&'static str> {
    let reason = env!("DIAG_EBPF_MISSING");
    (EBPF_OBJECT.is_empty() || !reason.is_empty()).then_some(reason)
}

/// Where the kernel's BTF is read from (fexit probes need it); `DIAG_BTF_PATH` overrides it,
/// for tests and for kernels that ship BTF elsewhere.
pub fn btf_path() -> PathBuf {
    std::env::var_os("DIAG_BTF_PATH")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/sys/kernel/btf/vmlinux"))
}

/// Tracepoints the capture cannot work without: (program, attach point, what it is for).
const REQUIRED: &[(&str, Attach, &str)] = &[
    (
        "diag_sys_enter",
        Attach::Raw("sys_enter"),
        "marks syscalls that reached the kernel (an exit without it is a seccomp verdict)",
    ),
    (
        "diag_sys_exit",
        Attach::Raw("sys_exit"),
        "catches failed syscalls with their arguments",
    ),
    (
        "diag_sched_fork",
        Attach::Raw("sched_process_fork"),
        "adds every child to the traced tree",
    ),
    (
        "diag_sched_exec",
        Attach::Raw("sched_process_exec"),
        "names processes after exec",
    ),
    (
        "diag_sched_exit",
        Attach::Raw("sched_process_exit"),
        "records process exits",
    ),
];

/// Evidence probes: each one that does not load is reported under `probes.missing`.
const OPTIONAL: &[(&str, Attach, &str)] = &[
    (
        "diag_signal_deliver",
        Attach::Raw("signal_deliver"),
        "names the signal that ended a process, and who sent it",
    ),
    (
        "diag_cap_capable",
        Attach::Raw("cap_capable"),
        "names a refused capability directly",
    ),
    (
        "diag_selinux_audited",
        Attach::Tp("avc", "selinux_audited"),
        "reports SELinux denials directly",
    ),
    (
        "diag_fexit_security_file_open",
        Attach::FExit("security_file_open"),
        "direct evidence that an LSM refused an open",
    ),
    (
        "diag_fexit_landlock_file_open",
        Attach::FExit("hook_file_open"),
        "direct evidence that Landlock refused an open",
    ),
    (
        "diag_fexit_generic_permission",
        Attach::FExit("generic_permission"),
        "direct evidence of a DAC refusal",
    ),
    (
        "diag_fexit_secure_computing",
        Attach::FExit("__secure_computing"),
        "direct evidence of a seccomp verdict",
    ),
    (
        "diag_fexit_pids_can_fork",
        Attach::FExit("pids_can_fork"),
        "direct evidence of a pids cgroup refusal",
    ),
];

/// One probe of the capture, as `diag doctor` describes it.
pub struct ProbeSpec {
    /// As listed in `probes.attached` / `probes.missing`.
    pub label: String,
    /// Capture cannot work without it.
    pub required: bool,
    pub purpose: &'static str,
}

/// Every probe the capture tries to attach, required ones first.
pub fn probe_plan() -> Vec<ProbeSpec> {
    let spec = |required| {
        move |&(_, how, purpose): &(&str, Attach, &'static str)| ProbeSpec {
            label: how.label(),
            required,
            purpose,
        }
    };
    REQUIRED
        .iter()
        .map(spec(true))
        .chain(OPTIONAL.iter().map(spec(false)))
        .collect()
}

#[derive(Clone, Copy)]
enum Attach {
    Raw(&'static str),
    Tp(&'static str, &'static str),
    FExit(&'static str),
}

impl Attach {
    fn label(self) -> String {
        match self {
            Attach::Raw(tp) => format!("raw_tp/{tp}"),
            Attach::Tp(g, e) => format!("tracepoint/{g}/{e}"),
            Attach::FExit(f) => format!("fexit/{f}"),
        }
    }
}

pub struct EbpfCapture {
    ebpf: Ebpf,
    ring: RingBuf<MapData>,
    pub probes: ProbeReport,
}

/// Joins the background detach of an [`EbpfCapture`] when dropped.
pub struct Closing(Option<std::thread::JoinHandle<()>>);

impl Drop for Closing {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

/// How long one [`EbpfCapture::poll`] reads records at most.
const POLL_BUDGET: Duration = Duration::from_millis(100);

impl EbpfCapture {
    /// Loads and attaches. `cgroup_id` (v2) makes every task of that cgroup traced as well.
    pub fn load(config: &CaptureConfig, cgroup_id: Option<u64>) -> Result<Self> {
        if let Some(reason) = missing_reason() {
            bail!("the eBPF backend was not built into this binary: {reason}");
        }
        raise_memlock();
        let tracing = tracefs::tracefs_root()?;
        let (pidns_dev, pidns_ino) = own_pid_namespace()?;
        let cap_arg = |f| tracefs::field_position(&tracing, "capability", "cap_capable", f);
        let (cap_cap, cap_ret) = (cap_arg("cap").unwrap_or(3), cap_arg("ret").unwrap_or(4));
        let avc_denied =
            tracefs::field_offset(&tracing, "avc", "selinux_audited", "denied").unwrap_or(0);

        let errno_mask =
            bitmask::<{ MAX_ERRNO / 64 }>(config.errnos.errnos.iter().map(|&e| e as usize));
        let syscall_mask =
            bitmask::<{ MAX_SYSCALLS / 64 }>(config.syscalls.iter().map(|&n| n as usize));
        let path_args = config.path_arg_table();
        let dev_errnos = u8::from(config.errnos.scoped);
        let scoped_errnos: [u8; MAX_SYSCALLS] = config.errnos.scoped_table();
        let cgroup = cgroup_id.unwrap_or(0);
        let burst = config.message_burst;
        let stdout_complains = u8::from(config.stdout_complains);
        let kernel = kernel_offsets::read(&btf_path());
        let fd_args = config.fd_arg_table();
        let dirfd_args = config.dirfd_arg_table();
        // Records wake the reader once an eighth of the ring is used; the poll tick reads the rest.
        let wakeup_bytes = u64::from(config.ring_bytes / 8);

        // The programs take no CO-RE relocations (tracefs gives tracepoint offsets, the kernel's BTF
        // read above the struct members), so the loader needs no kernel BTF: only the fexit probes
        // do, and only where the kernel allows them.
        let mut ebpf = EbpfLoader::new()
            .btf(None)
            .map_max_entries("TRACED", traced_array_len())
            .override_global(globals::ERRNO_MASK, &errno_mask, true)
            .override_global(globals::SYSCALL_MASK, &syscall_mask, true)
            .override_global(globals::PATH_ARG, &path_args, true)
            .override_global(globals::DEV_ERRNOS, &dev_errnos, true)
            .override_global(globals::SCOPED_ERRNOS, &scoped_errnos, true)
            .override_global(globals::CGROUP_ID, &cgroup, true)
            .override_global(globals::MESSAGE_BURST, &burst, true)
            .override_global(globals::WAKEUP_BYTES, &wakeup_bytes, true)
            .override_global(globals::PIDNS_DEV, &pidns_dev, true)
            .override_global(globals::PIDNS_INO, &pidns_ino, true)
            .override_global(globals::SELF_TGID, &std::process::id(), true)
            .override_global(globals::CAP_CAP_ARG, &cap_cap, true)
            .override_global(globals::CAP_RET_ARG, &cap_ret, true)
            .override_global(globals::AVC_DENIED_OFF, &avc_denied, true)
            .override_global(globals::STDOUT_COMPLAINS, &stdout_complains, true)
            .override_global(globals::KERNEL_OFFSETS, &kernel.offsets, true)
            .override_global(globals::KERNEL_FACTS, &kernel.facts, true)
            .override_global(globals::FD_ARG, &fd_args, true)
            .override_global(globals::DIRFD_ARG, &dirfd_args, true)
            .map_max_entries("EVENTS", config.ring_bytes)
            .load(EBPF_OBJECT)
            .map_err(|e| anyhow!("loading the eBPF object: {e}"))?;

        let btf = kernel_btf_for_fexit();
        let mut probes = ProbeReport::default();
        for &(prog, how, _) in REQUIRED {
            attach(&mut ebpf, prog, how, &tracing, &btf).map_err(|e| {
                anyhow!(
                    "attaching {}: {}",
                    how.label(),
                    verifier_tail(&format!("{e:#}"))
                )
            })?;
            probes.attached.push(how.label());
        }
        for &(prog, how, _) in OPTIONAL {
            match attach(&mut ebpf, prog, how, &tracing, &btf) {
                Ok(()) => probes.attached.push(how.label()),
                Err(e) => probes.missing.push((how.label(), format!("{e:#}"))),
            }
        }
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("EVENTS map")?)?;
        Ok(EbpfCapture { ebpf, ring, probes })
    }

    /// Starts tracing `tid` (and, through fork tracking, everything it creates).
    pub fn track(&mut self, tid: u32) -> Result<()> {
        let mut tasks: HashMap<_, u32, TaskState> =
            HashMap::try_from(self.ebpf.map_mut("TASKS").context("TASKS map")?)?;
        tasks
            .insert(tid, TaskState::default(), 0)
            .context("adding a task to the task map")?;
        let mut traced: Array<_, u8> =
            Array::try_from(self.ebpf.map_mut("TRACED").context("TRACED map")?)?;
        // A tid beyond the array is looked up in TASKS by the kernel.
        if tid < traced.len() {
            traced.set(tid, 1, 0).context("marking a task traced")?;
        }
        Ok(())
    }

    /// Waits up to `timeout` for events, then hands the available ones to `sink` for at most
    /// [`POLL_BUDGET`]: a ring refilled as fast as it is read (or read slowly) still returns to
    /// the caller and its deadline. Returns how many records were read.
    pub fn poll(&mut self, timeout: Duration, sink: &mut dyn FnMut(Event)) -> Result<usize> {
        let mut fds = [libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd; a failure (EINTR) just means "look again".
        unsafe { libc::poll(fds.as_mut_ptr(), 1, timeout.as_millis() as i32) };
        let mut n = 0;
        let started = std::time::Instant::now();
        while started.elapsed() < POLL_BUDGET {
            let Some(item) = self.ring.next() else { break };
            n += 1;
            if let Some(ev) = decode::record(&item) {
                sink(ev);
            }
        }
        Ok(n)
    }

    /// Drops the records still queued (tracing is over), within [`POLL_BUDGET`]; returns how
    /// many.
    pub fn discard_queued(&mut self) -> usize {
        let started = std::time::Instant::now();
        let mut n = 0;
        while started.elapsed() < POLL_BUDGET && self.ring.next().is_some() {
            n += 1;
        }
        n
    }

    /// Hands `sink` the kernel's counts of repeated failures (see `FailureKey`). Call it once,
    /// after the last `poll`: the counts are cumulative.
    pub fn repeats(&self, sink: &mut dyn FnMut(Event)) -> Result<()> {
        let map: HashMap<_, FailureKey, Repeats> =
            HashMap::try_from(self.ebpf.map("REPEATS").context("REPEATS map")?)?;
        for entry in map.iter() {
            let (key, repeats) = entry.context("reading the REPEATS map")?;
            if let Some(ev) = decode::repeated(&key, &repeats) {
                sink(ev);
            }
        }
        Ok(())
    }

    /// Hands `sink` what the kernel holds back for processes still alive: their flight
    /// recorders (failures that led to no complaint and no death so far) and the writes they
    /// made past their message budget. Call it once, after the last `poll`.
    pub fn held_back(&self, sink: &mut dyn FnMut(Event)) -> Result<()> {
        let recorders: HashMap<_, u32, Recorder> =
            HashMap::try_from(self.ebpf.map("RECORDERS").context("RECORDERS map")?)?;
        for entry in recorders.iter() {
            let (_, mut rec) = entry.context("reading the RECORDERS map")?;
            for slot in decode::held(&mut rec.slots, rec.next) {
                slot.flush = flush::TRACE_END;
                if let Some(ev) = decode::recent(slot) {
                    sink(ev);
                }
            }
        }
        let tails: HashMap<_, u32, MessageTail> = HashMap::try_from(
            self.ebpf
                .map("MESSAGE_TAILS")
                .context("MESSAGE_TAILS map")?,
        )?;
        for entry in tails.iter() {
            let (_, mut tail) = entry.context("reading the MESSAGE_TAILS map")?;
            for slot in decode::held(&mut tail.slots, tail.next) {
                if let Some(ev) = decode::syscall(slot) {
                    sink(ev);
                }
            }
        }
        Ok(())
    }

    /// Detaches and unloads on another thread, overlapping with building the report; the guard
    /// joins it. Raw tracepoints detach without waiting; a perf-event tracepoint (SELinux's,
    /// where it is attached) waits for RCU grace periods, tens of ms each.
    pub fn close_in_background(self) -> Closing {
        Closing(Some(std::thread::spawn(move || drop(self))))
    }

    /// The kernel-side counters, summed over CPUs.
    pub fn stats(&self) -> Result<CaptureStats> {
        let counters: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map("COUNTERS").context("COUNTERS map")?)?;
        let get = |i: u32| -> u64 { counters.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0) };
        Ok(CaptureStats {
            lost_events: get(counter::LOST_EVENTS),
            process_forks: get(counter::PROCESS_FORKS),
            thread_forks: get(counter::THREAD_FORKS),
            messages_dropped: get(counter::MESSAGES_DROPPED),
            untracked_tasks: get(counter::UNTRACKED_TASKS),
            unrecorded_failures: get(counter::UNRECORDED_FAILURES),
        })
    }
}

fn attach(
    ebpf: &mut Ebpf,
    prog: &str,
    how: Attach,
    tracing: &std::path::Path,
    btf: &Result<Btf, String>,
) -> Result<()> {
    let program = ebpf
        .program_mut(prog)
        .ok_or_else(|| anyhow!("program {prog} missing"))?;
    match how {
        Attach::Raw(tp) => {
            let p: &mut RawTracePoint = program.try_into()?;
            p.load()?;
            p.attach(tp)?;
        }
        Attach::Tp(group, event) => {
            if !tracefs::has_event(tracing, group, event) {
                bail!("this kernel has no {group}:{event} tracepoint");
            }
            // A perf-event tracepoint costs grace periods at detach; SELinux's only fires where
            // SELinux is active.
            if group == "avc"
                && !tracefs::active_lsms().is_ok_and(|l| l.iter().any(|l| l == "selinux"))
            {
                bail!("SELinux is not an active LSM on this host");
            }
            let p: &mut TracePoint = program.try_into()?;
            p.load()?;
            p.attach(group, event)?;
        }
        Attach::FExit(function) => {
            let btf = btf.as_ref().map_err(|why| anyhow!("{why}"))?;
            let p: &mut FExit = program.try_into()?;
            p.load(function, btf).map_err(explain_fexit_error)?;
            p.attach()?;
        }
    }
    Ok(())
}

const FEXIT_REFUSED: &str =
    "the kernel refused fexit programs (EPERM): kernel-function probes are not allowed here";

/// The kernel's BTF, which fexit programs need to name their function; parsed only when the
/// kernel may accept them at all (see `tracing_probe`).
fn kernel_btf_for_fexit() -> Result<Btf, String> {
    if tracing_probe::refused() {
        return Err(FEXIT_REFUSED.into());
    }
    let path = btf_path();
    Btf::parse_file(&path, Endianness::default())
        .map_err(|e| format!("no kernel BTF at {}: {e}", path.display()))
}

/// This kernel refuses fentry/fexit with EPERM and an empty verifier log: say so plainly.
fn explain_fexit_error(e: aya::programs::ProgramError) -> anyhow::Error {
    let text = format!("{e}");
    if text.contains("Operation not permitted") || text.contains("EPERM") {
        anyhow!(FEXIT_REFUSED)
    } else {
        anyhow!("{text}")
    }
}

/// A verifier log is thousands of lines; its last lines name the problem.
fn verifier_tail(text: &str) -> String {
    const KEEP: usize = 600;
    match text.find("Verifier output:") {
        Some(i) if text.len() - i > KEEP => {
            let mut start = text.len() - KEEP;
            while !text.is_char_boundary(start) {
                start += 1;
            }
            format!("{} ... {}", &text[..i + 16], &text[start..])
        }
        _ => text.to_string(),
    }
}

fn bitmask<const N: usize>(bits: impl Iterator<Item = usize>) -> [u64; N] {
    let mut words = [0u64; N];
    for b in bits.filter(|&b| b < N * 64) {
        words[b / 64] |= 1 << (b % 64);
    }
    words
}

/// `(st_dev, st_ino)` of diag's pid namespace, as `bpf_get_ns_current_pid_tgid` names it.
fn own_pid_namespace() -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/self/ns/pid").context("reading /proc/self/ns/pid")?;
    Ok((ns.dev(), ns.ino()))
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK.
fn raise_memlock() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid pointer to a local struct.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
}

/// Entries of the kernel's TRACED array: one per possible tid, up to 4 Mi (8 bytes each).
fn traced_array_len() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(1 << 15)
        .clamp(1 << 15, 1 << 22)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmask_sets_words() {
        let m = bitmask::<3>([1usize, 13, 64, 191, 500].into_iter());
        assert_eq!(m[0], (1 << 1) | (1 << 13));
        assert_eq!(m[1], 1);
        assert_eq!(m[2], 1 << 63);
    }
}
