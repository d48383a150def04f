//! Explain: turns attributed failures and the messages the program printed into findings, using
//! the cause catalog. One finding per (cause, layer); ranked with the likely root cause first.

pub mod catalog;
pub mod docs;
pub mod policy;

use crate::attribute::{Attribution, Suspects};
use crate::context::path::FileKind;
use crate::correlate::{FailureGroup, Trace};
use crate::model::{errno, syscalls, Confidence, Failure, Layer, Text};
use crate::report::build::engine_plumbing;
use crate::report::model::{Finding, RuledOutEntry};
use catalog::{Catalog, Cause};

/// Which suspect names a layer rules out, so a finding never lists its own cause as excluded.
fn suspect_layer(suspect: &str) -> Option<Layer> {
    Some(match suspect {
        "seccomp" => Layer::Seccomp,
        "nproc-exhausted" => Layer::RlimitNproc,
        "pids-limit" => Layer::CgroupPids,
        "threads-max" => Layer::ThreadsMax,
        "dac" => Layer::Dac,
        "landlock" => Layer::Landlock,
        "mount-noexec" => Layer::MountNoexec,
        "capability" => Layer::Capability,
        other => return Layer::parse(other),
    })
}

struct Draft<'c> {
    cause: &'c Cause,
    layer: Layer,
    /// A container engine's own failures make findings of their own, never the workload's.
    engine_plumbing: bool,
    failures: Vec<usize>,
    explains: Vec<usize>,
    /// (message index, misleading note) of the best message.
    misleading: Option<String>,
}

pub fn findings(trace: &Trace, attributions: &[Attribution], catalog: &Catalog) -> Vec<Finding> {
    let mut drafts: Vec<Draft> = Vec::new();
    for (i, (g, a)) in trace.failures.iter().zip(attributions).enumerate() {
        if a.noise.is_some() {
            continue;
        }
        let cause = match_cause(catalog, g, a);
        let engine_plumbing = engine_plumbing(trace, &g.failure).is_some();
        match drafts.iter_mut().find(|d| {
            d.cause.id == cause.id && d.layer == a.layer && d.engine_plumbing == engine_plumbing
        }) {
            Some(d) => d.failures.push(i),
            None => drafts.push(Draft {
                cause,
                layer: a.layer,
                engine_plumbing,
                failures: vec![i],
                explains: vec![],
                misleading: None,
            }),
        }
    }
    link_messages(trace, &mut drafts);
    let mut out: Vec<(Finding, RankKey)> = drafts
        .into_iter()
        .map(|d| {
            let first = d
                .failures
                .iter()
                .map(|&i| trace.failures[i].first_ns)
                .min()
                .unwrap_or(0);
            let conf = d
                .failures
                .iter()
                .map(|&i| attributions[i].confidence)
                .min()
                .unwrap_or(Confidence::Unknown);
            // Failures reported at once (a watched errno) or deaths come before those a
            // flight recorder handed over after a complaint: those had no errno diag watches.
            let recorded_only = d.failures.iter().all(|&i| {
                let g = &trace.failures[i];
                g.flush.is_some() && g.failure.signal.is_none()
            });
            let key = (
                d.explains.is_empty(),
                recorded_only,
                conf,
                d.cause.id == "unknown",
                first,
            );
            (finish(trace, attributions, d), key)
        })
        .collect();
    out.sort_by_key(|(_, k)| *k);
    out.into_iter().map(|(f, _)| f).collect()
}

/// How findings are ordered: (no message explained, only recorded failures, confidence,
/// unknown cause, first failure's time).
type RankKey = (bool, bool, Confidence, bool, u64);

fn match_cause<'c>(catalog: &'c Catalog, g: &FailureGroup, a: &Attribution) -> &'c Cause {
    let f = &g.failure;
    let path = f.path.as_ref().map(Text::lossy);
    catalog
        .causes
        .iter()
        .find(|c| {
            c.evidence
                .iter()
                .any(|e| e.matches(&f.syscall, f.errno, path.as_deref(), a.layer))
        })
        .unwrap_or_else(|| catalog.causes.last().expect("catalog ends with unknown"))
}

/// Links each message to the finding whose cause's message patterns it matches (strong), or
/// whose failure's errno text it carries, printed after the failure in the same tree (weak);
/// between equals, the finding with a failure in the process that printed it.
fn link_messages(trace: &Trace, drafts: &mut [Draft]) {
    for (mi, m) in trace.messages.iter().enumerate() {
        let text = m.text.lossy();
        let mut best: Option<(usize, (u8, bool), Option<String>)> = None;
        for (di, d) in drafts.iter().enumerate() {
            let first_ns = d
                .failures
                .iter()
                .map(|&i| trace.failures[i].first_ns)
                .min()
                .unwrap_or(0);
            if m.origin.time_ns != 0 && first_ns != 0 && m.origin.time_ns < first_ns {
                continue; // printed before anything failed
            }
            let case = d.cause.cases.iter().find(|c| c.message.is_match(&text));
            let errno_text = d.failures.iter().any(|&i| {
                let e = trace.failures[i].failure.errno;
                text.contains(&errno::message(e)) || text.contains(&errno::name(e))
            });
            let strength = match (case.is_some(), errno_text) {
                (true, true) => 3,
                (true, false) => 2,
                (false, true) => 1,
                _ => 0,
            };
            let same_process = d
                .failures
                .iter()
                .any(|&i| trace.failures[i].failure.origin.pid == m.origin.pid);
            let score = (strength, same_process);
            if strength > 0 && best.as_ref().is_none_or(|(_, s, _)| score > *s) {
                best = Some((di, score, case.and_then(|c| c.misleading.clone())));
            }
        }
        if let Some((di, _, misleading)) = best {
            let d = &mut drafts[di];
            d.explains.push(mi);
            if d.misleading.is_none() {
                d.misleading = misleading;
            }
        }
    }
}

fn finish(trace: &Trace, attributions: &[Attribution], d: Draft) -> Finding {
    let lead = d.failures[0];
    let g = &trace.failures[lead];
    let a = &attributions[lead];
    let f = &g.failure;
    let call = describe_call(g);
    let who = format!("pid {} ({})", f.origin.pid, f.origin.comm.lossy());
    let refused = match d.layer {
        Layer::Unknown => format!("failed with {}", errno::name(f.errno)),
        l => format!("was refused by {}", l.title()),
    };
    let forks = fork_note(trace);
    let summary = match d.explains.first().map(|&mi| &trace.messages[mi]) {
        Some(m) => {
            let program = program_name(trace, m.origin.pid);
            let mut s = format!(
                "{program} said \"{}\". Real cause: {call} {refused} in {who}",
                m.text.lossy().trim()
            );
            let clone_failed = d
                .failures
                .iter()
                .any(|&i| syscalls::is_clone(&trace.failures[i].failure.syscall));
            let fork_claim = mentions_process_creation(&m.text.lossy()) && !clone_failed;
            match (&d.misleading, fork_claim) {
                (Some(note), true) => s.push_str(&format!("; {note} ({forks})")),
                (Some(note), false) => s.push_str(&format!("; {note}")),
                (None, true) => s.push_str(&format!("; {forks}")),
                (None, false) => {}
            }
            s
        }
        None => format!("{call} {refused} in {who}"),
    };
    let mut evidence: Vec<String> = Vec::new();
    for &i in &d.failures {
        for e in &attributions[i].evidence {
            if !evidence.contains(e) {
                evidence.push(e.clone());
            }
        }
    }
    if d.failures.len() > 1 {
        evidence.push(format!(
            "{} distinct failing calls fold into this finding",
            d.failures.len()
        ));
    }
    if d.layer == Layer::Unknown && !a.candidates.is_empty() {
        evidence.push(format!(
            "candidate layers: {}",
            a.candidates
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Finding {
        fingerprint: String::new(), // set with the report's failures, in report::build
        cause: d.cause.id.clone(),
        layer: d.layer,
        confidence: d
            .failures
            .iter()
            .map(|&i| attributions[i].confidence)
            .min()
            .unwrap_or(Confidence::Unknown),
        summary,
        ruled_out: ruled_out(trace, attributions, &d),
        fix: fix_text(d.cause, d.layer, g, trace),
        failures: d.failures,
        explains: d.explains,
        evidence,
        policy_patch: None,
    }
}

/// The program's name: its executable's file name, else its comm.
fn program_name(trace: &Trace, pid: u32) -> String {
    let p = trace.processes.get(&pid);
    p.and_then(|p| p.exe.as_ref())
        .map(|e| e.lossy().rsplit('/').next().unwrap_or_default().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| trace.comm_of(pid).lossy())
}

fn mentions_process_creation(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["fork", "spawn", "clone", "thread", "create window"]
        .iter()
        .any(|w| t.contains(w))
}

fn fork_note(trace: &Trace) -> String {
    let s = &trace.stats;
    format!(
        "fork/clone succeeded {} times: {} processes, {} threads",
        s.process_forks + s.thread_forks,
        s.process_forks,
        s.thread_forks
    )
}

/// "openat /dev/ptmx (O_RDWR|O_NOCTTY)".
pub fn describe_call(g: &FailureGroup) -> String {
    let f = &g.failure;
    let mut s = f.syscall.clone();
    if let Some(p) = f.path_shown() {
        s.push(' ');
        s.push_str(&p);
    }
    if let Some(fl) = crate::report::build::flags_text(f) {
        s.push_str(&format!(" ({fl})"));
    }
    s
}

/// The failures' own exclusions plus the classic suspects, minus the finding's own layer.
fn ruled_out(trace: &Trace, attributions: &[Attribution], d: &Draft) -> Vec<RuledOutEntry> {
    let lead = d.failures[0];
    let mut out: Vec<RuledOutEntry> = Vec::new();
    let mut push = |suspect: &str, why: &str| {
        if suspect_layer(suspect) == Some(d.layer) || out.iter().any(|r| r.cause == suspect) {
            return;
        }
        let is_limit_cause = matches!(
            d.cause.id.as_str(),
            "nproc-exhausted" | "pids-limit" | "threads-max"
        );
        if suspect == "clone" && is_limit_cause {
            return;
        }
        out.push(RuledOutEntry {
            cause: suspect.to_string(),
            why: why.to_string(),
        });
    };
    for r in &attributions[lead].ruled_out {
        push(&r.suspect, &r.why);
    }
    let suspects = Suspects::measure(trace, attributions, trace.failures[lead].context.as_ref());
    for r in &suspects.ruled_out {
        push(&r.suspect, &r.why);
    }
    out
}

fn fix_text(cause: &Cause, layer: Layer, g: &FailureGroup, trace: &Trace) -> String {
    let f = &g.failure;
    let path = f.path.as_ref().map(Text::lossy).unwrap_or_default();
    // A cut path's parent is still one of the whole path's directories.
    let dir = std::path::Path::new(&path)
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mount = g
        .context
        .as_ref()
        .and_then(|c| c.path.as_ref())
        .and_then(|p| p.mount.as_ref())
        .map(|m| m.mount_point.display().to_string())
        .unwrap_or_else(|| dir.clone());
    cause
        .fix_for(layer)
        .replace("{path}", &path)
        .replace("{dir}", &dir)
        .replace("{syscall}", &f.syscall)
        .replace("{errno}", &errno::name(f.errno))
        .replace("{mount_point}", &mount)
        .replace("{pty_grant}", &pty_grant(trace))
        + &cut_note(f)
}

/// Says that a fix's path is only the head of the path the program used.
fn cut_note(f: &Failure) -> String {
    match f.path_cut.filter(|_| f.path_truncated()) {
        Some(cut) => format!(
            " (The path was cut: only its first {} bytes were seen, so it names no file by itself; the program used a longer path under {}…)",
            cut.head,
            f.path.as_ref().map(Text::lossy).unwrap_or_default()
        ),
        None => String::new(),
    }
}

/// How /dev/ptmx looks to the failing process (else on this host): a node or a symlink.
pub fn ptmx_kind(trace: &Trace) -> Option<FileKind> {
    let seen = trace.failures.iter().find_map(|g| {
        let facts = g.context.as_ref()?.path.as_ref()?;
        (facts.path == std::path::Path::new("/dev/ptmx")).then(|| facts.kind.clone())
    });
    seen.or_else(|| {
        let m = std::fs::symlink_metadata("/dev/ptmx").ok()?;
        Some(if m.file_type().is_symlink() {
            FileKind::Symlink(String::new())
        } else {
            FileKind::CharDevice
        })
    })
}

/// What to grant for PTYs, in words.
pub fn pty_grant(trace: &Trace) -> String {
    match ptmx_kind(trace) {
        Some(FileKind::Symlink(_)) => "/dev/pts (/dev/ptmx is a symlink to pts/ptmx here, so the directory grant covers it)".into(),
        Some(FileKind::CharDevice) => "/dev/pts and /dev/ptmx (/dev/ptmx is a character device node here, not a symlink into /dev/pts, so the directory grant alone does not cover it)".into(),
        _ => "/dev/pts, and /dev/ptmx where it is a device node rather than a symlink to pts/ptmx".into(),
    }
}

#[cfg(test)]
mod tests;
