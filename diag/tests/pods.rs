//! `diag attach --pod NAMESPACE/NAME` without a cluster: the kubelet's layout is built for real
//! on this host (its `/var/log/pods/NS_NAME_UID` directory, and the pod's cgroups named as the
//! kubelet names them, in the real v1 pids hierarchy and the unified one), with real processes
//! in two containers of the pod and a real pids limit on the pod's cgroup.

mod common;

use common::{diag_command, Scratch};
use diag::context::cgroup::Mounts;
use diag::report::Report;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const NAMESPACE: &str = "diag-test";

/// One pod at a time: the tests share the kubepods directories they create and remove.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Clone, Copy)]
enum Naming {
    /// `kubepods/burstable/pod<uid>/<id>`
    Cgroupfs,
    /// `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope`
    Systemd,
}

/// A pod as the kubelet lays it out; its processes killed and its directories removed on drop.
struct KubeletPod {
    name: String,
    uid: String,
    /// Relative to each hierarchy's root, outermost first.
    pod_dir: PathBuf,
    container_ids: Vec<String>,
    hierarchies: Vec<PathBuf>,
    log_dirs: Vec<PathBuf>,
    /// The test made /var/log/pods (and removes it again).
    made_log_root: bool,
    procs: Vec<Child>,
}

/// Ids unique to this test binary and to each pod of it.
fn serial() -> u32 {
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

fn uid(n: u32) -> String {
    format!(
        "d1a90000-0000-4000-8000-{:04x}{:08x}",
        n,
        std::process::id()
    )
}

fn container_id(n: u32) -> String {
    format!("{:056x}{:08x}", n, std::process::id())
}

impl KubeletPod {
    /// A pod of two containers (a sleeper and `workload`, held until `gate` exists) in
    /// `hierarchies`, with `pids_max` on the pod's cgroup in the v1 pids hierarchy.
    fn new(tag: &str, naming: Naming, hierarchies: Vec<PathBuf>, pids_max: u32) -> Self {
        let name = format!("{tag}-{}", std::process::id());
        let uid = uid(serial());
        let qos = match naming {
            Naming::Cgroupfs => PathBuf::from("kubepods/burstable"),
            Naming::Systemd => PathBuf::from("kubepods.slice/kubepods-burstable.slice"),
        };
        let pod_dir = qos.join(match naming {
            Naming::Cgroupfs => format!("pod{uid}"),
            Naming::Systemd => format!("kubepods-burstable-pod{}.slice", uid.replace('-', "_")),
        });
        // The kubelet's log directory of this pod, and one of an older pod of the same name
        // (deleted, not yet collected).
        let log_dirs: Vec<PathBuf> = [uid.clone(), self::uid(serial())]
            .iter()
            .map(|u| PathBuf::from(format!("/var/log/pods/{NAMESPACE}_{name}_{u}")))
            .collect();
        let made_log_root = !Path::new("/var/log/pods").exists();
        for d in &log_dirs {
            std::fs::create_dir_all(d.join("app")).unwrap();
        }
        let pod = KubeletPod {
            name,
            uid,
            pod_dir,
            container_ids: vec![container_id(serial()), container_id(serial())],
            hierarchies,
            log_dirs,
            made_log_root,
            procs: vec![],
        };
        for h in &pod.hierarchies {
            std::fs::create_dir_all(h.join(&pod.pod_dir)).unwrap();
        }
        std::fs::write(
            pod.hierarchies[0].join(&pod.pod_dir).join("pids.max"),
            pids_max.to_string(),
        )
        .unwrap();
        pod
    }

    fn container_dir(&self, naming: Naming, id: &str) -> PathBuf {
        self.pod_dir.join(match naming {
            Naming::Cgroupfs => id.to_string(),
            Naming::Systemd => format!("cri-containerd-{id}.scope"),
        })
    }

    /// Starts `script` under sh in container `n` of the pod (its cgroups in every hierarchy).
    fn start(&mut self, naming: Naming, n: usize, script: &str) {
        let id = self.container_ids[n].clone();
        let dir = self.container_dir(naming, &id);
        let child = Command::new("sh")
            .args(["-c", script])
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for h in &self.hierarchies {
            std::fs::create_dir_all(h.join(&dir)).unwrap();
            std::fs::write(h.join(&dir).join("cgroup.procs"), child.id().to_string()).unwrap();
        }
        self.procs.push(child);
    }

    fn selector(&self) -> String {
        format!("{NAMESPACE}/{}", self.name)
    }
}

impl Drop for KubeletPod {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        for h in &self.hierarchies {
            let pod = h.join(&self.pod_dir);
            if let Ok(dirs) = std::fs::read_dir(&pod) {
                for d in dirs.flatten().filter(|d| d.path().is_dir()) {
                    remove_cgroup(&d.path());
                }
            }
            // The pod's, then its QoS class's and kubepods' where no other pod is left.
            for dir in pod.ancestors().take(self.pod_dir.components().count()) {
                remove_cgroup(dir);
            }
        }
        for d in &self.log_dirs {
            let _ = std::fs::remove_dir_all(d);
        }
        if self.made_log_root {
            let _ = std::fs::remove_dir("/var/log/pods");
        }
    }
}

/// Removes a cgroup once its last killed process is gone (rmdir fails while one remains).
fn remove_cgroup(dir: &Path) {
    let started = Instant::now();
    while std::fs::remove_dir(dir).is_err()
        && dir.exists()
        && started.elapsed() < Duration::from_secs(3)
        && std::fs::read_dir(dir).is_ok_and(|d| d.flatten().all(|e| !e.path().is_dir()))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The failing workload: four processes of the pod's own (the sleeper is the fifth, the shell
/// the sixth); the inner shell's fork is refused ("Cannot fork").
const WORKLOAD: &str = "sleep 1 & sleep 1 & sleep 1 & sh -c 'sleep 1 & wait'; sleep 0.5";

/// How diag is to find the pod.
#[derive(PartialEq)]
enum Found {
    /// By the kubelet's log directory (no crictl on diag's PATH).
    LogDir,
    /// By a CRI CLI on diag's PATH: a stand-in `crictl` that answers as crictl does for this
    /// pod (no CRI runs here); the cgroups and processes stay real.
    Cri,
}

/// A stand-in `crictl` in `dir` answering `pods` and `ps --pod` for `pod`.
fn stand_in_crictl(dir: &Path, pod: &KubeletPod) {
    let pods = serde_json::json!({"items": [{
        "id": "sandbox-1",
        "metadata": {"name": pod.name, "namespace": NAMESPACE, "uid": pod.uid, "attempt": 0},
        "state": "SANDBOX_READY",
    }]});
    let ps = serde_json::json!({"containers": [
        {"id": pod.container_ids[0], "podSandboxId": "sandbox-1", "metadata": {"name": "sleeper"}, "image": {"image": "registry.k8s.io/pause:3.9"}},
        {"id": pod.container_ids[1], "podSandboxId": "sandbox-1", "metadata": {"name": "app"}, "image": {"image": "busybox:1.36"}},
    ]});
    let script = format!(
        "#!/bin/sh\ncase \"$1 $2 $3\" in\n\
         \"pods --namespace {NAMESPACE}\") echo '{pods}' ;;\n\
         \"ps --pod sandbox-1\") echo '{ps}' ;;\n\
         *) exit 1 ;;\nesac\n"
    );
    let crictl = dir.join("crictl");
    std::fs::write(&crictl, script).unwrap();
    std::fs::set_permissions(&crictl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// Attaches to the pod by NAMESPACE/NAME, opens the gate, and returns the report once the
/// workload has exited.
fn attach_pod(
    naming: Naming,
    hierarchies: Vec<PathBuf>,
    tag: &str,
    found: Found,
) -> (Report, KubeletPod) {
    let scratch = Scratch::new(&format!("pod-{tag}"));
    let gate = scratch.path("go");
    let mut pod = KubeletPod::new(tag, naming, hierarchies, 6);
    // The sandbox's pause container (comm "pause", as the kubelet's is).
    let pause = scratch.path("pause");
    std::fs::copy("/bin/sleep", &pause).unwrap();
    pod.start(naming, 0, &format!("exec {} 60", pause.display()));
    // Past its exec: diag picks the pod's workload by comm.
    let pause_pid = pod.procs[0].id();
    while std::fs::read_to_string(format!("/proc/{pause_pid}/comm")).unwrap_or_default()
        != "pause\n"
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let script = format!(
        "while ! [ -e {} ]; do sleep 0.05; done; {WORKLOAD}",
        gate.display()
    );
    pod.start(naming, 1, &script);
    let bin = scratch.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    if found == Found::Cri {
        stand_in_crictl(&bin, &pod);
    }
    let path = format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin.display()
    );
    let selector = pod.selector();
    let args = ["--pod", &selector, "--duration", "60s"];
    let workload = pod.procs.last_mut().unwrap();
    let run = common::attach_in(
        &scratch,
        &args,
        |c| {
            c.env("PATH", &path);
        },
        |diag| {
            common::touch(&gate);
            workload.wait().unwrap();
            // SAFETY: a signal to our own child.
            unsafe { libc::kill(diag as i32, libc::SIGINT) };
        },
    );
    let json = scratch.path(&format!("attach-{}.json", args.join("_").replace('/', "_")));
    common::assert_valid_report(&std::fs::read_to_string(json).unwrap());
    (run.report().clone(), pod)
}

fn check(r: &Report, pod: &KubeletPod, cgroup: &Path, found: Found) {
    let found_by = match found {
        Found::LogDir => format!("/var/log/pods/{NAMESPACE}_{}_UID", pod.name),
        Found::Cri => "crictl pods (sandbox sandbox-1)".into(),
    } + ", then the kubepods cgroup naming";
    let c = r.container.as_ref().expect("the report names the pod");
    assert_eq!(c.engine, "kubernetes");
    assert_eq!(c.id.lossy(), pod.uid);
    assert_eq!(c.cgroup.lossy(), cgroup.display().to_string());
    let p = c.pod.as_ref().expect("a pod object");
    assert_eq!(
        (p.namespace.lossy(), p.name.lossy(), p.uid.lossy()),
        (NAMESPACE.to_string(), pod.name.clone(), pod.uid.clone())
    );
    let ids: Vec<String> = p.containers.iter().map(|k| k.id.lossy()).collect();
    assert_eq!(ids, pod.container_ids);
    assert!(c.found_by.starts_with(&found_by), "{}", c.found_by);
    // Both containers were traced: the sandbox's pause process is in the tree.
    let pause = pod.procs[0].id();
    assert!(
        r.processes.iter().any(|p| p.pid == pause),
        "pause {pause} not traced: {:#?}",
        r.processes
    );
    assert_eq!(c.confinement.pids_max, Some(6));
    let fork = r
        .failures
        .iter()
        .find(|f| f.errno == "EAGAIN" && ["clone", "clone3", "fork"].contains(&f.syscall.as_str()))
        .unwrap_or_else(|| panic!("no refused fork in {:#?}", r.failures));
    assert_eq!(fork.layer.as_str(), "cgroup-pids", "{fork:#?}");
    let top = r.findings.first().expect("a finding");
    assert_eq!(top.layer.as_str(), "cgroup-pids", "{top:#?}");
    assert!(
        top.fix
            .starts_with("On the node: the kubelet's podPidsLimit"),
        "{}",
        top.fix
    );
}

/// cgroupfs naming, the pod's processes in the v1 pids hierarchy only: the pod is traced as its
/// v1 directory, both containers' processes with it.
#[test]
fn attach_pod_by_cgroupfs_naming_in_v1() {
    require_privileged!();
    let Some(pids) = Mounts::read().pids_v1 else {
        eprintln!("SKIPPED: no v1 pids hierarchy here for the pod's limit");
        return;
    };
    let _one = one_at_a_time();
    let (r, pod) = attach_pod(Naming::Cgroupfs, vec![pids.clone()], "cgfs", Found::LogDir);
    check(&r, &pod, &pids.join(&pod.pod_dir), Found::LogDir);
}

/// systemd naming (`kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope`) on a hybrid
/// host: the pod is traced as its unified directory; its limit is in the v1 pids hierarchy.
#[test]
fn attach_pod_by_systemd_naming_on_a_hybrid_host() {
    require_privileged!();
    let m = Mounts::read();
    let (Some(pids), Some(v2)) = (m.pids_v1, m.v2) else {
        eprintln!("SKIPPED: not a hybrid host (v1 pids and the unified hierarchy)");
        return;
    };
    let _one = one_at_a_time();
    let (r, pod) = attach_pod(
        Naming::Systemd,
        vec![pids, v2.clone()],
        "sysd",
        Found::LogDir,
    );
    check(&r, &pod, &v2.join(&pod.pod_dir), Found::LogDir);
}

/// With a CRI CLI on PATH, the pod's uid, its containers' names and images come from it.
#[test]
fn attach_pod_through_the_cri() {
    require_privileged!();
    let Some(pids) = Mounts::read().pids_v1 else {
        eprintln!("SKIPPED: no v1 pids hierarchy here for the pod's limit");
        return;
    };
    let _one = one_at_a_time();
    let (r, pod) = attach_pod(Naming::Cgroupfs, vec![pids.clone()], "cri", Found::Cri);
    check(&r, &pod, &pids.join(&pod.pod_dir), Found::Cri);
    let c = r.container.as_ref().unwrap();
    let named: Vec<(String, String)> = c
        .pod
        .as_ref()
        .unwrap()
        .containers
        .iter()
        .map(|k| {
            (
                k.name.as_ref().unwrap().lossy(),
                k.image.as_ref().unwrap().lossy(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            ("sleeper".into(), "registry.k8s.io/pause:3.9".into()),
            ("app".into(), "busybox:1.36".into())
        ]
    );
    // The confinement was read from the app's process: its image is the pod's.
    assert_eq!(c.image.as_ref().unwrap().lossy(), "busybox:1.36");
}

#[test]
fn bad_pod_selectors_are_one_clear_error() {
    for (selector, says) in [
        ("foo", "--pod foo: not NAMESPACE/NAME"),
        ("Default/web", "--pod Default/web: not NAMESPACE/NAME"),
        ("diag-test/no-such-pod", "--pod diag-test/no-such-pod: no "),
    ] {
        let out = diag_command()
            .args(["attach", "--pod", selector])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{selector}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(&format!("diag: error: {says}")), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        // Whether this host has the kubelet's log directory (another test may make one).
        if selector.contains("no-such-pod") {
            assert!(
                err.contains("no pod of that name on this node")
                    || err.contains("no CRI (crictl) and no /var/log/pods"),
                "{err}"
            );
        }
    }
}
