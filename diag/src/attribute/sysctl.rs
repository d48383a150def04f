//! Sysctls that refuse a call outright, named with their current values:
//! net.ipv4.ping_group_range (ICMP datagram sockets), kernel.perf_event_paranoid and
//! kernel.yama.ptrace_scope.

use super::{fd_limits::read_sysctl, Attribution};
use crate::context::{process::ProcessContext, refusal, FailureContext};
use crate::model::{Confidence, Failure, Layer};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_PERFMON: u32 = 38;
const PTRACE_ATTACH: u64 = 16;
const PTRACE_SEIZE: u64 = 0x4206;

pub(super) fn check(f: &Failure, ctx: &FailureContext, mut a: Attribution) -> Option<Attribution> {
    let p = ctx.process.as_ref().filter(|p| !p.from_event);
    match (f.syscall.as_str(), f.errno) {
        ("socket", libc::EACCES) if refusal::is_icmp_dgram(f.args) => {
            let (range, whose) = match &ctx.refusal.ping_group_range {
                Some(r) => (r.clone(), "in the process's network namespace"),
                None => (
                    read_sysctl("net/ipv4/ping_group_range"),
                    "in diag's network namespace (the process's could not be read)",
                ),
            };
            let gid = p.map_or(f.origin.gid.unwrap_or(0), |p| p.egid);
            let why = format!("socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) returns EACCES when the caller's groups are outside net.ipv4.ping_group_range: it is \"{range}\" {whose}, and the process's gid is {gid}");
            a.fix = Some(format!("Allow unprivileged ICMP sockets for the program's group: sysctl -w net.ipv4.ping_group_range=\"0 2147483647\" (in the container: --sysctl net.ipv4.ping_group_range=\"0 2147483647\"); it is \"{range}\" now."));
            Some(a.decide(Layer::Sysctl, Confidence::Inferred, why))
        }
        ("perf_event_open", libc::EACCES | libc::EPERM) => {
            let level = read_sysctl("kernel/perf_event_paranoid");
            let privileged = p.is_some_and(|p| p.has_cap(CAP_PERFMON) || p.has_cap(CAP_SYS_ADMIN));
            if privileged || level.parse::<i32>().is_ok_and(|l| l < 1) {
                return None;
            }
            let why = format!("kernel.perf_event_paranoid is {level} and the process holds neither CAP_PERFMON nor CAP_SYS_ADMIN");
            a.fix = Some(format!("Lower kernel.perf_event_paranoid (sysctl -w kernel.perf_event_paranoid=1; it is {level}), or grant CAP_PERFMON."));
            Some(a.decide(Layer::Sysctl, Confidence::Inferred, why))
        }
        ("ptrace", libc::EPERM)
            if f.args
                .is_some_and(|x| matches!(x[0], PTRACE_ATTACH | PTRACE_SEIZE)) =>
        {
            ptrace_scope(p, a)
        }
        _ => None,
    }
}

fn ptrace_scope(p: Option<&ProcessContext>, mut a: Attribution) -> Option<Attribution> {
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok()?;
    let scope = scope.trim().to_string();
    let privileged = p.is_some_and(|p| p.has_cap(CAP_SYS_PTRACE));
    let refuses = match scope.as_str() {
        "0" => false,
        "1" | "2" => !privileged,
        _ => true,
    };
    if !refuses {
        a.exclude(
            Layer::Sysctl,
            format!("kernel.yama.ptrace_scope is {scope}, which allows this attach"),
        );
        return None;
    }
    let why = format!("kernel.yama.ptrace_scope is {scope}: attaching to a process that is not a descendant needs CAP_SYS_PTRACE{}", if scope == "3" { " and scope 3 forbids it to everyone" } else { "" });
    a.fix = Some(format!("Run the debugger as the target's parent, grant CAP_SYS_PTRACE, or lower kernel.yama.ptrace_scope (sysctl -w kernel.yama.ptrace_scope=0; it is {scope})."));
    Some(a.decide(Layer::Sysctl, Confidence::Inferred, why))
}
