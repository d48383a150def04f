//! The classic suspects every finding addresses (seccomp, nproc, pids), each with the figures
//! measured in this run.

use super::{Attribution, RuledOut};
use crate::context::FailureContext;
use crate::correlate::Trace;
use crate::model::{syscalls, Layer};

pub struct Suspects {
    pub ruled_out: Vec<RuledOut>,
}

impl Suspects {
    /// `ctx` is the context of the failure the finding rests on; `attributions` are those of
    /// every failure of the trace, in order.
    pub fn measure(
        trace: &Trace,
        attributions: &[Attribution],
        ctx: Option<&FailureContext>,
    ) -> Self {
        let mut out = Vec::new();
        let proc_ = ctx.and_then(|c| c.process.as_ref());
        let seccomp_refusals: u64 = trace
            .failures
            .iter()
            .zip(attributions)
            .filter(|(_, a)| a.layer == Layer::Seccomp && a.noise.is_none())
            .map(|(g, _)| g.count)
            .sum();
        // A log records neither a process's seccomp mode nor (audit, strace -Z) its forks:
        // what it cannot show is not ruled out (analyze says so in its warnings).
        let from_log = trace.from_log;
        if seccomp_refusals == 0 && from_log.is_none() {
            let mode = match proc_.and_then(|p| p.seccomp_mode) {
                Some(2) => "filter present (mode 2)",
                Some(1) => "strict mode",
                Some(0) => "no filter",
                _ => "mode not read",
            };
            out.push(RuledOut {
                layer: Some(Layer::Seccomp),
                why: format!("seccomp: {mode}, refused nothing that mattered in this run"),
            });
        }
        let clone_failed: u64 = trace
            .failures
            .iter()
            .filter(|g| syscalls::is_clone(&g.failure.syscall))
            .map(|g| g.count)
            .sum();
        let s = &trace.stats;
        // No failed fork rules out every limit on process creation; RLIMIT_NPROC carries the
        // figures.
        if clone_failed == 0 && from_log.is_none_or(|l| l.forks_recorded) {
            let forks = format!(
                "fork/clone: {} processes and {} threads created, 0 calls failed",
                s.process_forks, s.thread_forks
            );
            let nproc = proc_.and_then(|p| match (p.nproc_limit, p.uid_tasks) {
                (Some(l), Some(n)) if n < l => {
                    Some(format!("RLIMIT_NPROC: {n} of {l} tasks for uid {}", p.ruid))
                }
                (None, Some(n)) => Some(format!(
                    "RLIMIT_NPROC: unlimited ({n} tasks for uid {})",
                    p.ruid
                )),
                (None, None) => Some("RLIMIT_NPROC: unlimited".into()),
                _ => None,
            });
            out.push(RuledOut {
                layer: Some(Layer::RlimitNproc),
                why: nproc.map_or(forks.clone(), |n| format!("{n}; {forks}")),
            });
        }
        if let Some(pc) = proc_
            .and_then(|p| p.pids.as_ref())
            .filter(|pc| pc.refused == 0)
        {
            let max = pc.max.map_or("max".to_string(), |m| m.to_string());
            out.push(RuledOut {
                layer: Some(Layer::CgroupPids),
                why: format!("pids cgroup: {} of {max}, no fork refused", pc.current),
            });
        }
        Suspects { ruled_out: out }
    }
}
