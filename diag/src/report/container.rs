//! The traced container in the report, and fixes said in its engine's terms (`docker run
//! --cap-add ...`, a seccomp profile patch, a Kubernetes `securityContext`).

use super::model::{Container, FailureEntry, Finding, Report};
use crate::model::Layer;

impl Report {
    /// Names the traced container and says each finding's fix as its engine would take it.
    pub fn set_container(&mut self, container: Option<Container>) {
        let Some(c) = container else { return };
        for f in &mut self.findings {
            let failures: Vec<&FailureEntry> = f
                .failures
                .iter()
                .filter_map(|&i| self.failures.get(i))
                .collect();
            if failures.iter().all(|e| e.engine_plumbing.is_some()) {
                continue;
            }
            if let Some(fix) = engine_fix(&c, f, &failures) {
                f.fix = format!("{fix}. Outside the engine: {}", f.fix);
            }
        }
        self.container = Some(c);
    }
}

/// Calls moby's default seccomp profile allows only with CAP_SYS_ADMIN.
const SYS_ADMIN_GATED: &[&str] = &[
    "mount",
    "umount2",
    "unshare",
    "setns",
    "sethostname",
    "setdomainname",
    "pivot_root",
    "fsopen",
    "fsmount",
    "fsconfig",
    "move_mount",
    "open_tree",
];

/// The engine's CLI (`docker`, `podman`, `nerdctl`), or None where pods are the unit.
fn cli(c: &Container) -> Option<&'static str> {
    match c.engine.as_str() {
        "docker" => Some("docker"),
        "podman" => Some("podman"),
        "containerd" => Some("nerdctl"),
        _ => None,
    }
}

/// `CAP_SYS_ADMIN` named in the finding's evidence.
fn denied_capability(f: &Finding, failures: &[&FailureEntry]) -> Option<String> {
    f.evidence
        .iter()
        .chain(failures.iter().flat_map(|e| e.evidence.iter()))
        .find_map(|ev| crate::explain::capability_named(ev))
}

/// `--pids-limit`'s new value: twice the limit met.
fn higher_pids_limit(c: &Container) -> Option<u64> {
    c.confinement.pids_max.map(|m| m * 2)
}

/// Whether the default profile would allow `syscall` with CAP_SYS_ADMIN, which the container
/// lacks.
fn sys_admin_would_do(c: &Container, syscall: &str) -> bool {
    c.confinement.seccomp_profile.as_deref() == Some("default")
        && SYS_ADMIN_GATED.contains(&syscall)
        && !c
            .confinement
            .capabilities
            .iter()
            .any(|k| k == "CAP_SYS_ADMIN")
}

/// The workload's top finding and its failures (the engine's own findings are skipped).
fn workload_finding(r: &Report) -> Option<(&Finding, Vec<&FailureEntry>)> {
    r.findings.iter().find_map(|f| {
        let failures: Vec<&FailureEntry> = f
            .failures
            .iter()
            .filter_map(|&i| r.failures.get(i))
            .collect();
        (!failures.iter().all(|e| e.engine_plumbing.is_some())).then_some((f, failures))
    })
}

/// The run flags that apply the top workload finding's fix where flags alone do it (a
/// capability, the pids limit), for `--verify-fix`.
pub fn verify_flags(r: &Report) -> Option<Vec<String>> {
    let c = r.container.as_ref()?;
    cli(c)?;
    let (f, failures) = workload_finding(r)?;
    let syscall = failures.first()?.syscall.as_str();
    match f.layer {
        Layer::Capability => Some(vec![
            "--cap-add".into(),
            denied_capability(f, &failures)?
                .trim_start_matches("CAP_")
                .into(),
        ]),
        Layer::Seccomp if sys_admin_would_do(c, syscall) => {
            Some(vec!["--cap-add".into(), "SYS_ADMIN".into()])
        }
        Layer::CgroupPids => Some(vec![
            "--pids-limit".into(),
            higher_pids_limit(c)?.to_string(),
        ]),
        _ => None,
    }
}

fn engine_fix(c: &Container, f: &Finding, failures: &[&FailureEntry]) -> Option<String> {
    let first = failures.first()?;
    let path = first.path.as_ref().map(|p| p.escaped());
    let syscall = first.syscall.as_str();
    let (flag, k8s) = match f.layer {
        Layer::Capability => {
            let cap = denied_capability(f, failures)?;
            let short = cap.trim_start_matches("CAP_").to_string();
            (
                format!("--cap-add {short}"),
                format!(
                    "In the pod spec: securityContext: {{capabilities: {{add: [\"{short}\"]}}}}"
                ),
            )
        }
        Layer::Seccomp => {
            let rule = if syscall == "clone3" {
                // glibc falls back to clone on ENOSYS; EPERM makes it give up.
                format!("{{\"names\": [\"{syscall}\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 38}}")
            } else {
                format!("{{\"names\": [\"{syscall}\"], \"action\": \"SCMP_ACT_ALLOW\"}}")
            };
            let default = c.confinement.seccomp_profile.as_deref() == Some("default");
            let profile = if default {
                "the engine's default profile (moby's profiles/seccomp/default.json)"
            } else {
                "the container's seccomp profile"
            };
            // The default profile allows these to a container granted CAP_SYS_ADMIN.
            let with_cap = default
                && SYS_ADMIN_GATED.contains(&syscall)
                && !c
                    .confinement
                    .capabilities
                    .iter()
                    .any(|k| k == "CAP_SYS_ADMIN");
            let or_cap = if with_cap {
                " (or --cap-add SYS_ADMIN: the default profile allows it then)"
            } else {
                ""
            };
            (
                format!("--security-opt seccomp=PROFILE.json{or_cap}, where PROFILE.json is {profile} with this rule added to \"syscalls\": {rule}"),
                "In the pod spec: securityContext: {seccompProfile: {type: Localhost, localhostProfile: PROFILE.json}}".into(),
            )
        }
        Layer::CgroupPids => {
            let limit =
                higher_pids_limit(c).map_or("a higher limit".to_string(), |m| m.to_string());
            (
                format!("--pids-limit {limit}"),
                "On the node: the kubelet's podPidsLimit (KubeletConfiguration), or fewer processes in the pod".into(),
            )
        }
        Layer::RlimitNproc => (
            "--ulimit nproc=HIGHER".into(),
            "On the node: the container runtime's default ulimits".into(),
        ),
        Layer::MountNoexec => {
            let dir = mount_of(c, path.as_deref()?)?;
            (
                format!("--tmpfs {dir}:exec"),
                format!("In the pod spec: an emptyDir volume mounted at {dir}"),
            )
        }
        Layer::MountRo => {
            let dir = path.as_deref().and_then(parent_dir)?;
            let flag = match (c.confinement.read_only_rootfs, dir) {
                (true, "/") => {
                    "without --read-only (the workload writes to the root directory)".to_string()
                }
                (true, _) => {
                    format!("--tmpfs {dir} (the root filesystem is read-only: --read-only)")
                }
                (false, _) => format!("a writable mount at {dir} (-v or --tmpfs)"),
            };
            (
                flag,
                format!("In the pod spec: an emptyDir volume at {dir}, or securityContext: {{readOnlyRootFilesystem: false}}"),
            )
        }
        _ if path.as_deref().is_some_and(|p| p.starts_with("/dev/")) && first.errno == "EPERM" => {
            let dev = path?;
            (
                format!("--device {dev}"),
                format!("In the pod spec: a device plugin's resource exposing {dev}, or securityContext: {{privileged: true}}"),
            )
        }
        _ => return None,
    };
    Some(match cli(c) {
        Some(cli) => format!("In {}: {cli} run {flag}", c.engine),
        None => k8s,
    })
}

/// The restricted mount holding `path`, from the container's own mount table.
fn mount_of(c: &Container, path: &str) -> Option<String> {
    c.confinement
        .restricted_mounts
        .iter()
        .map(|m| m.path.escaped())
        .filter(|m| path == m || path.starts_with(&format!("{}/", m.trim_end_matches('/'))))
        .max_by_key(|m| m.len())
}

fn parent_dir(path: &str) -> Option<&str> {
    let (dir, _) = path.rsplit_once('/')?;
    Some(if dir.is_empty() { "/" } else { dir })
}

#[cfg(test)]
mod tests {
    use crate::model::{Layer, Text};
    use crate::report::fixture::sample;
    use crate::report::model::Report;

    /// The sample report with its first finding (failure 0) turned into `layer`, `syscall`,
    /// `evidence`, in a container of `engine`.
    fn fixed(engine: &str, layer: Layer, syscall: &str, evidence: &str) -> String {
        let mut r: Report = sample();
        let mut c = r.container.take().unwrap();
        c.engine = engine.into();
        r.failures[0].syscall = syscall.into();
        r.failures[0].path = Some(Text::from("/scratch/b"));
        r.findings[0].layer = layer;
        r.findings[0].evidence = vec![evidence.into()];
        r.findings[0].fix = "HOST FIX".into();
        r.set_container(Some(c));
        r.findings[0].fix.clone()
    }

    #[test]
    fn fixes_in_the_engines_terms() {
        let cap = fixed(
            "docker",
            Layer::Capability,
            "mount",
            "cap_capable refused CAP_SYS_ADMIN",
        );
        assert_eq!(
            cap,
            "In docker: docker run --cap-add SYS_ADMIN. Outside the engine: HOST FIX"
        );
        let pod = fixed("kubernetes", Layer::Capability, "mount", "CAP_NET_ADMIN");
        assert!(
            pod.starts_with(
                "In the pod spec: securityContext: {capabilities: {add: [\"NET_ADMIN\"]}}"
            ),
            "{pod}"
        );
        // A pod's pids limit is the kubelet's, not the pod spec's.
        let pod_pids = fixed("kubernetes", Layer::CgroupPids, "clone", "");
        assert!(
            pod_pids.starts_with("On the node: the kubelet's podPidsLimit"),
            "{pod_pids}"
        );
        let clone3 = fixed("podman", Layer::Seccomp, "clone3", "");
        assert!(clone3.contains("\"errnoRet\": 38"), "{clone3}");
        // The fixture's pids.max is 50; its mount list has no /scratch: no noexec fix is made up.
        let pids = fixed("containerd", Layer::CgroupPids, "clone", "");
        assert!(
            pids.starts_with("In containerd: nerdctl run --pids-limit 100"),
            "{pids}"
        );
        assert_eq!(
            fixed("docker", Layer::MountNoexec, "execve", ""),
            "HOST FIX"
        );
    }

    #[test]
    fn the_engines_own_findings_keep_their_fix() {
        let mut r: Report = sample();
        let c = r.container.take();
        for f in &mut r.failures {
            f.engine_plumbing = Some("runc".into());
        }
        r.findings[0].layer = Layer::Capability;
        r.findings[0].evidence = vec!["CAP_SYS_ADMIN".into()];
        let before = r.findings[0].fix.clone();
        r.set_container(c);
        assert_eq!(r.findings[0].fix, before);
        assert!(r.container.is_some());
    }
}
