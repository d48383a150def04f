//! `diag doctor`: what this host supports and why, each line with a status and the fix.

use super::args::DoctorArgs;
use super::output::{ebpf_status, version};
use crate::capture::{container, ebpf, CaptureConfig, ProbeReport};
use crate::context::support::{self, Check, Status};
use crate::context::HostFacts;
use crate::model::text::escape;
use anyhow::Result;

pub const SCHEMA: &str = "diag.doctor/v1";

pub fn doctor(args: DoctorArgs) -> Result<i32> {
    let host = HostFacts::read();
    let mut checks = vec![backend_check()];
    checks.extend(support::host_checks(&host));
    checks.extend(probe_checks());
    checks.push(engines_check());
    if args.json {
        let doc = serde_json::json!({ "schema": SCHEMA, "diag": version(), "checks": checks });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", render(&checks));
    }
    Ok(0)
}

fn backend_check() -> Check {
    match ebpf::missing_reason() {
        None => Check::new("ebpf_backend", Status::Ok, ebpf_status()),
        Some(_) => Check::new("ebpf_backend", Status::Missing, ebpf_status())
            .fix("install the eBPF toolchain (cargo xtask setup) and rebuild diag"),
    }
}

/// The container engines whose CLI `attach --container` can ask.
fn engines_check() -> Check {
    let found = container::engines_on_path();
    if found.is_empty() {
        Check::new(
            "container_engines",
            Status::Warn,
            "no docker, podman, nerdctl, ctr or crictl on PATH: --container takes an id only, found in /proc/*/cgroup",
        )
        .fix("put the engine's CLI on PATH to select containers by name")
    } else {
        Check::new(
            "container_engines",
            Status::Ok,
            format!("found {}", found.join(", ")),
        )
    }
}

/// Loads the real eBPF object, as `diag run` would, and reports each probe as this kernel
/// answered. Without the privilege to load, says so instead of guessing.
fn probe_checks() -> Vec<Check> {
    let plan = ebpf::probe_plan();
    let not_tried = |why: &str, fix: &str| -> Vec<Check> {
        plan.iter()
            .map(|p| {
                Check::new(
                    format!("probe {}", p.label),
                    Status::Warn,
                    format!("not tried: {why}"),
                )
                .fix(fix)
            })
            .collect()
    };
    if ebpf::missing_reason().is_some() {
        return not_tried("the eBPF backend is not built in", "see ebpf_backend");
    }
    if !support::has_cap(support::effective_caps(), "CAP_BPF") {
        return not_tried(
            "loading eBPF programs needs CAP_BPF",
            "run `sudo diag doctor`",
        );
    }
    let probes = match ebpf::EbpfCapture::load(&CaptureConfig::default(), None) {
        Ok(capture) => capture.probes.clone(),
        Err(e) => {
            let mut checks = vec![Check::new("ebpf_load", Status::Missing, format!("{e:#}"))
                .fix("diag run cannot trace here; use --backend ptrace")];
            checks.extend(not_tried("the eBPF object did not load", "see ebpf_load"));
            return checks;
        }
    };
    plan.iter().map(|p| probe_check(p, &probes)).collect()
}

fn probe_check(p: &ebpf::ProbeSpec, probes: &ProbeReport) -> Check {
    let name = format!("probe {}", p.label);
    if probes.attached.contains(&p.label) {
        return Check::new(name, Status::Ok, format!("attached: {}", p.purpose));
    }
    let why = probes
        .missing
        .iter()
        .find(|(label, _)| *label == p.label)
        .map_or("not attached", |(_, why)| why.as_str());
    let fix = if p.required {
        "diag run cannot trace without it: use --backend ptrace"
    } else {
        "none needed: attribution falls back to tracepoints and context (a kernel that allows fentry/fexit gives direct evidence)"
    };
    Check::new(
        name,
        Status::Missing,
        format!("{why}. Used for: {}", p.purpose),
    )
    .fix(fix)
}

fn render(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = format!("diag {}\n", version());
    for c in checks {
        out.push_str(&format!(
            "{:<7}  {:<width$}  {}\n",
            c.status.as_str(),
            c.name,
            escape(&c.detail)
        ));
        if let Some(fix) = &c.fix {
            out.push_str(&format!(
                "{:<7}  {:<width$}  fix: {}\n",
                "",
                "",
                escape(fix)
            ));
        }
    }
    out
}
