//! Kubernetes pods on this node: from `NAMESPACE/NAME` to the pod's uid, through the CRI
//! (`crictl`) where it answers, else the kubelet's log directory `/var/log/pods/NS_NAME_UID`;
//! and from the uid to the pod's cgroup by the kubelet's naming (cgroupfs
//! `kubepods/QOS/podUID/CONTAINER`, systemd `kubepods-QOS-podUID_WITH_UNDERSCORES.slice/...`).

use super::container::{engine_program, from_pid, hex_id_in_path, on_path, Container};
use crate::context::cgroup::Mounts;
use crate::model::Text;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Where the kubelet keeps each pod's logs, one `NAMESPACE_NAME_UID` directory a pod.
const KUBELET_POD_LOGS: &str = "/var/log/pods";

/// The pod a report's container object describes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pod {
    pub namespace: Text,
    pub name: Text,
    pub uid: Text,
    /// Its containers running now (the sandbox's pause container included).
    pub containers: Vec<PodContainer>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PodContainer {
    pub id: Text,
    /// From the CRI, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Text>,
}

/// `NAMESPACE/NAME`: a DNS label and a DNS subdomain (checked before either reaches crictl).
fn parse_selector(s: &str) -> Result<(&str, &str)> {
    let ok = |part: &str, max: usize, dots: bool| {
        !part.is_empty()
            && part.len() <= max
            && part.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || (dots && b == b'.')
            })
            && part.as_bytes()[0].is_ascii_alphanumeric()
            && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
    };
    match s.split_once('/') {
        Some((ns, name)) if ok(ns, 63, false) && ok(name, 253, true) => Ok((ns, name)),
        _ => bail!(
            "--pod {}: not NAMESPACE/NAME (lowercase letters, digits, '-', and '.' in the name)",
            crate::model::text::escape(s)
        ),
    }
}

/// Finds the pod on this node and what the report says of it.
pub fn resolve(selector: &str) -> Result<Container> {
    let (ns, name) = parse_selector(selector)?;
    find(ns, name).map_err(|e| anyhow!("--pod {selector}: {e:#}"))
}

fn find(ns: &str, name: &str) -> Result<Container> {
    let cri = if on_path("crictl") {
        by_cri(ns, name)?
    } else {
        None
    };
    let (uid, cgroup, cri_containers, found_by) = match cri {
        Some((uid, containers, sandbox)) => {
            let cgroup = pod_cgroup(&uid).with_context(|| format!("uid {uid}"))?;
            (
                uid,
                cgroup,
                containers,
                format!("crictl pods (sandbox {sandbox})"),
            )
        }
        None => {
            let (uid, cgroup) = by_log_dir(ns, name)?;
            (
                uid,
                cgroup,
                vec![],
                format!("{KUBELET_POD_LOGS}/{ns}_{name}_UID"),
            )
        }
    };
    let mut containers: Vec<PodContainer> = cgroup
        .containers
        .keys()
        .map(|id| {
            let cri = cri_containers
                .iter()
                .find(|c: &&PodContainer| c.id.lossy() == *id);
            cri.cloned().unwrap_or(PodContainer {
                id: Text::from(id.as_str()),
                name: None,
                image: None,
            })
        })
        .collect();
    containers.sort_by_key(|c| c.id.lossy());
    // Confinement is read from a workload process (not the sandbox's pause, not the engine's),
    // else any: the first that is still there (a crash-looping pod's can be gone already).
    let is_workload = |pid: u32| {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        comm.trim() != "pause" && engine_program(comm.trim()).is_none()
    };
    let mut candidates: Vec<(bool, u32, &String)> = cgroup
        .containers
        .iter()
        .flat_map(|(id, pids)| pids.iter().map(move |&p| (!is_workload(p), p, id)))
        .collect();
    candidates.sort();
    let (mut c, pid, id) = candidates
        .into_iter()
        .find_map(|(_, pid, id)| Some((from_pid(pid, "kubernetes", uid.clone()).ok()?, pid, id)))
        .context("the pod has no process")?;
    c.cgroup = Text::new(cgroup.dir.as_os_str().as_bytes());
    c.name = Some(Text::from(format!("{ns}/{name}")));
    c.image = containers
        .iter()
        .find(|k| k.id.lossy() == *id)
        .and_then(|k| k.image.clone());
    c.found_by = format!(
        "{found_by}, then the kubepods cgroup naming (pod{uid}); confinement read from pid {pid}"
    );
    c.pod = Some(Pod {
        namespace: Text::from(ns),
        name: Text::from(name),
        uid: Text::from(uid.as_str()),
        containers,
    });
    Ok(c)
}

/// A pod uid as the kubelet writes it (a UUID).
fn is_uid(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The uid of the running pod `ns/name` by its log directory, with its cgroup; a name reused
/// by a new pod leaves the old directory until the kubelet collects it: the one with processes
/// is the pod.
fn by_log_dir(ns: &str, name: &str) -> Result<(String, PodCgroup)> {
    let prefix = format!("{ns}_{name}_");
    let dir = std::fs::read_dir(KUBELET_POD_LOGS).with_context(|| {
        format!("no CRI (crictl) and no {KUBELET_POD_LOGS}: is this a Kubernetes node?")
    })?;
    let uids: Vec<String> = dir
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let uid = n.strip_prefix(&prefix)?;
            is_uid(uid).then(|| uid.to_string())
        })
        .collect();
    let mut alive = uids
        .iter()
        .filter_map(|u| Some((u.clone(), pod_cgroup(u).ok()?)));
    match (alive.next(), alive.next(), uids.first()) {
        (Some(found), None, _) => Ok(found),
        (Some(_), Some(_), _) => bail!("more than one running pod with that name ({KUBELET_POD_LOGS})"),
        (None, _, Some(uid)) => bail!("{KUBELET_POD_LOGS}/{prefix}{uid} is there, but no process runs in a cgroup of that pod"),
        (None, _, None) => bail!("no pod of that name on this node (no {KUBELET_POD_LOGS}/{prefix}UID)"),
    }
}

/// The pod's uid, its containers and its sandbox id, from the CRI.
type Cri = (String, Vec<PodContainer>, String);

/// The pod's uid and containers from the CRI; None when crictl cannot reach one.
fn by_cri(ns: &str, name: &str) -> Result<Option<Cri>> {
    let Some(pods) = crictl(&["pods", "--namespace", ns, "--name", name, "-o", "json"]) else {
        return Ok(None);
    };
    let (sandbox, uid) = pod_in_cri(&pods, ns, name)?;
    let containers = crictl(&["ps", "--pod", &sandbox, "-o", "json"])
        .map(|v| containers_in_cri(&v))
        .unwrap_or_default();
    Ok(Some((uid, containers, sandbox)))
}

fn crictl(args: &[&str]) -> Option<Value> {
    let out = Command::new("crictl")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// The ready sandbox of `ns/name` in `crictl pods -o json` (its `--name` is a pattern: the
/// exact name is picked here): its id and the pod's uid.
fn pod_in_cri(pods: &Value, ns: &str, name: &str) -> Result<(String, String)> {
    let item = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["metadata"]["name"] == name
                && p["metadata"]["namespace"] == ns
                && p["state"] == "SANDBOX_READY"
        })
        .context("the CRI (crictl pods) knows no ready pod of that name")?;
    let text = |v: &Value| v.as_str().map(str::to_string);
    let uid = text(&item["metadata"]["uid"])
        .filter(|u| is_uid(u))
        .context("crictl pods gave no pod uid")?;
    Ok((
        text(&item["id"]).context("crictl pods gave no sandbox id")?,
        uid,
    ))
}

fn containers_in_cri(ps: &Value) -> Vec<PodContainer> {
    ps["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(Text::from);
            Some(PodContainer {
                id: text(&c["id"])?,
                name: text(&c["metadata"]["name"]),
                image: text(&c["image"]["image"]),
            })
        })
        .collect()
}

/// A pod's cgroup and the processes in it, by container id.
struct PodCgroup {
    /// The pod's directory in the unified hierarchy where its processes have one (v2,
    /// hybrid), else in the v1 pids hierarchy.
    dir: PathBuf,
    containers: BTreeMap<String, Vec<u32>>,
}

/// Segments after the first `kubepods*` one where the pod's can be: `kubepods/pod<uid>`,
/// `kubepods/burstable/pod<uid>`, or the systemd slices' equivalents.
const POD_DEPTH: usize = 3;

/// The pod's cgroup directory named in a `/proc/PID/cgroup` path, relative to the hierarchy's
/// root, and the container id under it: `.../pod<uid>/<id>` (cgroupfs) or
/// `.../kubepods-QOS-pod<uid with _>.slice/<runtime>-<id>.scope` (systemd). Only right under
/// the first `kubepods` segment: a pod's own cgroup tree could hold a `kubepods/pod<uid>` that
/// names another pod.
fn pod_in_path<'a>(path: &'a str, uid: &str) -> Option<(&'a str, Option<String>)> {
    let cgroupfs = format!("pod{uid}");
    let systemd = format!("-pod{}.slice", uid.replace('-', "_"));
    let segs: Vec<&str> = path.split('/').collect();
    let first = segs.iter().position(|s| s.starts_with("kubepods"))?;
    let at = (first..segs.len().min(first + POD_DEPTH)).find(|&i| {
        let seg = segs[i];
        seg == cgroupfs || (seg.starts_with("kubepods") && seg.ends_with(&systemd))
    })?;
    let end = segs[..=at].iter().map(|s| s.len() + 1).sum::<usize>() - 1;
    Some((&path[..end], hex_id_in_path(&path[end..])))
}

fn pod_cgroup(uid: &str) -> Result<PodCgroup> {
    let mounts = Mounts::read();
    let mut dirs: BTreeMap<PathBuf, BTreeMap<String, Vec<u32>>> = BTreeMap::new();
    for p in procfs::process::all_processes()?.flatten() {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{}/cgroup", p.pid)) else {
            continue;
        };
        // The unified line first: eBPF and the report speak of that directory where it exists.
        let mut lines: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
                Some((controllers, path))
            })
            .filter(|(c, _)| c.is_empty() || c.split(',').any(|k| k == "pids"))
            .collect();
        lines.sort_by_key(|(c, _)| !c.is_empty());
        let Some((root, (pod, id))) = lines.iter().find_map(|(c, path)| {
            let root = if c.is_empty() {
                &mounts.v2
            } else {
                &mounts.pids_v1
            };
            Some((root.as_ref()?, pod_in_path(path, uid)?))
        }) else {
            continue;
        };
        // A process in the pod's own directory (no container's) is listed under the pod.
        dirs.entry(root.join(pod.trim_start_matches('/')))
            .or_default()
            .entry(id.unwrap_or_default())
            .or_default()
            .push(p.pid as u32);
    }
    // The kubelet's cgroups are root's; a delegated subtree (a user's systemd session, a
    // container's own cgroupfs) that mimics the naming is not the pod.
    dirs.retain(|dir, _| std::fs::metadata(dir).is_ok_and(|m| m.uid() == 0));
    let mut found = dirs.into_iter();
    let (dir, mut containers) = found
        .next()
        .context("no process runs in a cgroup of that pod (kubepods naming)")?;
    if let Some((other, _)) = found.next() {
        bail!(
            "more than one cgroup claims that pod: {} and {}",
            dir.display(),
            other.display()
        );
    }
    containers.remove("");
    Ok(PodCgroup { dir, containers })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0f3c2a9e-7d41-4b8e-9c1a-2b3c4d5e6f70";
    const ID: &str = "eab49f4ef0bbb1e774668e247c2fbb2b19d3aab596314707ce76739599f7b9fa";

    #[test]
    fn pod_cgroups_in_both_namings() {
        let cgroupfs = format!("/kubepods/burstable/pod{UID}/{ID}");
        assert_eq!(
            pod_in_path(&cgroupfs, UID),
            Some((&cgroupfs[..cgroupfs.len() - 65], Some(ID.to_string())))
        );
        let slice = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
            UID.replace('-', "_")
        );
        for runtime in ["cri-containerd-", "crio-", "docker-"] {
            let path = format!("{slice}/{runtime}{ID}.scope");
            assert_eq!(
                pod_in_path(&path, UID),
                Some((slice.as_str(), Some(ID.to_string()))),
                "{path}"
            );
        }
        assert_eq!(
            pod_in_path(&format!("/kubepods/pod{UID}"), UID).unwrap().1,
            None
        );
        assert_eq!(pod_in_path(&format!("/kubepods/podx{UID}/{ID}"), UID), None);
        assert_eq!(pod_in_path(&format!("/docker/{ID}"), UID), None);
        // A kind node's pods, seen from the host, sit under the node's container.
        let nested = format!("/docker/{ID}/kubepods/pod{UID}/{ID}");
        assert_eq!(
            pod_in_path(&nested, UID).map(|p| p.0),
            Some(&nested[..nested.len() - 65])
        );
        // Another pod's tree that mimics the naming below its own cgroup names that pod, not this.
        let other = "1b2c3d4e-0000-4000-8000-000000000002";
        let planted = format!("/kubepods/burstable/pod{other}/{ID}/kubepods/pod{UID}/{ID}");
        assert_eq!(pod_in_path(&planted, UID), None);
    }

    #[test]
    fn selectors() {
        assert_eq!(
            parse_selector("kube-system/coredns-5d78c9869d-abcde").unwrap(),
            ("kube-system", "coredns-5d78c9869d-abcde")
        );
        assert_eq!(
            parse_selector("default/web.1").unwrap(),
            ("default", "web.1")
        );
        for bad in [
            "foo", "/x", "ns/", "a/b/c", "NS/x", "-n/x", "ns/-x", "ns/x y", "ns.a/x",
        ] {
            assert!(parse_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn crictl_output() {
        let pods = serde_json::json!({"items": [
            {"id": "old", "metadata": {"name": "web", "namespace": "prod", "uid": UID}, "state": "SANDBOX_NOTREADY"},
            {"id": "other", "metadata": {"name": "web-2", "namespace": "prod", "uid": UID}, "state": "SANDBOX_READY"},
            {"id": "sb1", "metadata": {"name": "web", "namespace": "prod", "uid": UID}, "state": "SANDBOX_READY"},
        ]});
        assert_eq!(
            pod_in_cri(&pods, "prod", "web").unwrap(),
            ("sb1".into(), UID.into())
        );
        assert!(pod_in_cri(&pods, "dev", "web").is_err());
        let ps = serde_json::json!({"containers": [
            {"id": ID, "metadata": {"name": "app"}, "image": {"image": "busybox:1"}},
        ]});
        let c = &containers_in_cri(&ps)[0];
        assert_eq!(
            (c.id.lossy(), c.name.as_ref().unwrap().lossy()),
            (ID.to_string(), "app".to_string())
        );
        assert_eq!(c.image.as_ref().unwrap().lossy(), "busybox:1");
    }
}
