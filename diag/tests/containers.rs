//! Real container engines: Docker (a dockerd of our own, on its own socket and data root) and
//! Podman (its own storage and config), with an image imported from a busybox root filesystem
//! (no registry here). Each case runs a container that fails one way and checks that diag names
//! the container, attributes the container's failure to the right layer, ranks it above the
//! engine's plumbing, and says the fix in the engine's flags.

mod common;

use common::{diag_command, Scratch};
use diag::report::Report;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// One engine, set up for this test binary.
struct Engine {
    cli: &'static str,
    image: String,
    env: Vec<(String, String)>,
}

impl Engine {
    fn command(&self) -> Command {
        let mut c = Command::new(self.cli);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            self.cli,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// The scratch root shared by this binary's engines (short: it holds dockerd's socket).
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = PathBuf::from(format!("/tmp/diag-ctr-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        rootfs_tar(&dir);
        // Stops dockerd and removes the scratch root when this test binary exits, however it
        // exits (statics are never dropped): a watcher in the background of a shell that returns.
        let watcher = format!(
            "(while kill -0 {me} 2>/dev/null; do sleep 0.5; done; \
              [ -f {d}/docker.pid ] && kill $(cat {d}/docker.pid); sleep 3; rm -rf {d}) \
             </dev/null >/dev/null 2>&1 &",
            me = std::process::id(),
            d = dir.display()
        );
        assert!(Command::new("sh")
            .arg("-c")
            .arg(watcher)
            .status()
            .unwrap()
            .success());
        dir
    })
}

/// busybox and its applets' links, plus the directories a container expects.
fn rootfs_tar(dir: &Path) {
    let fs = dir.join("rootfs");
    for d in ["bin", "tmp", "proc", "sys", "dev", "etc", "gate", "mnt"] {
        std::fs::create_dir_all(fs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", fs.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "mount", "cat", "cp", "touch", "mknod", "sleep", "true", "ls",
    ] {
        std::os::unix::fs::symlink("busybox", fs.join("bin").join(applet)).unwrap();
    }
    let status = Command::new("tar")
        .args(["-C", &fs.display().to_string(), "-cf"])
        .arg(dir.join("rootfs.tar"))
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

fn on_path(cli: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cli} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Our own dockerd, or why there is none.
fn docker() -> Result<&'static Engine, String> {
    static DOCKER: OnceLock<Result<Engine, String>> = OnceLock::new();
    DOCKER
        .get_or_init(|| {
            if !on_path("dockerd") {
                return Err(
                    "dockerd is not installed (cargo xtask setup installs docker.io)".into(),
                );
            }
            let d = root();
            let sock = d.join("docker.sock");
            let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
            Command::new("setsid")
                .arg("dockerd")
                .args(["--iptables=false", "--bridge=none"])
                .arg("--data-root")
                .arg(d.join("data"))
                .arg("--exec-root")
                .arg(d.join("exec"))
                .arg("--pidfile")
                .arg(d.join("docker.pid"))
                .arg("-H")
                .arg(format!("unix://{}", sock.display()))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot start dockerd: {e}"))?;
            let engine = Engine {
                cli: "docker",
                image: "diagbox:1".into(),
                env: vec![("DOCKER_HOST".into(), format!("unix://{}", sock.display()))],
            };
            let started = Instant::now();
            while !engine
                .command()
                .arg("info")
                .output()
                .is_ok_and(|o| o.status.success())
            {
                if started.elapsed() > Duration::from_secs(60) {
                    let log = std::fs::read_to_string(d.join("dockerd.log")).unwrap_or_default();
                    return Err(format!(
                        "dockerd did not answer in 60 s: {}",
                        log.lines().last().unwrap_or("")
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            engine.ok(&[
                "import",
                &d.join("rootfs.tar").display().to_string(),
                &engine.image,
            ]);
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Podman with its own storage and config (runc: crun refuses hybrid cgroups; no default
/// ulimits: raising RLIMIT_NOFILE needs CAP_SYS_RESOURCE, which root lacks here).
fn podman() -> Result<&'static Engine, String> {
    static PODMAN: OnceLock<Result<Engine, String>> = OnceLock::new();
    PODMAN
        .get_or_init(|| {
            if !on_path("podman") || !on_path("runc") {
                return Err("podman or runc is not installed (cargo xtask setup installs them)".into());
            }
            let d = root().join("podman");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("containers.conf"),
                "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
            )
            .unwrap();
            std::fs::write(
                d.join("storage.conf"),
                format!(
                    "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
                    d.display()
                ),
            )
            .unwrap();
            let engine = Engine {
                cli: "podman",
                image: "localhost/diagbox:1".into(),
                env: vec![
                    ("CONTAINERS_CONF".into(), d.join("containers.conf").display().to_string()),
                    ("CONTAINERS_STORAGE_CONF".into(), d.join("storage.conf").display().to_string()),
                ],
            };
            engine.ok(&["import", &root().join("rootfs.tar").display().to_string(), &engine.image]);
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A container that fails one way, and what diag must say about it.
struct Case {
    tag: &'static str,
    flags: &'static [&'static str],
    script: &'static str,
    syscall: &'static str,
    errno: &'static str,
    layer: &'static str,
    /// In the top finding's fix.
    fix: &'static str,
}

const SECCOMP: Case = Case {
    tag: "seccomp",
    flags: &[],
    script: "mount -t tmpfs none /mnt",
    syscall: "mount",
    errno: "EPERM",
    layer: "seccomp",
    fix: "--security-opt seccomp=",
};

const CAPABILITY: Case = Case {
    tag: "cap",
    flags: &["--security-opt", "seccomp=unconfined"],
    script: "mount -t tmpfs none /mnt",
    syscall: "mount",
    errno: "EPERM",
    layer: "capability",
    fix: "--cap-add SYS_ADMIN",
};

const READ_ONLY: Case = Case {
    tag: "ro",
    flags: &["--read-only"],
    script: "touch /etc/new",
    syscall: "openat",
    errno: "EROFS",
    layer: "mount-ro",
    fix: "--tmpfs /etc",
};

const NOEXEC: Case = Case {
    tag: "noexec",
    flags: &["--tmpfs", "/scratch:noexec"],
    script: "cp /bin/busybox /scratch/b && /scratch/b true",
    syscall: "execve",
    errno: "EACCES",
    layer: "mount-noexec",
    fix: "--tmpfs /scratch:exec",
};

/// Four processes of five: the inner shell's fork is refused, and the shell exits at once ("can't
/// fork"); its pids cgroup is read through its parent.
const PIDS: Case = Case {
    tag: "pids",
    flags: &["--pids-limit", "5"],
    script: "sleep 1 & sleep 1 & sleep 1 & sh -c 'sleep 1 & wait'",
    syscall: "clone",
    errno: "EAGAIN",
    layer: "cgroup-pids",
    fix: "--pids-limit 10",
};

const DEVICE: Case = Case {
    tag: "device",
    flags: &[],
    script: "mknod /dev/diagmem c 1 1 && cat /dev/diagmem",
    syscall: "openat",
    errno: "EPERM",
    layer: "cgroup-devices",
    fix: "--device /dev/diagmem",
};

/// Starts the container held at a gate (a bind-mounted directory), attaches diag to it by
/// name, opens the gate, and returns diag's report once the container has exited.
fn attach_case(engine: &Engine, case: &Case) -> (Report, String) {
    attach_case_by(engine, case, Select::Name)
}

/// How the test names the container to diag.
#[derive(PartialEq)]
enum Select {
    Name,
    /// 12 hex digits of its id, with no engine CLI on diag's PATH: found in /proc/*/cgroup.
    IdWithoutEngine,
}

fn attach_case_by(engine: &Engine, case: &Case, select: Select) -> (Report, String) {
    let _one = one_at_a_time();
    // Two tests may run the same case at once.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let tag = format!(
        "{}-{}-{}",
        case.tag,
        engine.cli,
        RUNS.fetch_add(1, Ordering::Relaxed)
    );
    let scratch = Scratch::new(&format!("ctr-{tag}"));
    let gate = scratch.path("gate");
    std::fs::create_dir_all(&gate).unwrap();
    let name = format!("diag-{tag}-{}", std::process::id());
    let script = format!(
        "while ! [ -e /gate/go ]; do sleep 0.05; done; {}; sleep 0.5",
        case.script
    );
    let volume = format!("{}:/gate", gate.display());
    let mut args = vec![
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "-v",
        &volume,
    ];
    args.extend(case.flags);
    args.extend([engine.image.as_str(), "sh", "-c", &script]);
    engine.ok(&args);
    let json = scratch.path("report.json");
    let mut diag = diag_command();
    let selector = match select {
        Select::Name => name.clone(),
        Select::IdWithoutEngine => {
            diag.env("PATH", "/nonexistent");
            engine.ok(&["inspect", "--format", "{{.Id}}", &name])[..12].to_string()
        }
    };
    let mut diag = diag
        .envs(engine.env.iter().map(|(k, v)| (k, v)))
        .args([
            "attach",
            "--container",
            &selector,
            "--duration",
            "60s",
            "--json",
        ])
        .arg(&json)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(diag.stderr.take().unwrap());
    let mut said = String::new();
    while stderr.read_line(&mut said).unwrap() > 0 && !said.contains("attached") {}
    std::fs::write(gate.join("go"), "").unwrap();
    engine.ok(&["wait", &name]);
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(diag.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    diag.wait().unwrap();
    let _ = engine.command().args(["rm", "-f", &name]).output();
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no report ({e}); diag said:\n{said}{rest}"));
    common::assert_valid_report(&text);
    (serde_json::from_str(&text).unwrap(), name)
}

/// One container case at a time: `diag run -- docker run` traces the daemon's containerd, which
/// starts every container of this binary's dockerd.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `diag run -- ENGINE run --rm ... IMAGE sh -c SCRIPT`.
fn run_case(engine: &Engine, case: &Case) -> Report {
    let _one = one_at_a_time();
    let scratch = Scratch::new(&format!("ctr-run-{}-{}", case.tag, engine.cli));
    let name = format!(
        "diag-run-{}-{}-{}",
        case.tag,
        engine.cli,
        std::process::id()
    );
    // The workload lingers a moment so that its confinement can be read.
    let script = format!("{}; sleep 0.5", case.script);
    let mut args = vec![
        "--",
        engine.cli,
        "run",
        "--rm",
        "--name",
        &name,
        "--network",
        "none",
    ];
    args.extend(case.flags);
    args.extend([engine.image.as_str(), "sh", "-c", &script]);
    let run = common::diag_json_with(&scratch, "run", &args, |c| {
        c.envs(engine.env.iter().map(|(k, v)| (k, v)));
    });
    let r = run.report().clone();
    let c = r
        .container
        .as_ref()
        .expect("the report names the container");
    assert_eq!(c.name.as_ref().map(|n| n.lossy()), Some(name.clone()));
    assert!(
        c.found_by.starts_with("started by the command"),
        "{}",
        c.found_by
    );
    check(engine, case, &r, &name);
    r
}

fn check(engine: &Engine, case: &Case, r: &Report, name: &str) {
    let c = r
        .container
        .as_ref()
        .expect("the report names the container");
    assert_eq!(c.engine, engine.cli);
    assert_eq!(c.name.as_ref().map(|n| n.lossy()).as_deref(), Some(name));
    assert_eq!(
        c.image.as_ref().map(|n| n.lossy()),
        Some(engine.image.clone())
    );
    assert_eq!(c.id.lossy().len(), 64, "{:?}", c.id);
    let failure = r
        .failures
        .iter()
        .find(|f| f.syscall == case.syscall && f.errno == case.errno)
        .unwrap_or_else(|| panic!("no {} {} in {:#?}", case.syscall, case.errno, r.failures));
    assert_eq!(failure.layer.as_str(), case.layer, "{failure:#?}");
    assert_eq!(failure.engine_plumbing, None);
    let top = r.findings.first().expect("a finding");
    assert_eq!(top.layer.as_str(), case.layer, "{top:#?}");
    assert!(top.fix.contains(case.fix), "{}", top.fix);
    assert!(
        top.fix
            .starts_with(&format!("In {}: {} run ", engine.cli, engine.cli)),
        "{}",
        top.fix
    );
}

/// The engine, or None after saying why it cannot run here.
fn available(engine: Result<&'static Engine, String>) -> Option<&'static Engine> {
    engine.map_err(|why| eprintln!("SKIPPED: {why}")).ok()
}

/// Under `diag run -- ENGINE run ...`: the engine's own failures are labelled, and rank below
/// the container's (checked by `check`).
fn under_run(engine: &Engine, case: &Case) {
    let r = run_case(engine, case);
    assert!(
        r.failures.iter().any(|f| f.engine_plumbing.is_some()),
        "{:#?}",
        r.failures
    );
}

fn under_attach(engine: &Engine, case: &Case) {
    let (report, name) = attach_case(engine, case);
    check(engine, case, &report, &name);
}

macro_rules! container_cases {
    ($($test:ident: $mode:ident, $engine:ident, $case:ident;)*) => {$(
        #[test]
        fn $test() {
            require_privileged!();
            if let Some(engine) = available($engine()) {
                $mode(engine, &$case);
            }
        }
    )*};
}

container_cases! {
    docker_run_seccomp: under_run, docker, SECCOMP;
    docker_run_capability: under_run, docker, CAPABILITY;
    docker_run_read_only_rootfs: under_run, docker, READ_ONLY;
    docker_run_noexec_tmpfs: under_run, docker, NOEXEC;
    docker_run_missing_device: under_run, docker, DEVICE;
    docker_run_pids_limit: under_run, docker, PIDS;
    podman_run_pids_limit: under_run, podman, PIDS;
    podman_run_capability: under_run, podman, CAPABILITY;
    podman_run_missing_device: under_run, podman, DEVICE;
    podman_run_read_only_rootfs: under_run, podman, READ_ONLY;
    podman_run_noexec_tmpfs: under_run, podman, NOEXEC;
    docker_attach_seccomp: under_attach, docker, SECCOMP;
    docker_attach_capability: under_attach, docker, CAPABILITY;
    docker_attach_read_only_rootfs: under_attach, docker, READ_ONLY;
    docker_attach_noexec_tmpfs: under_attach, docker, NOEXEC;
    docker_attach_missing_device: under_attach, docker, DEVICE;
    docker_attach_pids_limit: under_attach, docker, PIDS;
    podman_attach_pids_limit: under_attach, podman, PIDS;
    podman_attach_capability: under_attach, podman, CAPABILITY;
    podman_attach_missing_device: under_attach, podman, DEVICE;
    podman_attach_read_only_rootfs: under_attach, podman, READ_ONLY;
    podman_attach_noexec_tmpfs: under_attach, podman, NOEXEC;
}

#[test]
fn attach_by_id_without_an_engine_cli_finds_the_container_in_proc() {
    require_privileged!();
    let Some(engine) = available(docker()) else {
        return;
    };
    let (r, _) = attach_case_by(engine, &NOEXEC, Select::IdWithoutEngine);
    let c = r.container.as_ref().unwrap();
    assert_eq!(c.engine, "docker");
    assert!(c.found_by.starts_with("/proc/"), "{}", c.found_by);
    assert_eq!(c.name, None);
    let f = r.failures.iter().find(|f| f.syscall == "execve").unwrap();
    assert_eq!(f.layer.as_str(), "mount-noexec");
    assert!(
        r.findings[0].fix.contains("--tmpfs /scratch:exec"),
        "{}",
        r.findings[0].fix
    );
}

#[test]
fn docker_attach_reads_the_confinement() {
    require_privileged!();
    let Some(engine) = available(docker()) else {
        return;
    };
    let (r, _) = attach_case(engine, &READ_ONLY);
    let k = &r.container.unwrap().confinement;
    assert!(k.read_only_rootfs);
    assert_eq!(
        (k.seccomp.as_str(), k.seccomp_profile.as_deref()),
        ("filter", Some("default"))
    );
    assert!(k.capabilities_dropped.iter().any(|c| c == "CAP_SYS_ADMIN"));
    assert!(k.capabilities.iter().any(|c| c == "CAP_CHOWN"));
    assert!(!k.user_namespace);
}

#[test]
fn an_unknown_container_is_one_clear_error() {
    let out = diag_command()
        .args(["attach", "--container", "no-such-container-anywhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("diag: error: --container no-such-container-anywhere:"),
        "{err}"
    );
    let out = diag_command()
        .args(["attach", "--container=-f"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// examples/kubernetes/diag-daemonset.yaml holds what diag needs on a node (it was not run on a
/// cluster here): a privileged container in the host's pid namespace, with the kernel's BTF,
/// the BPF filesystem and the cgroup tree mounted from the host.
#[test]
fn the_daemonset_manifest_has_what_diag_needs() {
    use serde::Deserialize;
    let path = common::workspace().join("examples/kubernetes/diag-daemonset.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .collect();
    let daemonset = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    let host_path = |p: &str| {
        serde_json::json!({
            "type": "array",
            "contains": {"properties": {"hostPath": {"properties": {"path": {"const": p}}, "required": ["path"]}}, "required": ["hostPath"]}
        })
    };
    let mount = |p: &str| serde_json::json!({"contains": {"properties": {"mountPath": {"const": p}}, "required": ["mountPath"]}});
    let schema = serde_json::json!({
        "properties": {
            "apiVersion": {"const": "apps/v1"},
            "spec": {"properties": {"template": {"properties": {"spec": {
                "required": ["hostPID", "containers", "volumes"],
                "properties": {
                    "hostPID": {"const": true},
                    "volumes": {"allOf": [host_path("/sys/kernel/btf"), host_path("/sys/fs/bpf"), host_path("/sys/fs/cgroup"), host_path("/var/log/pods")]},
                    "containers": {"type": "array", "minItems": 1, "items": {
                        "required": ["securityContext", "volumeMounts", "resources"],
                        "properties": {
                            "securityContext": {"properties": {"privileged": {"const": true}}, "required": ["privileged"]},
                            "volumeMounts": {"allOf": [mount("/sys/kernel/btf"), mount("/sys/fs/bpf"), mount("/sys/fs/cgroup"), mount("/var/log/pods")]},
                            "resources": {"required": ["limits"]}
                        }
                    }}
                }
            }}, "required": ["spec"]}}, "required": ["template"]}
        },
        "required": ["apiVersion", "spec"]
    });
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(daemonset)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert_eq!(errors, Vec::<String>::new());
    // A broken manifest fails the check.
    let mut unprivileged = daemonset.clone();
    unprivileged["spec"]["template"]["spec"]["hostPID"] = false.into();
    assert!(!validator.is_valid(&unprivileged));
    // The request the manifest documents is one diag accepts.
    assert!(text.contains("diag attach --container $CID --duration 60s --quiet --json -"));
    assert!(text.contains("diag attach --pod NS/NAME --duration 60s --quiet --json -"));
}

/// `--verify-fix -- docker run ...` runs again with the fix's flag after `run`: the default
/// seccomp profile allows mount to a container with CAP_SYS_ADMIN.
#[test]
fn docker_verify_fix_reruns_with_the_engine_flag() {
    require_privileged!();
    let Some(engine) = available(docker()) else {
        return;
    };
    let _one = one_at_a_time();
    let scratch = Scratch::new("ctr-verify");
    let image = engine.image.as_str();
    let args = [
        "--verify-fix",
        "--",
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        "mount -t tmpfs none /mnt; sleep 0.5",
    ];
    let run = common::diag_json_with(&scratch, "run", &args, |c| {
        c.envs(engine.env.iter().map(|(k, v)| (k, v)));
    });
    let v = run.report().verification.as_ref().expect("a verification");
    assert!(
        v.patch.contains(&format!(
            "+++ docker run --cap-add SYS_ADMIN --rm --network none {image}"
        )),
        "{}",
        v.patch
    );
    assert!(
        v.disappeared
            .contains(&"mount /mnt EPERM (mount)".to_string()),
        "{v:#?}"
    );
    assert!(
        !v.after.failures.iter().any(|f| f.syscall == "mount"),
        "{v:#?}"
    );
}
