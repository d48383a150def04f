//! A setuid/setgid or file-capability program that ran without its privilege: exec succeeds
//! under no_new_privs or from a nosuid mount, but the kernel grants nothing, so a later call
//! that needed the privilege fails (ping's socket EPERM).

use super::{cap_names, Attribution};
use crate::context::{refusal::Program, FailureContext};
use crate::model::{Confidence, Failure, Layer};

pub(super) fn check(f: &Failure, ctx: &FailureContext, mut a: Attribution) -> Option<Attribution> {
    if !matches!(f.errno, libc::EPERM | libc::EACCES) {
        return None;
    }
    let program = ctx
        .refusal
        .program
        .as_ref()
        .filter(|p| p.grants_privilege())?;
    let p = ctx
        .process
        .as_ref()
        .filter(|p| !p.from_event || p.at_failure)?;
    let meant = meant_privilege(program);
    let file_caps = program.facts.file_caps.map_or(0, |c| c.permitted);
    let lacks_caps = file_caps != 0 && p.cap_effective & file_caps != file_caps;
    let lacks_uid = program.setuid && p.euid != program.facts.uid;
    let lacks_gid = program.setgid && p.egid != program.facts.gid;
    if !(lacks_caps || lacks_uid || lacks_gid) {
        return None;
    }
    // The refused capability, when the kernel named it, must be one the file was to grant.
    if let Some(cap) = f.evidence.denied_capability {
        if file_caps != 0 && file_caps & (1 << cap) == 0 && !program.setuid {
            return None;
        }
    }
    let exe = program.facts.path.display().to_string();
    let held = format!(
        "the process runs {exe}, which carries {meant}, yet its effective capabilities are {:#x} and its euid {}",
        p.cap_effective, p.euid
    );
    if p.no_new_privs == Some(true) {
        let why = format!("{held}: no_new_privs is set (NoNewPrivs: 1), so execve granted none of it and {} failed without it", f.syscall);
        a.fix = Some(no_new_privs_fix(&meant, &exe));
        return Some(a.decide(Layer::NoNewPrivs, Confidence::Inferred, why));
    }
    a.exclude(
        Layer::NoNewPrivs,
        "NoNewPrivs is 0: execve may raise privilege",
    );
    let mount = program.facts.mount.as_ref().filter(|m| m.nosuid)?;
    let why = format!(
        "{held}: {exe} is on {} ({}), mounted nosuid, so execve ignored its setuid bit and file capabilities and {} failed without them",
        mount.mount_point.display(),
        mount.fs_type,
        f.syscall
    );
    a.fix = Some(format!(
        "Run {exe} from a filesystem mounted without nosuid (mount -o remount,suid {}; firejail: keep it out of --private-bin), or grant {meant} to the process itself.",
        mount.mount_point.display()
    ));
    Some(a.decide(Layer::MountNosuid, Confidence::Inferred, why))
}

fn no_new_privs_fix(meant: &str, exe: &str) -> String {
    format!("Drop no_new_privs for this program (remove security_opt no-new-privileges / --security-opt no-new-privileges, NoNewPrivileges= in the unit, setpriv --no-new-privs), or grant {meant} to the process itself (e.g. --cap-add, AmbientCapabilities=) so {exe} need not raise it.")
}

fn meant_privilege(program: &Program) -> String {
    let mut parts = vec![];
    if program.setuid {
        parts.push(format!("setuid {}", program.facts.uid));
    }
    if program.setgid {
        parts.push(format!("setgid {}", program.facts.gid));
    }
    if let Some(c) = program.facts.file_caps.filter(|c| c.permitted != 0) {
        parts.push(format!("file capabilities {}", cap_names(c.permitted)));
    }
    parts.join(" and ")
}

/// The process exited before its credentials could be read, but the kernel named the refused
/// capability and the program it exec'd carries it as a file capability (read in diag's own
/// view): execve should have granted it, so no_new_privs or a nosuid mount is the likelier
/// layer. Neither can be told apart, or proven, without the process.
pub(super) fn check_exited(
    f: &Failure,
    ctx: &FailureContext,
    exe: Option<&crate::model::Text>,
    mut a: Attribution,
) -> Option<Attribution> {
    let cap = f.evidence.denied_capability?;
    if f.errno != libc::EPERM || ctx.process.as_ref().is_some_and(|p| !p.from_event) {
        return None;
    }
    let exe = exe?.lossy();
    let caps = crate::context::filecaps::read(std::path::Path::new(&exe))?;
    if caps.permitted & (1 << cap) == 0 {
        return None;
    }
    let name = crate::context::process::cap_name(cap);
    // The kernel's no_new_privs and the executable's mount at the failure settle which of the
    // two kept the grant away.
    let held = format!(
        "cap_capable refused {name} during the call; the program {exe} carries file capabilities {} (read in diag's own view: the process had exited)",
        cap_names(caps.permitted)
    );
    match f.at_failure.as_deref() {
        Some(k) if k.no_new_privs => {
            let why = format!("{held}, and the kernel saw no_new_privs set on the process at the failure, so execve granted none of them");
            a.fix = Some(no_new_privs_fix(
                &format!("file capabilities {}", cap_names(caps.permitted)),
                &exe,
            ));
            return Some(a.decide(Layer::NoNewPrivs, Confidence::Inferred, why));
        }
        Some(k) if k.exe_mount.is_some_and(|m| m.nosuid) => {
            let why = format!("{held}, and the kernel saw the program's file on a nosuid mount at the failure, so execve ignored them");
            a.fix = Some(format!(
                "Run {exe} from a filesystem mounted without nosuid (firejail: keep it out of --private-bin), or grant {name} to the process itself (--cap-add {}).",
                name.trim_start_matches("CAP_")
            ));
            return Some(a.decide(Layer::MountNosuid, Confidence::Inferred, why));
        }
        _ => {}
    }
    a.evidence.push(format!(
        "cap_capable refused {name} during the call, yet the program {exe} carries file capabilities {} (read in diag's own view: the process had exited), so its exec should have granted {name}: no_new_privs or a nosuid mount kept it from doing so",
        cap_names(caps.permitted)
    ));
    a.candidates = vec![Layer::NoNewPrivs, Layer::MountNosuid, Layer::Capability];
    a.fix = Some(format!(
        "Let execve grant {exe} its file capability {name}: drop no_new_privs (security_opt no-new-privileges, NoNewPrivileges=, setpriv --no-new-privs) and run it from a mount without nosuid; or grant {name} to the process itself (--cap-add {}).",
        name.trim_start_matches("CAP_")
    ));
    Some(a)
}
