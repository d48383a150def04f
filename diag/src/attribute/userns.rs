//! User and other namespaces: creation refused by a limit (ENOSPC at user.max_*_namespaces),
//! by kernel.unprivileged_userns_clone or AppArmor, and gid_map written before setgroups was
//! set to "deny".

use super::{fd_limits::read_sysctl, Attribution};
use crate::context::{FailureContext, HostFacts};
use crate::model::{flags::CLONE_NEWUSER, Confidence, Failure, Layer};

/// Namespace flags and the `user.*` sysctl that limits each.
const NAMESPACE_LIMITS: &[(u64, &str)] = &[
    (CLONE_NEWUSER, "max_user_namespaces"),
    (0x20000, "max_mnt_namespaces"),
    (0x2000000, "max_cgroup_namespaces"),
    (0x4000000, "max_uts_namespaces"),
    (0x8000000, "max_ipc_namespaces"),
    (0x20000000, "max_pid_namespaces"),
    (0x40000000, "max_net_namespaces"),
];

pub(super) fn is_userns_call(f: &Failure) -> bool {
    let newuser = f.flags.is_some_and(|fl| fl & CLONE_NEWUSER != 0);
    (matches!(f.syscall.as_str(), "unshare" | "clone") && newuser)
        || f.path.as_ref().is_some_and(|p| {
            p.contains("uid_map") || p.contains("gid_map") || p.contains("setgroups")
        })
}

pub(super) fn check(
    f: &Failure,
    ctx: &FailureContext,
    a: Attribution,
    host: &HostFacts,
) -> Option<Attribution> {
    let creating = matches!(f.syscall.as_str(), "unshare" | "clone" | "clone3");
    if creating && f.errno == libc::ENOSPC {
        return Some(limit_reached(f, ctx, a));
    }
    if is_userns_call(f) {
        return refused(f, a, host);
    }
    None
}

/// ENOSPC from creating a namespace: a `user.max_*_namespaces` count (checked in the creating
/// user namespace and each of its ancestors) or the nesting depth of 32.
fn limit_reached(f: &Failure, ctx: &FailureContext, mut a: Attribution) -> Attribution {
    let flags = f.flags.unwrap_or(0);
    let limits: Vec<&str> = NAMESPACE_LIMITS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|&(_, name)| name)
        .collect();
    // clone3 carries its flags in a struct: name the user namespace limit, the usual one.
    let named = if limits.is_empty() {
        vec!["max_user_namespaces"]
    } else {
        limits
    };
    let values: Vec<String> = named
        .iter()
        .map(|n| format!("user.{n} = {}", read_sysctl(&format!("user/{n}"))))
        .collect();
    let nested = ctx.refusal.namespaces.is_some_and(|n| n.own_userns);
    let layer = if named.contains(&"max_user_namespaces") {
        Layer::Userns
    } else {
        Layer::Sysctl
    };
    let why = format!(
        "{} returned ENOSPC: creating the namespace would exceed user.{} (counted per user in the creating user namespace and each ancestor) or the nesting depth of 32; in diag's namespace {}{}",
        f.syscall,
        named.join(" / user."),
        values.join(", "),
        if nested { "; the process runs in a user namespace of its own, whose value (set there) diag cannot read" } else { "" }
    );
    let where_ = if nested {
        " in the user namespace the program runs in (its parent set it there) and on the host"
    } else {
        ""
    };
    a.fix = Some(format!(
        "Raise user.{} above 0{where_} (sysctl -w user.{}=15000; persist in /etc/sysctl.d/).",
        named[0], named[0]
    ));
    a.decide(layer, Confidence::Inferred, why)
}

fn refused(f: &Failure, mut a: Attribution, host: &HostFacts) -> Option<Attribution> {
    let sysctl = |n: &str| read_sysctl(n).parse::<i64>().ok();
    let path = f.path.as_ref().map(|p| p.lossy()).unwrap_or_default();
    if path.ends_with("gid_map") && f.errno == libc::EPERM {
        // "/proc/self/..." names the writer's own files.
        let own = format!("/proc/{}/", f.origin.pid);
        let setgroups = path
            .replace("/proc/self/", &own)
            .replace("/proc/thread-self/", &own);
        let setgroups = setgroups.trim_end_matches("gid_map").to_string() + "setgroups";
        let value = std::fs::read_to_string(&setgroups)
            .ok()
            .map(|s| s.trim().to_string());
        if let Some(v) = value.filter(|v| v == "allow") {
            let why = format!("{setgroups} is \"{v}\": a gid_map written without CAP_SETGID in the parent namespace is refused until \"deny\" is written to setgroups first");
            a.fix = Some(format!("Write \"deny\" to {setgroups} before writing gid_map (as unshare --map-root-user and bwrap do)."));
            return Some(a.decide(Layer::Userns, Confidence::Inferred, why));
        }
    }
    if sysctl("user/max_user_namespaces") == Some(0) {
        a.fix = Some(
            "Raise user.max_user_namespaces above 0 (sysctl -w user.max_user_namespaces=15000)."
                .into(),
        );
        return Some(a.decide(
            Layer::Userns,
            Confidence::Inferred,
            "user.max_user_namespaces is 0",
        ));
    }
    let uid = f.origin.uid.unwrap_or(0);
    if uid != 0 && sysctl("kernel/unprivileged_userns_clone") == Some(0) {
        a.fix = Some("Set kernel.unprivileged_userns_clone=1 (sysctl -w kernel.unprivileged_userns_clone=1), or run the program with CAP_SYS_ADMIN.".into());
        return Some(a.decide(
            Layer::Userns,
            Confidence::Inferred,
            format!("kernel.unprivileged_userns_clone is 0 and uid {uid} is unprivileged"),
        ));
    }
    if host.has_lsm("apparmor") && sysctl("kernel/apparmor_restrict_unprivileged_userns") == Some(1)
    {
        return Some(a.decide(Layer::Apparmor, Confidence::Inferred, "kernel.apparmor_restrict_unprivileged_userns is 1: AppArmor restricts unprivileged user namespaces"));
    }
    None
}
