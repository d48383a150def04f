//! Why a fork/clone returned EAGAIN: the pids cgroup, RLIMIT_NPROC or kernel.threads-max.

use super::Attribution;
use crate::context::FailureContext;
use crate::model::{Confidence, Failure, Layer};

pub(super) fn attribute(f: &Failure, ctx: &FailureContext, mut a: Attribution) -> Attribution {
    let Some(p) = ctx.process.as_ref() else {
        a.evidence
            .push("the process had exited before its limits could be read".into());
        a.candidates = vec![Layer::CgroupPids, Layer::RlimitNproc, Layer::ThreadsMax];
        return a;
    };
    let mut verdicts: Vec<(Layer, String)> = Vec::new();
    match &p.pids {
        Some(pc) => match pc.max {
            Some(max) if pc.current >= max || pc.refused > 0 => verdicts.push((
                Layer::CgroupPids,
                format!(
                    "pids cgroup {}: pids.current {} of pids.max {}, pids.events max = {} refused forks",
                    pc.dir.display(), pc.current, max, pc.refused
                ),
            )),
            Some(max) => a.exclude(Layer::CgroupPids, format!("pids cgroup {}: {} of {max}, no fork refused", pc.dir.display(), pc.current)),
            None => a.exclude(Layer::CgroupPids, format!("pids cgroup {}: {} tasks, pids.max is max (no limit)", pc.dir.display(), pc.current)),
        },
        None if p.from_event && !p.sighted => {
            a.evidence.push("pids cgroup: unknown, the process exited before its cgroup was read".into());
            a.candidates.push(Layer::CgroupPids);
        }
        None => a.exclude(Layer::CgroupPids, "no pids controller applies to this process"),
    }
    // Root with CAP_SYS_RESOURCE or CAP_SYS_ADMIN is exempt from RLIMIT_NPROC.
    let exempt = p.ruid == 0 && (p.has_cap(24) || p.has_cap(21));
    // Read after the process exited: its own threads are no longer counted, and without a
    // sighting its limit is unknown (not unlimited).
    let gone = p.from_event;
    let mut nproc_open = None;
    match (p.nproc_limit, p.uid_tasks) {
        (Some(limit), Some(n)) if n >= limit && !exempt => verdicts.push((
            Layer::RlimitNproc,
            format!(
                "RLIMIT_NPROC: uid {} has {n} tasks against a soft limit of {limit}",
                p.ruid
            ),
        )),
        (Some(limit), Some(n)) if gone && !exempt => {
            nproc_open = Some(format!(
                "RLIMIT_NPROC: soft limit {limit} (read when pid {} exec'd); uid {} has {n} tasks now, not counting the threads the exited process had at the failure",
                p.pid, p.ruid
            ))
        }
        (Some(limit), Some(n)) => a.exclude(
            Layer::RlimitNproc,
            format!(
                "RLIMIT_NPROC: {n} of {limit} for uid {}{}",
                p.ruid,
                if exempt {
                    " (root with CAP_SYS_RESOURCE is exempt)"
                } else {
                    ""
                }
            ),
        ),
        (None, _) if gone && !p.sighted => {
            nproc_open = Some(
                "RLIMIT_NPROC: unknown, the process exited before its limits were read".into(),
            )
        }
        (None, _) => a.exclude(Layer::RlimitNproc, "RLIMIT_NPROC: unlimited"),
        (Some(limit), None) => a.evidence.push(format!(
            "RLIMIT_NPROC soft limit {limit}; the uid's task count was not measured"
        )),
    }
    match p.threads {
        Some((n, max)) if n + 16 >= max => verdicts.push((
            Layer::ThreadsMax,
            format!("kernel.threads-max: {n} tasks on the system of {max}"),
        )),
        Some((n, max)) => a.exclude(
            Layer::ThreadsMax,
            format!("kernel.threads-max: {n} of {max}"),
        ),
        None => {}
    }
    if let Some(why) = nproc_open {
        // Every other limit a clone's EAGAIN can come from was read and is not reached.
        if verdicts.is_empty() && a.candidates.is_empty() && p.threads.is_some() {
            return a.decide(
                Layer::RlimitNproc,
                Confidence::Inferred,
                format!("{why}; the pids cgroup and kernel.threads-max are not at their limits"),
            );
        }
        a.evidence.push(why);
        a.candidates.push(Layer::RlimitNproc);
    }
    match verdicts.len() {
        0 => {
            a.evidence.push(format!(
                "{} returned EAGAIN with no process limit reached",
                f.syscall
            ));
            a
        }
        1 => {
            let (layer, why) = verdicts.remove(0);
            a.decide(layer, Confidence::Inferred, why)
        }
        _ => {
            // The pids cgroup's refusal counter is the more specific signature.
            let (layer, why) = verdicts
                .iter()
                .find(|(l, _)| *l == Layer::CgroupPids)
                .cloned()
                .unwrap_or_else(|| verdicts[0].clone());
            for (l, w) in &verdicts {
                if *l != layer {
                    a.evidence.push(format!("also at its limit: {w}"));
                }
            }
            a.decide(layer, Confidence::Inferred, why)
        }
    }
}
