//! Containers: from a name or id to the container's cgroup and init process, through the engine
//! that runs it (docker, podman, nerdctl) or, without one, through `/proc/*/cgroup`; and the
//! confinement that matters for a diagnosis, read from the init process itself.

use crate::context::cgroup::{self, Mounts};
use crate::context::process::cap_name;
use crate::model::Text;
use anyhow::{anyhow, bail, Context, Result};
use procfs::process::Process;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Engines asked, in this order, with the CLI that answers for them.
const ENGINE_CLIS: &[(&str, &str)] = &[
    ("docker", "docker"),
    ("podman", "podman"),
    ("nerdctl", "containerd"),
];

/// Programs of the engines themselves: their failures are plumbing, not the container's.
pub const ENGINE_PROGRAMS: &[&str] = &[
    "dockerd",
    "docker",
    "docker-proxy",
    "docker-init",
    "containerd",
    "containerd-shim",
    "containerd-shim-runc-v2",
    "ctr",
    "nerdctl",
    "podman",
    "conmon",
    "runc",
    "crun",
    "catatonit",
    "crio",
    "conmon-rs",
];

/// The engine program `comm` is, if it is one (runc's init before it runs the workload is
/// `runc:[2:INIT]`; comm is cut at 15 bytes).
pub fn engine_program(comm: &str) -> Option<&'static str> {
    let name = comm.split(":[").next().unwrap_or(comm);
    ENGINE_PROGRAMS
        .iter()
        .copied()
        .find(|p| *p == name || (name.len() == 15 && p.starts_with(name)))
}

/// The engine program a traced process is, by its comm or, for runc's re-exec of itself (comm
/// `exe`), by its executable's name.
pub fn engine_process(comm: &str, exe: Option<&str>) -> Option<&'static str> {
    engine_program(comm).or_else(|| engine_program(Path::new(exe?).file_name()?.to_str()?))
}

/// The most mounts and device rules kept (a container can have thousands of bind mounts).
const MAX_LISTED: usize = 64;

/// A container, as the report shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Container {
    /// docker, podman, containerd, cri-o or kubernetes (from the cgroup's naming).
    pub engine: String,
    pub id: Text,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Text>,
    /// The container's first process, as the host sees it.
    pub init_pid: u32,
    /// The cgroup directory diag traced.
    pub cgroup: Text,
    /// How diag found it: "docker container inspect", "/proc/PID/cgroup", "started by the command".
    pub found_by: String,
    pub confinement: Confinement,
    /// `attach --pod`: the pod, whose cgroup (all its containers) was traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<super::pod::Pod>,
}

impl Container {
    /// One line for the human and Markdown reports (unescaped: each escapes it its own way).
    pub fn describe(&self) -> String {
        let short: String = self.id.lossy().chars().take(12).collect();
        let mut out = format!("{} {short}", self.engine);
        if let Some(n) = &self.name {
            out += &format!(" \"{}\"", n.lossy());
        }
        if let Some(i) = &self.image {
            out += &format!(" (image {})", i.lossy());
        }
        if let Some(p) = &self.pod {
            out += &format!(", pod of {} containers", p.containers.len());
        }
        let k = &self.confinement;
        out += &format!(
            ", init pid {} ({}); seccomp {}{}, no_new_privs {}, {} capabilities, pids.max {}",
            self.init_pid,
            self.found_by,
            k.seccomp,
            k.seccomp_profile
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            u8::from(k.no_new_privs),
            k.capabilities.len(),
            k.pids_max.map_or("max".into(), |m| m.to_string()),
        );
        if k.read_only_rootfs {
            out += ", read-only rootfs";
        }
        if k.user_namespace {
            out += &format!(", user namespace {}", k.uid_map.join("; "));
        }
        out
    }

    /// The cgroup directory, as a path again.
    pub fn cgroup_dir(&self) -> PathBuf {
        PathBuf::from(OsString::from_vec(self.cgroup.as_bytes().to_vec()))
    }
}

/// What confines the container's init process.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Confinement {
    /// The kernel's mode: disabled, strict or filter.
    pub seccomp: String,
    /// The engine's profile, when the engine said: default, custom or unconfined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<String>,
    pub no_new_privs: bool,
    /// Effective capabilities.
    pub capabilities: Vec<String>,
    /// Capabilities outside the bounding set: the container can never gain them.
    pub capabilities_dropped: Vec<String>,
    /// `pids.max` of the nearest limited pids cgroup; None = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<u64>,
    pub read_only_rootfs: bool,
    /// Mounts with ro, noexec or nosuid (outside /proc and /sys), with those options.
    pub restricted_mounts: Vec<RestrictedMount>,
    /// The device cgroup's allow list (cgroup v1); None where it cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
    /// `/proc/PID/uid_map`, one mapping per entry; `["0 0 4294967295"]` is the host's.
    pub uid_map: Vec<String>,
    pub user_namespace: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RestrictedMount {
    pub path: Text,
    pub options: Vec<String>,
}

/// What the engine said about a container.
struct Inspected {
    engine: &'static str,
    cli: &'static str,
    id: String,
    name: Option<String>,
    image: Option<String>,
    pid: u32,
    seccomp_profile: Option<String>,
}

/// A container name or id as given by the user: checked before it reaches an engine's CLI.
fn check_selector(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        bail!("--container {}: not a container name or id (letters, digits, '_', '.', '-'; at most 128)", crate::model::text::escape(s));
    }
    Ok(())
}

/// Finds the running container `selector` names (a name, an id or an id prefix).
pub fn resolve(selector: &str) -> Result<Container> {
    check_selector(selector)?;
    let mut asked = Vec::new();
    for &(cli, engine) in ENGINE_CLIS {
        if !on_path(cli) {
            continue;
        }
        asked.push(cli);
        if let Some(i) = inspect(cli, engine, selector) {
            if i.pid == 0 {
                bail!("--container {selector}: {cli} knows it, but it is not running");
            }
            let mut c = from_pid(i.pid, i.engine, i.id.clone())?;
            c.name = i.name.map(Text::from);
            c.image = i.image.map(Text::from);
            c.found_by = format!("{} container inspect", i.cli);
            c.confinement.seccomp_profile = i
                .seccomp_profile
                .or_else(|| (c.confinement.seccomp == "filter").then(|| "default".to_string()));
            return Ok(c);
        }
    }
    by_proc_cgroup(selector).map_err(|e| {
        let engines = if asked.is_empty() {
            "no engine CLI on PATH".to_string()
        } else {
            format!("{} did not know it", asked.join(", "))
        };
        anyhow!("--container {selector}: {engines}; {e}")
    })
}

pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn inspect(cli: &'static str, engine: &'static str, selector: &str) -> Option<Inspected> {
    let out = Command::new(cli)
        .args(["container", "inspect", "--", selector])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_inspect(&out.stdout, cli, engine)
}

fn parse_inspect(json: &[u8], cli: &'static str, engine: &'static str) -> Option<Inspected> {
    let all: Value = serde_json::from_slice(json).ok()?;
    let c = all.as_array()?.first()?;
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let security_opts: Vec<&str> = c["HostConfig"]["SecurityOpt"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let seccomp_profile = security_opts
        .iter()
        .find_map(|o| o.strip_prefix("seccomp=").or(o.strip_prefix("seccomp:")))
        .map(|p| {
            if p == "unconfined" {
                "unconfined"
            } else {
                "custom"
            }
            .to_string()
        })
        .or_else(|| {
            (c["HostConfig"]["Privileged"] == Value::Bool(true)).then(|| "unconfined".into())
        });
    Some(Inspected {
        engine,
        cli,
        id: text(&c["Id"])?,
        name: text(&c["Name"]).map(|n| n.trim_start_matches('/').to_string()),
        image: text(&c["ImageName"]).or_else(|| text(&c["Config"]["Image"])),
        pid: c["State"]["Pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())?,
        seccomp_profile,
    })
}

/// The 64-hex container id in a cgroup path segment (`docker/ID`, `libpod-ID.scope`,
/// `cri-containerd-ID.scope`, `crio-ID.scope`), with the engine the naming tells.
pub fn id_in_cgroup_path(path: &str) -> Option<(String, &'static str)> {
    let engine = if path.contains("libpod") {
        "podman"
    } else if path.contains("crio") {
        "cri-o"
    } else if path.contains("kubepods") {
        "kubernetes"
    } else if path.contains("containerd") {
        "containerd"
    } else if path.contains("docker") {
        "docker"
    } else {
        return None;
    };
    Some((hex_id_in_path(path)?, engine))
}

/// The last 64-hex (lowercase) run of a path that no other hex digit borders.
pub fn hex_id_in_path(path: &str) -> Option<String> {
    path.rsplit('/').find_map(|seg| {
        let bytes = seg.as_bytes();
        (0..bytes.len().saturating_sub(63)).find_map(|at| {
            let run = &seg[at..at + 64];
            let bounded = (at == 0 || !bytes[at - 1].is_ascii_hexdigit())
                && bytes.get(at + 64).is_none_or(|b| !b.is_ascii_hexdigit());
            (bounded
                && run
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
            .then(|| run.to_string())
        })
    })
}

/// Without an engine to ask: the processes whose cgroup names a container id starting with
/// `selector`.
fn by_proc_cgroup(selector: &str) -> Result<Container> {
    if selector.len() < 12 || !selector.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("without an engine, give at least 12 hex digits of the container id");
    }
    let selector = selector.to_ascii_lowercase();
    // Container id → (engine, its (pid, ppid)s).
    type Members = (&'static str, Vec<(u32, u32)>);
    let mut found: BTreeMap<String, Members> = BTreeMap::new();
    for p in procfs::process::all_processes()?.flatten() {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{}/cgroup", p.pid)) else {
            continue;
        };
        let Some((id, engine)) = text
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .find_map(id_in_cgroup_path)
        else {
            continue;
        };
        if id.starts_with(&selector) {
            let ppid = p.stat().map(|s| s.ppid as u32).unwrap_or(0);
            found
                .entry(id)
                .or_insert((engine, vec![]))
                .1
                .push((p.pid as u32, ppid));
        }
    }
    let mut ids = found.into_iter();
    let (id, (engine, procs)) = ids
        .next()
        .ok_or_else(|| anyhow!("no process's cgroup names a container id starting with it"))?;
    if ids.next().is_some() {
        bail!("more than one container id starts with it: give more digits");
    }
    // The init process: the one whose parent is outside the container.
    let init = procs
        .iter()
        .filter(|(_, ppid)| !procs.iter().any(|(p, _)| p == ppid))
        .map(|&(p, _)| p)
        .min()
        .context("the container has no process")?;
    let mut c = from_pid(init, engine, id)?;
    c.found_by = format!("/proc/{init}/cgroup");
    Ok(c)
}

/// The container whose init process is `pid`: its cgroup and confinement.
pub fn from_pid(pid: u32, engine: &str, id: String) -> Result<Container> {
    let proc = Process::new(pid as i32).with_context(|| format!("no process {pid}"))?;
    let cgroup = cgroup_dir(pid)?;
    Ok(Container {
        engine: engine.to_string(),
        id: Text::from(id),
        name: None,
        image: None,
        init_pid: pid,
        cgroup: Text::new(cgroup.as_os_str().as_bytes()),
        found_by: String::new(),
        confinement: confinement(&proc),
        pod: None,
    })
}

/// The cgroup directory to trace: the unified (v2) one where the process has one (v2 and
/// hybrid), so the eBPF side can filter by its id; else its v1 pids (or first) hierarchy.
pub fn cgroup_dir(pid: u32) -> Result<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("reading /proc/{pid}/cgroup"))?;
    let mounts = Mounts::read();
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            Some((controllers, path))
        })
        .collect();
    let v2 = lines.iter().find(|(c, _)| c.is_empty()).and_then(|(_, p)| {
        let dir = mounts.v2.as_ref()?.join(p.trim_start_matches('/'));
        (*p != "/" && dir.is_dir()).then_some(dir)
    });
    let v1 = || {
        let (_, p) = lines
            .iter()
            .find(|(c, _)| c.split(',').any(|k| k == "pids"))?;
        Some(mounts.pids_v1.as_ref()?.join(p.trim_start_matches('/')))
    };
    v2.or_else(v1)
        .filter(|d| cgroup::is_cgroup_dir(d))
        .with_context(|| format!("process {pid} has no cgroup of its own to trace"))
}

fn confinement(proc: &Process) -> Confinement {
    let mut c = Confinement::default();
    if let Ok(st) = proc.status() {
        c.seccomp = match st.seccomp {
            Some(0) => "disabled",
            Some(1) => "strict",
            Some(2) => "filter",
            _ => "unknown",
        }
        .into();
        c.no_new_privs = st.nonewprivs == Some(1);
        c.capabilities = cap_list(st.capeff);
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(40);
        let all = (1u64 << (last_cap + 1)) - 1;
        c.capabilities_dropped = cap_list(all & !st.capbnd.unwrap_or(all));
    }
    c.pids_max = proc
        .cgroups()
        .ok()
        .and_then(|g| cgroup::pids_cgroup(&g))
        .and_then(|p| p.max);
    if let Ok(mi) = proc.mountinfo() {
        let opts = |m: &procfs::process::MountInfo| -> Vec<String> {
            ["ro", "noexec", "nosuid"]
                .iter()
                .filter(|o| m.mount_options.contains_key(**o))
                .map(|o| o.to_string())
                .collect()
        };
        c.read_only_rootfs = mi
            .iter()
            .rfind(|m| m.mount_point == Path::new("/"))
            .is_some_and(|m| m.mount_options.contains_key("ro"));
        c.restricted_mounts = mi
            .iter()
            .filter(|m| !m.mount_point.starts_with("/proc") && !m.mount_point.starts_with("/sys"))
            .filter_map(|m| {
                let options = opts(m);
                (!options.is_empty()).then(|| RestrictedMount {
                    path: Text::from(m.mount_point.display().to_string()),
                    options,
                })
            })
            .take(MAX_LISTED)
            .collect();
    }
    c.devices = devices_v1(proc);
    c.uid_map = std::fs::read_to_string(format!("/proc/{}/uid_map", proc.pid))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    c.user_namespace = !c.uid_map.is_empty() && c.uid_map != ["0 0 4294967295"];
    c
}

fn cap_list(bits: u64) -> Vec<String> {
    (0..64)
        .filter(|c| bits & (1 << c) != 0)
        .map(cap_name)
        .collect()
}

/// The v1 device cgroup's allow list; v2 keeps it in an eBPF program diag does not decode.
fn devices_v1(proc: &Process) -> Option<Vec<String>> {
    let mi = Process::myself().ok()?.mountinfo().ok()?;
    let mount = mi
        .iter()
        .find(|m| m.fs_type == "cgroup" && m.super_options.contains_key("devices"))?
        .mount_point
        .clone();
    let rel = proc
        .cgroups()
        .ok()?
        .0
        .into_iter()
        .find(|g| g.controllers.iter().any(|k| k == "devices"))?
        .pathname;
    let list =
        std::fs::read_to_string(mount.join(rel.trim_start_matches('/')).join("devices.list"))
            .ok()?;
    Some(list.lines().take(MAX_LISTED).map(str::to_string).collect())
}

/// `docker run ...`, `podman run ...`, `nerdctl run ...` (global flags allowed before `run`):
/// the engine CLI and the engine.
pub fn engine_run(command: &[String]) -> Option<(&'static str, &'static str)> {
    let program = Path::new(command.first()?).file_name()?.to_str()?;
    let &(cli, engine) = ENGINE_CLIS.iter().find(|(cli, _)| *cli == program)?;
    command[1..]
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "run")
        .then_some((cli, engine))
}

/// Finds the container an engine command starts, among the processes diag traces.
pub struct NewContainer {
    cli: &'static str,
    engine: &'static str,
    /// Container ids alive before the command ran: not the one it starts.
    known: BTreeSet<String>,
    /// Processes already looked at (runc's init is looked at again after it execs).
    checked: BTreeSet<u32>,
    /// The new container, seen so far only through runc's init (its confinement not applied).
    seen: Option<(u32, String, Option<Inspected>)>,
    found: Option<Container>,
    /// The engine's `events` stream: it names a container even if it exits between two looks.
    events: Option<(std::process::Child, std::sync::mpsc::Receiver<String>)>,
    /// A container the engine said it started: (id, name, image).
    started: Option<(String, String, String)>,
    /// `--name NAME` of the run command: other containers started meanwhile are not the one.
    name: Option<String>,
}

impl NewContainer {
    /// For an engine run command: the watcher, and the daemon processes to trace so that the
    /// container is seen from its first syscall (Docker and nerdctl start it from containerd;
    /// podman from the command itself, which is traced anyway).
    pub fn watch(command: &[String]) -> Option<(Self, Vec<u32>)> {
        let (cli, engine) = engine_run(command)?;
        let daemons = if engine == "podman" {
            vec![]
        } else {
            containerd_pids(cli)
        };
        let watch = NewContainer {
            cli,
            engine,
            known: container_ids(),
            checked: BTreeSet::new(),
            seen: None,
            found: None,
            events: start_events(cli),
            started: None,
            name: name_option(command),
        };
        Some((watch, daemons))
    }

    /// Looks at processes not seen yet: one in a new container's cgroup names the container;
    /// its confinement is read from the first one that runs the workload (not runc's init).
    pub fn look(&mut self, pids: &[u32]) {
        if let (None, Some((_, lines))) = (&self.started, &self.events) {
            self.started = lines.try_iter().find_map(|l| {
                let mut f = l.splitn(3, '\t').map(str::to_string);
                let (id, name, image) = (f.next()?, f.next()?, f.next()?);
                let ours = self.name.as_ref().is_none_or(|n| *n == name);
                (ours && !self.known.contains(&id)).then_some((id, name, image))
            });
        }
        if self.found.is_some() {
            return;
        }
        for &pid in pids {
            if self.checked.contains(&pid) {
                continue;
            }
            let Some(id) = process_container_id(pid) else {
                self.checked.insert(pid);
                continue;
            };
            if self.known.contains(&id) {
                self.checked.insert(pid);
                continue;
            }
            if self.seen.as_ref().is_none_or(|(_, seen, _)| *seen != id) {
                let inspected = inspect(self.cli, self.engine, &id);
                let named = |i: &Inspected| i.name.as_ref() == self.name.as_ref();
                if self.name.is_some() && !inspected.as_ref().is_some_and(named) {
                    self.known.insert(id);
                    continue;
                }
                self.seen = Some((pid, id.clone(), inspected));
            }
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if engine_program(comm.trim()).is_some() {
                continue;
            }
            self.checked.insert(pid);
            if let Ok(c) = from_pid(pid, self.engine, id) {
                self.found = Some(self.named(c, "its first workload process"));
                return;
            }
        }
    }

    /// The container the command started, if one was seen.
    pub fn found(mut self) -> Option<Container> {
        self.look(&[]);
        if let Some((mut child, _)) = self.events.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(c) = self.found.take() {
            return Some(c);
        }
        if let (None, Some((id, name, image))) = (&self.seen, &self.started) {
            let inspected = Inspected {
                engine: self.engine,
                cli: self.cli,
                id: id.clone(),
                name: Some(name.clone()),
                image: Some(image.clone()),
                pid: 0,
                seccomp_profile: None,
            };
            self.seen = Some((0, id.clone(), Some(inspected)));
        }
        let (pid, id, _) = self.seen.as_ref()?;
        let c = Container {
            engine: self.engine.to_string(),
            id: Text::from(id.as_str()),
            name: None,
            image: None,
            init_pid: *pid,
            cgroup: Text::from(""),
            found_by: String::new(),
            confinement: Confinement {
                seccomp: "unknown".into(),
                ..Default::default()
            },
            pod: None,
        };
        let mut c = self.named(c, "");
        c.found_by = format!(
            "started by the command: {} named it{}; the workload exited before diag could read its confinement",
            if *pid == 0 { "the engine's start event" } else { "its new cgroup" },
            if self.engine == "podman" { "" } else { ", traced from containerd's fork" }
        );
        Some(c)
    }

    fn named(&self, mut c: Container, read_from: &str) -> Container {
        let traced_from = if self.engine == "podman" {
            "the command's own process tree"
        } else {
            "containerd's fork"
        };
        c.found_by = format!(
            "started by the command: a new {} container cgroup, traced from {traced_from}; confinement read from {read_from}",
            self.engine
        );
        if let Some((_, _, Some(i))) = &self.seen {
            c.name = i.name.clone().map(Text::from);
            c.image = i.image.clone().map(Text::from);
            c.confinement.seccomp_profile = i.seccomp_profile.clone();
        }
        if c.confinement.seccomp_profile.is_none() && c.confinement.seccomp == "filter" {
            c.confinement.seccomp_profile = Some("default".into());
        }
        c
    }
}

/// The run command's `--name NAME` or `--name=NAME`.
fn name_option(command: &[String]) -> Option<String> {
    let mut args = command.iter().take_while(|a| *a != "--");
    while let Some(a) = args.next() {
        if a == "--name" {
            return args.next().cloned();
        }
        if let Some(n) = a.strip_prefix("--name=") {
            return Some(n.to_string());
        }
    }
    None
}

/// `CLI events`, for container starts from now on (before the command runs), one
/// `ID\tNAME\tIMAGE` line each. `--since` replays what happened before the events command was
/// listening: on a loaded host it can start after the command's short-lived container did. To
/// the nanosecond: a container someone else started just before is not the command's.
fn start_events(cli: &str) -> Option<(std::process::Child, std::sync::mpsc::Receiver<String>)> {
    let format = if cli == "podman" {
        "{{.ID}}\t{{.Name}}\t{{.Image}}"
    } else {
        "{{.ID}}\t{{.Actor.Attributes.name}}\t{{.Actor.Attributes.image}}"
    };
    let mut child = Command::new(cli)
        .args([
            "events",
            "--filter",
            "type=container",
            "--filter",
            "event=start",
            "--since",
        ])
        .arg(humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string())
        .args(["--format", format])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let out = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        // Bounded: the first few starts are all the watcher needs.
        for line in std::io::BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .take(64)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Some((child, rx))
}

/// The container id `pid`'s cgroup names, if any.
fn process_container_id(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .find_map(id_in_cgroup_path)
        .map(|(id, _)| id)
}

/// Every container id some process's cgroup names now.
fn container_ids() -> BTreeSet<String> {
    procfs::process::all_processes()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|p| process_container_id(p.pid as u32))
        .collect()
}

/// The containerd that starts `cli`'s containers: for docker, the one the dockerd on
/// `DOCKER_HOST`'s socket runs (else every containerd); for nerdctl, every containerd.
fn containerd_pids(cli: &str) -> Vec<u32> {
    let procs: Vec<(u32, u32, String, Vec<String>)> = procfs::process::all_processes()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|p| {
            let st = p.stat().ok()?;
            Some((
                st.pid as u32,
                st.ppid as u32,
                st.comm,
                p.cmdline().unwrap_or_default(),
            ))
        })
        .collect();
    let containerds = || procs.iter().filter(|p| p.2 == "containerd");
    if cli == "docker" {
        let host = std::env::var("DOCKER_HOST").unwrap_or_default();
        let socket = host
            .strip_prefix("unix://")
            .unwrap_or("/var/run/docker.sock");
        let dockerd = procs
            .iter()
            .find(|p| p.2 == "dockerd" && p.3.iter().any(|a| a.ends_with(socket)));
        let dockerd = dockerd.or_else(|| {
            let mut all = procs.iter().filter(|p| {
                p.2 == "dockerd"
                    && !p
                        .3
                        .iter()
                        .any(|a| a.starts_with("-H") || a.starts_with("--host"))
            });
            all.next()
        });
        if let Some(d) = dockerd {
            let own: Vec<u32> = containerds().filter(|c| c.1 == d.0).map(|c| c.0).collect();
            if !own.is_empty() {
                return own;
            }
        }
    }
    containerds().map(|c| c.0).collect()
}

/// The engines whose CLI is on PATH, for `diag doctor`.
pub fn engines_on_path() -> Vec<&'static str> {
    ENGINE_CLIS
        .iter()
        .map(|(cli, _)| *cli)
        .chain(["ctr", "crictl"])
        .filter(|cli| on_path(cli))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_in_cgroup_paths() {
        let id = "eab49f4ef0bbb1e774668e247c2fbb2b19d3aab596314707ce76739599f7b9fa";
        for (path, engine) in [
            (format!("/docker/{id}"), "docker"),
            (
                format!("/machine.slice/libpod-{id}.scope/container"),
                "podman",
            ),
            (
                format!("/system.slice/cri-containerd-{id}.scope"),
                "containerd",
            ),
            (
                format!("/kubepods/burstable/pod1234-5678/{id}"),
                "kubernetes",
            ),
            (format!("/kubepods.slice/crio-{id}.scope"), "cri-o"),
        ] {
            assert_eq!(
                id_in_cgroup_path(&path),
                Some((id.to_string(), engine)),
                "{path}"
            );
        }
        assert_eq!(id_in_cgroup_path("/user.slice/session-1.scope"), None);
        // 65 hex digits are not an id.
        assert_eq!(id_in_cgroup_path(&format!("/docker/{id}0")), None);
    }

    #[test]
    fn engine_programs_by_comm() {
        assert_eq!(engine_program("runc:[2:INIT]"), Some("runc"));
        assert_eq!(engine_program("containerd-shim"), Some("containerd-shim"));
        assert_eq!(engine_program("conmon"), Some("conmon"));
        assert_eq!(engine_program("mount"), None);
        assert_eq!(engine_program("run"), None);
        assert_eq!(engine_process("exe", Some("/usr/sbin/runc")), Some("runc"));
        assert_eq!(engine_process("exe", Some("/usr/bin/python3")), None);
    }

    #[test]
    fn engine_run_commands() {
        let cmd = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            engine_run(&cmd("/usr/bin/docker run --rm img sh")),
            Some(("docker", "docker"))
        );
        assert_eq!(
            engine_run(&cmd("podman --runtime runc run img")),
            Some(("podman", "podman"))
        );
        assert_eq!(engine_run(&cmd("docker ps")), None);
        assert_eq!(
            name_option(&cmd("docker run --name web img")).as_deref(),
            Some("web")
        );
        assert_eq!(
            name_option(&cmd("podman run --name=db img")).as_deref(),
            Some("db")
        );
        assert_eq!(name_option(&cmd("docker run img sh -- --name x")), None);
        assert_eq!(engine_run(&cmd("sh -c run")), None);
    }

    #[test]
    fn selectors_that_could_be_flags_are_refused() {
        for bad in ["", "-f", "--format=x", "a b", "a/b", &"x".repeat(129)] {
            assert!(check_selector(bad).is_err(), "{bad}");
        }
        check_selector("my_app.1-test").unwrap();
    }

    #[test]
    fn docker_and_podman_inspect_output() {
        let docker = br#"[{"Id":"abc","Name":"/web","Config":{"Image":"diagbox:1"},
            "State":{"Pid":42},"HostConfig":{"SecurityOpt":["seccomp=unconfined"]}}]"#;
        let i = parse_inspect(docker, "docker", "docker").unwrap();
        assert_eq!(
            (i.id.as_str(), i.name.as_deref(), i.image.as_deref(), i.pid),
            ("abc", Some("web"), Some("diagbox:1"), 42)
        );
        assert_eq!(i.seccomp_profile.as_deref(), Some("unconfined"));
        let podman = br#"[{"Id":"def","Name":"db","ImageName":"localhost/diagbox:1",
            "Config":{"Image":"other"},"State":{"Pid":7},"HostConfig":{"SecurityOpt":[]}}]"#;
        let i = parse_inspect(podman, "podman", "podman").unwrap();
        assert_eq!(i.image.as_deref(), Some("localhost/diagbox:1"));
        assert_eq!(i.seccomp_profile, None);
        assert!(parse_inspect(b"[]", "docker", "docker").is_none());
    }
}
