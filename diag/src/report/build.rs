//! Assembles the report from the correlated trace, the attributions and the findings.

use super::model::*;
use crate::attribute::Attribution;
use crate::capture::{container, ProbeReport};
use crate::context::HostFacts;
use crate::correlate::{landlock::access_names, Trace, WALL_CLOCK_FLOOR_NS};
use crate::explain::{self, catalog::Catalog};
use crate::model::{errno, flags, syscalls, Failure, Text};
use sha2::{Digest, Sha256};
use std::time::SystemTime;

/// What the caller knows about the session beyond the trace.
pub struct Session<'a> {
    pub backend: Backend,
    pub mode: Mode,
    pub command: Vec<Text>,
    pub root_pids: Vec<u32>,
    pub exit_status: Option<i32>,
    pub partial: bool,
    pub host: &'a HostFacts,
    pub probes: &'a ProbeReport,
    pub warnings: Vec<String>,
    /// The cause catalog in use (the built-in one, or with `--catalog FILE`).
    pub catalog: &'a Catalog,
    /// When the session began.
    pub started: SystemTime,
}

/// A log's own date of an event, when the log has dates (live times are since boot).
fn wall_clock(trace: &Trace, ns: u64) -> Option<String> {
    (trace.from_log.is_some() && ns >= WALL_CLOCK_FLOOR_NS).then(|| {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
        humantime::format_rfc3339_millis(at).to_string()
    })
}

pub fn flags_text(f: &Failure) -> Option<String> {
    if let Some(t) = &f.flags_text {
        return Some(t.clone());
    }
    let fl = f.flags?;
    Some(match f.syscall.as_str() {
        n if syscalls::is_open(n) => flags::open_flags(fl),
        "clone" | "unshare" => flags::clone_flags(fl),
        "mmap" | "mprotect" | "pkey_mprotect" => prot_text(fl),
        _ => format!("{fl:#x}"),
    })
}

fn prot_text(p: u64) -> String {
    let names: Vec<&str> = [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")]
        .iter()
        .filter(|(b, _)| p & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "PROT_NONE".into()
    } else {
        names.join("|")
    }
}

/// A finding's identity across runs: its cause and layer, and each failure's call, errno, path
/// (digits folded: `/dev/pts/3`, `/proc/1234`) and program. Pids, times and counts vary from run
/// to run and are left out, so a ticket or a dashboard can match the same failure seen again.
pub fn fingerprint(f: &Finding, failures: &[FailureEntry]) -> String {
    let mut calls: Vec<String> = f
        .failures
        .iter()
        .filter_map(|&i| failures.get(i))
        .map(|e| {
            let path = e.path.as_ref().map(|p| p.lossy()).unwrap_or_default();
            format!(
                "{} {} {} {}",
                e.syscall,
                e.errno,
                digits_folded(&path),
                e.comm.lossy()
            )
        })
        .collect();
    calls.sort();
    calls.dedup();
    let digest = Sha256::digest(format!(
        "{}\n{}\n{}",
        f.cause,
        f.layer.as_str(),
        calls.join("\n")
    ));
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn digits_folded(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !(c.is_ascii_digit() && out.ends_with('#')) {
            out.push(if c.is_ascii_digit() { '#' } else { c });
        }
    }
    out
}

/// The container engine program that failed, if one did.
pub fn engine_plumbing(trace: &Trace, f: &Failure) -> Option<&'static str> {
    let exe = trace
        .processes
        .get(&f.origin.pid)
        .and_then(|p| p.exe.as_ref())
        .map(Text::lossy);
    container::engine_process(&f.origin.comm.lossy(), exe.as_deref())
}

pub fn build(
    trace: &Trace,
    attributions: &[Attribution],
    mut findings: Vec<Finding>,
    s: Session,
) -> Report {
    let start = trace.start_ns.unwrap_or(0);
    let rel = |t: u64| t.saturating_sub(start);
    let failures: Vec<FailureEntry> = trace
        .failures
        .iter()
        .zip(attributions)
        .map(|(g, a)| {
            let f = &g.failure;
            FailureEntry {
                pid: f.origin.pid,
                tid: f.origin.tid,
                comm: f.origin.comm.clone(),
                uid: f.origin.uid,
                syscall: f.syscall.clone(),
                errno: errno::name(f.errno),
                path_hex: f.path.as_ref().and_then(Text::hex_if_invalid),
                path: f.path.clone(),
                path_truncated: f.path_truncated(),
                flags: flags_text(f),
                layer: a.layer,
                confidence: a.confidence,
                evidence: a.evidence.clone(),
                ruled_out: a
                    .ruled_out
                    .iter()
                    .map(|r| explain::ruled_out_entry(s.catalog, r, f))
                    .collect(),
                candidates: a.candidates.clone(),
                noise: a.noise.clone(),
                engine_plumbing: engine_plumbing(trace, f).map(str::to_string),
                count: g.count,
                other_pids: g.other_pids,
                first_ns: rel(g.first_ns),
                first_at: wall_clock(trace, g.first_ns),
                recorded: g.flush.map(|fl| fl.as_str().to_string()),
                signal: f.signal.map(|sig| SignalEntry {
                    name: crate::model::signal_name(sig.signal),
                    number: sig.signal,
                    code: sig.code,
                }),
            }
        })
        .collect();
    let recovered = trace
        .recovered
        .iter()
        .map(|(f, count)| RecoveredEntry {
            pid: f.origin.pid,
            tid: f.origin.tid,
            comm: f.origin.comm.clone(),
            syscall: f.syscall.clone(),
            errno: errno::name(f.errno),
            path: f.path.clone(),
            count: *count,
        })
        .collect();
    for f in &mut findings {
        f.fingerprint = fingerprint(f, &failures);
    }
    // A container engine's own failures never outrank the workload's (stable: explain's order
    // holds within each group).
    findings.sort_by_key(|f| {
        f.failures
            .iter()
            .all(|&i| failures.get(i).is_some_and(|e| e.engine_plumbing.is_some()))
    });
    let messages = trace
        .messages
        .iter()
        .map(|m| MessageEntry {
            pid: m.origin.pid,
            comm: trace.comm_of(m.origin.pid),
            fd: m.fd,
            text_hex: m.text.hex_if_invalid(),
            text: m.text.clone(),
            time_ns: rel(m.origin.time_ns),
        })
        .collect();
    let processes = trace
        .processes
        .values()
        .map(|p| ProcessEntry {
            pid: p.pid,
            ppid: p.ppid,
            comm: p.comm.clone(),
            exe: p.exe.clone(),
            first_seen_ns: rel(p.first_seen_ns.max(start)),
        })
        .collect();
    let landlock_domains = trace
        .landlock
        .domains
        .iter()
        .map(|d| DomainEntry {
            id: d.id,
            created_by: d.created_by,
            creator_comm: d.creator_comm.clone(),
            handled: access_names(d.handled_fs),
            rules_unknown: d.rules_unknown,
            rules: d
                .rules
                .iter()
                .map(|r| RuleEntry {
                    path: r.path.clone(),
                    access: access_names(r.allowed),
                })
                .collect(),
            processes: d.processes.clone(),
        })
        .collect();
    let mut warnings = s.warnings;
    let st = &trace.stats;
    if st.lost_events > 0 {
        warnings.push(format!(
            "{} events were lost (ring buffer full): the report may miss failures",
            st.lost_events
        ));
    }
    if st.untracked_tasks > 0 {
        warnings.push(format!(
            "{} tasks could not be tracked (task map full)",
            st.untracked_tasks
        ));
    }
    if trace.failures_dropped > 0 {
        warnings.push(format!(
            "{} distinct failures beyond the report's bound were counted, not kept",
            trace.failures_dropped
        ));
    }
    Report {
        schema: SCHEMA.into(),
        tool: Tool {
            name: "diag".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        backend: s.backend.as_str().into(),
        mode: s.mode.as_str().into(),
        command: s.command,
        root_pids: s.root_pids,
        exit_status: s.exit_status,
        started_at: Some(humantime::format_rfc3339_seconds(s.started).to_string()),
        duration_ms: s.started.elapsed().ok().map(|d| d.as_millis() as u64),
        hostname: s.host.hostname.clone(),
        partial: s.partial,
        host: Host {
            kernel: s.host.kernel.clone(),
            lsms: s.host.lsms.clone(),
            landlock_abi: s.host.landlock_abi,
        },
        processes,
        failures,
        recovered,
        landlock_domains,
        messages,
        findings,
        probes: Probes {
            attached: s.probes.attached.clone(),
            missing: s
                .probes
                .missing
                .iter()
                .map(|(p, w)| MissingProbe {
                    probe: p.clone(),
                    why: w.clone(),
                })
                .collect(),
        },
        lost_events: st.lost_events,
        stats: Stats {
            process_forks: st.process_forks,
            thread_forks: st.thread_forks,
            messages_dropped: st.messages_dropped + trace.messages_dropped,
            failures_dropped: trace.failures_dropped,
            untracked_tasks: st.untracked_tasks,
            processes_pruned: trace.processes_pruned,
            unrecorded_failures: st.unrecorded_failures,
            recovered_dropped: trace.recovered_dropped,
        },
        warnings,
        verification: None,
        container: None,
    }
}
