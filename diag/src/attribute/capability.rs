//! Calls whose refusal is a missing capability, decoded: which capability the call needed and
//! why (setpriority lowering the nice value, setrlimit raising a hard limit, raw sockets). Some
//! answer EACCES rather than EPERM, so cap_capable alone does not decide them.

use super::Attribution;
use crate::context::{process::cap_name, FailureContext};
use crate::model::{Confidence, Failure, Layer};

const CAP_NET_RAW: u32 = 13;
const CAP_SYS_RESOURCE: u32 = 24;
const CAP_SYS_NICE: u32 = 23;

const RLIMITS: &[&str] = &[
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
];

/// The call decoded, the capability it needed and why; None when the call is not one of these.
pub fn needed(f: &Failure, ctx: &FailureContext) -> Option<(String, u32, String)> {
    let Some(args) = f.args else {
        return whatever_the_target(f);
    };
    match (f.syscall.as_str(), f.errno) {
        ("setpriority", libc::EACCES | libc::EPERM) => {
            let which = ["PRIO_PROCESS", "PRIO_PGRP", "PRIO_USER"]
                .get(args[0] as usize)
                .copied()
                .unwrap_or("?");
            let prio = args[2] as i32;
            let current = match ctx.refusal.nice {
                Some((nice, limit)) => format!(
                    "; the current nice value is {nice} and RLIMIT_NICE allows down to {}",
                    20 - limit.min(40) as i64
                ),
                None => String::new(),
            };
            Some((
                format!("setpriority({which}, {}, {prio})", args[1] as i32),
                CAP_SYS_NICE,
                format!("lowering the nice value to {prio} needs CAP_SYS_NICE unless RLIMIT_NICE allows it{current}"),
            ))
        }
        ("setrlimit" | "prlimit64", libc::EPERM) => {
            let resource = if f.syscall == "setrlimit" {
                args[0]
            } else {
                args[1]
            };
            let name = RLIMITS
                .get(resource as usize)
                .copied()
                .unwrap_or("RLIMIT_?");
            let hard = match (resource, ctx.refusal.nofile) {
                (7, Some(n)) => n
                    .hard
                    .map_or(String::new(), |h| format!(" (its hard limit is {h})")),
                _ => String::new(),
            };
            Some((
                format!("{}({name})", f.syscall),
                CAP_SYS_RESOURCE,
                format!("raising the hard limit of {name} above its current value needs CAP_SYS_RESOURCE{hard}"),
            ))
        }
        ("socket", libc::EPERM)
            if matches!(args[1] & 0xf, 3 | 10) || args[0] == libc::AF_PACKET as u64 =>
        {
            Some((
                format!("socket({}, SOCK_RAW, {})", args[0], args[2]),
                CAP_NET_RAW,
                "a raw or packet socket needs CAP_NET_RAW".into(),
            ))
        }
        _ => whatever_the_target(f),
    }
}

/// An EPERM from a call that needs one capability whatever its target (capabilities(7)).
fn whatever_the_target(f: &Failure) -> Option<(String, u32, String)> {
    // Numbers of capability.h.
    const CHOWN: u32 = 0;
    const SYS_MODULE: u32 = 16;
    const SYS_CHROOT: u32 = 18;
    const SYS_BOOT: u32 = 22;
    const SYS_TIME: u32 = 25;
    const MKNOD: u32 = 27;
    if f.errno != libc::EPERM {
        return None;
    }
    let cap = match f.syscall.as_str() {
        "sethostname" | "setdomainname" | "mount" | "umount2" | "pivot_root" | "swapon"
        | "swapoff" => crate::context::process::CAP_SYS_ADMIN,
        // To another owner; an owner's chgrp to its own group needs none, but then no EPERM.
        "chown" | "fchown" | "lchown" | "fchownat" => CHOWN,
        "chroot" => SYS_CHROOT,
        "mknod" | "mknodat" => MKNOD,
        "settimeofday" | "clock_settime" | "adjtimex" | "clock_adjtime" => SYS_TIME,
        "init_module" | "finit_module" | "delete_module" => SYS_MODULE,
        "reboot" => SYS_BOOT,
        _ => return None,
    };
    Some((
        f.syscall.clone(),
        cap,
        format!("{} is refused without {}", f.syscall, cap_name(cap)),
    ))
}

pub(super) fn check(f: &Failure, ctx: &FailureContext, mut a: Attribution) -> Option<Attribution> {
    let (call, cap, why) = needed(f, ctx)?;
    let p = ctx.process.as_ref().filter(|p| !p.from_event);
    let name = cap_name(cap);
    let kernel_said = f.evidence.denied_capability == Some(cap);
    if p.is_some_and(|p| p.has_cap(cap)) && !kernel_said {
        a.exclude(Layer::Capability, format!("the process holds {name}"));
        return None;
    }
    let bounding = p.map(|p| p.cap_bounding & (1 << cap) != 0);
    let held = match bounding {
        Some(false) => format!(
            "{name} is in neither the effective nor the bounding set, so no exec can regain it"
        ),
        Some(true) => format!("{name} is not in the effective set (it is in the bounding set)"),
        None => "the process had exited: its capabilities were not read".to_string(),
    };
    let (confidence, source) = if kernel_said {
        (
            Confidence::Direct,
            format!("; cap_capable refused {name} during the call"),
        )
    } else {
        (Confidence::Inferred, String::new())
    };
    a.decoded = Some(format!("{call} needs {name}"));
    a.fix = Some(match bounding {
        Some(false) => format!("Keep {name} in the process's bounding set (do not drop it: --cap-add {}, remove capsh --drop / setpriv --bounding-set), or avoid {call}.", name.trim_start_matches("CAP_")),
        _ => format!("Grant {name} to the process (--cap-add {}, AmbientCapabilities={name}, setcap on the binary), or avoid {call}.", name.trim_start_matches("CAP_")),
    });
    Some(a.decide(
        Layer::Capability,
        confidence,
        format!("{call}: {why}; {held}{source}"),
    ))
}
