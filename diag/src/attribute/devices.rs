//! The devices cgroup: opening a device node that exists fails with EPERM when the cgroup's
//! device rules (v1 devices.deny/devices.allow, v2 a BPF_CGROUP_DEVICE program) leave it out.
//! DAC, a nodev mount and the LSMs refuse opens with EACCES, so an EPERM on a device node that
//! seccomp let through names this layer.

use super::Attribution;
use crate::context::FailureContext;
use crate::model::{syscalls, Confidence, Failure, Layer};

pub(super) fn check(f: &Failure, ctx: &FailureContext, mut a: Attribution) -> Option<Attribution> {
    if f.errno != libc::EPERM || !syscalls::is_open(&f.syscall) {
        return None;
    }
    let d = ctx.refusal.device.as_ref()?;
    let path = ctx.path.as_ref()?.path.display().to_string();
    let rule = format!("{} {}:{} rwm", d.kind, d.major, d.minor);
    let cgroup = match (&d.cgroup, d.v1) {
        (Some(c), true) => format!("; the process is in devices cgroup (v1) {c}"),
        (Some(c), false) => format!(
            "; the process is in cgroup (v2) {c}, where a BPF_CGROUP_DEVICE program decides"
        ),
        (None, _) => "; the process's cgroup could not be read (it had exited)".into(),
    };
    let why = format!(
        "open of {path} (device {}:{}, {}) returned EPERM: file permissions, nodev and the LSMs refuse opens with EACCES; EPERM on an existing device node is the devices cgroup leaving '{rule}' out{cgroup}",
        d.major,
        d.minor,
        if d.kind == 'c' { "character" } else { "block" }
    );
    for (suspect, reason) in [
        (Layer::Dac, "DAC refuses an open with EACCES, not EPERM"),
        (
            Layer::Landlock,
            "Landlock refuses file access with EACCES, never EPERM",
        ),
    ] {
        a.exclude(suspect, reason);
    }
    a.fix = Some(format!(
        "Allow the device {path} ({rule}) in the workload's devices cgroup: docker/podman run --device {path} (or --device-cgroup-rule '{rule}'), a Kubernetes device plugin, systemd DeviceAllow={path} rwm, or echo '{rule}' > devices.allow of the v1 cgroup."
    ));
    Some(a.decide(Layer::CgroupDevices, Confidence::Inferred, why))
}
