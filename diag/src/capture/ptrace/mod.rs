//! The ptrace backend: for hosts without eBPF privilege. It follows the launched tree with
//! PTRACE_SEIZE (fork, vfork, clone and exec following) and stops only on the syscalls a seccomp
//! prefilter marks with SECCOMP_RET_TRACE, reading each call's result at its exit stop. Layers
//! are inferred from procfs context, read while the failing thread is still stopped.
//!
//! - `prefilter`: the filter the child installs before exec;
//! - `tracer`: the waitpid loop and the per-task stop state;
//! - `decode`: exit stops to events (failures, messages, Landlock calls);
//! - `memory`: reads of the tracee's memory;
//! - `wake_latency`: keeps idle CPUs polling while the tree is traced.

mod decode;
pub(crate) mod memory;
mod prefilter;
mod tracer;
mod wake_latency;

pub use prefilter::Mode;
pub use tracer::Step;

use crate::capture::{CaptureConfig, ProbeReport};
use crate::model::{CaptureStats, Event};
use anyhow::Result;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use prefilter::Prefilter;
use tracer::Tracer;
use wake_latency::WakeLatencyHold;

pub struct PtraceCapture {
    /// None when attached: a running process gets no filter.
    prefilter: Option<Prefilter>,
    tracer: Tracer,
    _wake_latency: Option<WakeLatencyHold>,
    pub probes: ProbeReport,
}

impl PtraceCapture {
    /// `let_cpus_sleep`: leave the CPUs' idle states alone (see `wake_latency`).
    pub fn new(config: &CaptureConfig, mode: Mode, let_cpus_sleep: bool) -> Result<Self> {
        let prefilter = match mode {
            Mode::Attached => None,
            _ => Some(Prefilter::build(config, mode)?),
        };
        let mut probes = probes(prefilter.as_ref(), mode);
        let hold = if let_cpus_sleep {
            Err("--let-cpus-sleep".to_string())
        } else {
            WakeLatencyHold::acquire()
        };
        const HOLD: &str = "pm_qos/cpu_dma_latency=0: idle CPUs poll between stops";
        match &hold {
            Ok(_) => probes.attached.push(HOLD.into()),
            Err(why) => probes.missing.push((
                HOLD.into(),
                format!("not held ({why}): on a virtual machine each stop may then wait for a CPU to wake"),
            )),
        }
        Ok(PtraceCapture {
            tracer: Tracer::new(mode, decode::Decoder::new(config), prefilter.as_ref()),
            prefilter,
            _wake_latency: hold.ok(),
            probes,
        })
    }

    /// Work for the launched child, first thing after its release: install the filter. The
    /// tracer must already be attached, or the TRACE'd calls would fail with ENOSYS.
    pub fn child_setup(&self) -> impl FnOnce() -> Result<()> {
        let filter = self.prefilter.clone();
        move || filter.map_or(Ok(()), |f| f.install())
    }

    /// Traces the held child `pid` (before its release, so nothing it does is missed).
    pub fn seize(&mut self, pid: Pid) -> Result<()> {
        self.tracer.seize(pid, pid.as_raw() as u32).map_err(|e| {
            anyhow::anyhow!("ptrace cannot attach to its own child: {e}{}", yama_hint())
        })
    }

    /// Traces thread `tid` of the running process `pid` (attach).
    pub fn seize_running(&mut self, tid: u32, pid: u32) -> Result<()> {
        self.tracer
            .seize_running(Pid::from_raw(tid as i32), pid)
            .map_err(|e| anyhow::anyhow!("ptrace cannot attach to {tid}: {e}{}", yama_hint()))
    }

    /// Lets go of every traced task (the end of tracing), within a second.
    pub fn detach_all(&mut self, sink: &mut dyn FnMut(Event)) {
        self.tracer
            .detach_all(std::time::Duration::from_secs(1), sink)
    }

    /// Waits for the next stop of the tree and turns it into events.
    pub fn step(&mut self, sink: &mut dyn FnMut(Event)) -> Result<Step> {
        self.tracer.step(sink)
    }

    pub fn root_status(&self) -> Option<WaitStatus> {
        self.tracer.root_status()
    }

    /// Tasks of the tree still traced.
    pub fn tasks(&self) -> usize {
        self.tracer.tasks()
    }

    pub fn stats(&self) -> CaptureStats {
        self.tracer.stats()
    }
}

/// Yama's ptrace_scope, where it forbids what diag needs.
fn yama_hint() -> String {
    match std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope") {
        Ok(s) if s.trim() == "3" => {
            " (kernel.yama.ptrace_scope is 3: ptrace is disabled until reboot; use --backend ebpf as root)".into()
        }
        Ok(s) if s.trim() == "2" => {
            " (kernel.yama.ptrace_scope is 2: only CAP_SYS_PTRACE may trace; run as root or use --backend ebpf)".into()
        }
        _ => String::new(),
    }
}

fn probes(prefilter: Option<&Prefilter>, mode: Mode) -> ProbeReport {
    let mut p = ProbeReport::default();
    p.attached
        .push("ptrace/seize: fork, vfork, clone and exec following".into());
    let traced = prefilter.map_or(0, |f| f.traced);
    p.attached.push(match mode {
        Mode::Prefilter => format!(
            "seccomp/prefilter: SECCOMP_RET_TRACE on {traced} syscalls, syscall-exit stops for those"
        ),
        Mode::EveryStop => format!(
            "seccomp/every-syscall: SECCOMP_RET_TRACE on all {traced} syscalls, with syscall-entry and exit stops"
        ),
        Mode::Attached => "ptrace/syscall: entry and exit stops on every syscall (a running process gets no filter)".into(),
    });
    p.attached
        .push("ptrace/memory: paths, messages and Landlock attributes via process_vm_readv".into());
    p.missing.push((
        "ebpf/evidence probes (cap_capable, selinux_audited, fexit)".into(),
        "the ptrace backend sees each call and its result only: layers are inferred from procfs context and traced Landlock domains".into(),
    ));
    if mode == Mode::Prefilter {
        p.attached.push("seccomp/refused calls: a process with a seccomp filter of its own (Seccomp_filters beyond diag's, or a filter installed in the tree) stops at every syscall entry, so a call its filter refuses is seen".into());
    }
    if mode == Mode::Attached {
        p.missing.push((
            "seccomp/refused calls".into(),
            "attached without a filter of diag's, a call the process's own seccomp filter refuses looks like any failed call; layers come from procfs context".into(),
        ));
    }
    if let Some(f) = prefilter.filter(|f| !f.unstopped.is_empty()) {
        p.missing.push((
            format!("seccomp/unstopped: {} hot syscalls", f.unstopped.len()),
            format!("{} make no access decision of their own and run without a stop; --no-prefilter, or naming them in --syscalls, traces them", f.unstopped.join(",")),
        ));
    }
    p
}
