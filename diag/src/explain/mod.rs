//! Explain: turns attributed failures and the messages the program printed into findings, using
//! the cause catalog. One finding per (cause, layer); ranked with the likely root cause first.

pub mod catalog;
pub mod docs;
pub mod policy;

use crate::attribute::{Attribution, RuledOut, Suspects};
use crate::context::path::FileKind;
use crate::correlate::{FailureGroup, Trace};
use crate::model::{errno, syscalls, Confidence, Failure, Layer, Text};
use crate::report::build::engine_plumbing;
use crate::report::model::{Finding, RuledOutEntry};
use catalog::{Catalog, Cause};

struct Draft<'c> {
    cause: &'c Cause,
    layer: Layer,
    /// A container engine's own failures make findings of their own, never the workload's.
    engine_plumbing: bool,
    failures: Vec<usize>,
    /// Linked messages with the basis of each link.
    explains: Vec<(usize, String)>,
    /// The message that agrees best, which the summary quotes.
    headline: Option<(usize, (bool, bool, Speaker))>,
    /// The misleading note of the first linked message's catalog case.
    misleading: Option<String>,
}

pub fn findings(trace: &Trace, attributions: &[Attribution], catalog: &Catalog) -> Vec<Finding> {
    let mut drafts: Vec<Draft> = Vec::new();
    for (i, (g, a)) in trace.failures.iter().zip(attributions).enumerate() {
        if a.noise.is_some() {
            continue;
        }
        let cause = match_cause(catalog, &g.failure, a.layer);
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
                headline: None,
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
            let recorded_only = d
                .failures
                .iter()
                .all(|&i| trace.failures[i].flush.is_some());
            let key = (
                d.explains.is_empty(),
                recorded_only,
                conf,
                d.cause.id == "unknown",
                first,
            );
            (finish(trace, attributions, catalog, d), key)
        })
        .collect();
    out.sort_by_key(|(_, k)| *k);
    out.into_iter().map(|(f, _)| f).collect()
}

/// How findings are ordered: (no message explained, only recorded failures, confidence,
/// unknown cause, first failure's time).
type RankKey = (bool, bool, Confidence, bool, u64);

fn match_cause<'c>(catalog: &'c Catalog, f: &Failure, layer: Layer) -> &'c Cause {
    let path = f.path.as_ref().map(Text::lossy);
    catalog
        .causes
        .iter()
        .find(|c| {
            c.evidence
                .iter()
                .any(|e| e.matches(&f.syscall, f.errno, path.as_deref(), layer))
        })
        .unwrap_or_else(|| catalog.causes.last().expect("catalog ends with unknown"))
}

/// How a message's process stands to the failing one: the same process outranks a relay (an
/// ancestor printing what its child did: a shell, a launcher, a container engine), which
/// outranks another process of the tree.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Speaker {
    Other,
    Relay,
    Same,
}

/// Why a message is linked to a finding, for the report's `explains_basis`.
struct Link {
    /// (cause's message pattern, the failure's own words, speaker): compared in that order.
    score: (bool, bool, Speaker),
    basis: String,
}

/// Links each message to the finding whose failure it agrees with best: printed after the
/// failure, by the failing process or a relay of it, with text that carries the failure's cause
/// pattern or its own words (errno string or name, path, syscall). A process elsewhere in the
/// tree links only on the cause's pattern.
fn link_messages(trace: &Trace, drafts: &mut [Draft]) {
    for (mi, m) in trace.messages.iter().enumerate() {
        let text = m.text.lossy();
        let mut best: Option<(usize, Link, Option<String>)> = None;
        for (di, d) in drafts.iter().enumerate() {
            let case = d.cause.cases.iter().find(|c| c.message.is_match(&text));
            let Some(link) = d
                .failures
                .iter()
                .filter_map(|&i| link(trace, &trace.failures[i], m, &text, case.is_some()))
                .max_by_key(|l| l.score)
            else {
                continue;
            };
            if best.as_ref().is_none_or(|(_, b, _)| link.score > b.score) {
                best = Some((di, link, case.and_then(|c| c.misleading.clone())));
            }
        }
        if let Some((di, link, misleading)) = best {
            let d = &mut drafts[di];
            if d.headline.as_ref().is_none_or(|(_, s)| link.score > *s) {
                d.headline = Some((mi, link.score));
            }
            d.explains.push((mi, link.basis));
            if d.misleading.is_none() {
                d.misleading = misleading;
            }
        }
    }
}

/// How message `m` agrees with failure `g`, if it does.
fn link(
    trace: &Trace,
    g: &FailureGroup,
    m: &crate::model::Message,
    text: &str,
    pattern: bool,
) -> Option<Link> {
    let f = &g.failure;
    if m.origin.time_ns != 0 && g.first_ns != 0 && m.origin.time_ns < g.first_ns {
        return None; // printed before the call failed
    }
    let speaker = if m.origin.pid == f.origin.pid {
        Speaker::Same
    } else if trace.ancestors(f.origin.pid).contains(&m.origin.pid) {
        Speaker::Relay
    } else {
        Speaker::Other
    };
    let mut words: Vec<String> = Vec::new();
    let errno_text = errno::message(f.errno);
    if text.contains(&errno_text) {
        words.push(format!("the errno string \"{errno_text}\""));
    } else if contains_word(text, &errno::name(f.errno)) {
        words.push(format!("the errno name {}", errno::name(f.errno)));
    }
    if let Some(path) = f.path.as_ref().map(Text::lossy) {
        if names_path(text, &path) {
            words.push("the path".into());
        }
    }
    if f.syscall.len() > 3 && contains_word(text, &f.syscall) {
        words.push(format!("the syscall name {}", f.syscall));
    }
    let own_words = !words.is_empty();
    if !(pattern || own_words && speaker > Speaker::Other) {
        return None;
    }
    let who = match speaker {
        Speaker::Same => "the failing process",
        Speaker::Relay => "an ancestor relaying the failing process",
        Speaker::Other => "another process of the tree",
    };
    if pattern {
        words.insert(0, "the cause's message pattern".into());
    }
    Some(Link {
        score: (pattern, own_words, speaker),
        basis: format!(
            "printed by {who} (pid {}) after {} failed; its text has {}",
            m.origin.pid,
            f.syscall,
            words.join(", ")
        ),
    })
}

/// `word` in `text` with no letter, digit or underscore on either side.
pub(crate) fn contains_word(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        !text[..at].chars().next_back().is_some_and(is_word)
            && !text[at + word.len()..].chars().next().is_some_and(is_word)
    })
}

/// Whether `text` names `path`: whole, or cut short (a capture keeps the first bytes of each
/// write) after at least three of its directories.
pub(crate) fn names_path(text: &str, path: &str) -> bool {
    if path.len() > 1 && text.contains(path) {
        return true;
    }
    text.split(|c: char| c.is_whitespace() || c == '\'' || c == '"')
        .any(|token| {
            token.starts_with('/') && token.matches('/').count() >= 3 && path.starts_with(token)
        })
}

fn finish(trace: &Trace, attributions: &[Attribution], catalog: &Catalog, d: Draft) -> Finding {
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
    let refused = match &a.decoded {
        Some(decoded) => format!("{refused} ({decoded})"),
        None => refused,
    };
    let forks = fork_note(trace);
    let summary = match d.headline.map(|(mi, _)| &trace.messages[mi]) {
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
        ruled_out: ruled_out(trace, attributions, catalog, &d),
        fix: a
            .fix
            .clone()
            .unwrap_or_else(|| fix_text(d.cause, d.layer, g, trace, &evidence))
            + &audit_remedies(trace, &d.failures),
        failures: d.failures,
        explains_basis: d.explains.iter().map(|(_, b)| b.clone()).collect(),
        explains: d.explains.into_iter().map(|(mi, _)| mi).collect(),
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
fn ruled_out(
    trace: &Trace,
    attributions: &[Attribution],
    catalog: &Catalog,
    d: &Draft,
) -> Vec<RuledOutEntry> {
    let lead = d.failures[0];
    let suspects = Suspects::measure(trace, attributions, trace.failures[lead].context.as_ref());
    let mut out: Vec<RuledOutEntry> = Vec::new();
    for r in attributions[lead]
        .ruled_out
        .iter()
        .chain(&suspects.ruled_out)
    {
        if r.layer == Some(d.layer) || out.iter().any(|o| o.layer == r.layer) {
            continue;
        }
        out.push(ruled_out_entry(catalog, r, &trace.failures[lead].failure));
    }
    out
}

/// A ruled-out layer in the cause vocabulary: the cause of the layer's own (a catalog cause
/// whose evidence names that layer alone, e.g. seccomp-denied), else the cause `f` would have had
/// had that layer refused it (file-denied, exec-denied...).
pub fn ruled_out_entry(catalog: &Catalog, r: &RuledOut, f: &Failure) -> RuledOutEntry {
    let layer = r.layer.unwrap_or(Layer::Unknown);
    let own = catalog
        .causes
        .iter()
        .find(|c| c.evidence.iter().any(|e| e.layers == [layer]));
    RuledOutEntry {
        cause: own
            .unwrap_or_else(|| match_cause(catalog, f, layer))
            .id
            .clone(),
        layer: r.layer,
        why: r.why.clone(),
    }
}

/// `CAP_SYS_ADMIN` in "cap_capable refused CAP_SYS_ADMIN during the call".
pub fn capability_named(text: &str) -> Option<String> {
    let at = text.find("CAP_")?;
    let name: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_uppercase() || *c == '_')
        .collect();
    (name.len() > 4).then_some(name)
}

fn fix_text(
    cause: &Cause,
    layer: Layer,
    g: &FailureGroup,
    trace: &Trace,
    evidence: &[String],
) -> String {
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
        .and_then(crate::context::PathFacts::own_mount)
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
        .replace(
            "{capability}",
            &evidence
                .iter()
                .find_map(|e| capability_named(e))
                .unwrap_or_else(|| "the capability named in the evidence".into()),
        )
        + &cut_note(f)
}

/// Distinct remedies shown in one fix: each audit record of a finding may name its own rule.
const MAX_REMEDIES: usize = 5;

/// What the layers' own denial records say would allow the accesses (an audit record's
/// `allow` rule, profile line or Landlock rule), once each.
fn audit_remedies(trace: &Trace, failures: &[usize]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for &i in failures {
        let audit = trace.failures[i].failure.evidence.audit.as_ref();
        if let Some(r) = audit.and_then(|v| v.remedy.as_deref()) {
            if !out.contains(&r) && out.len() < MAX_REMEDIES {
                out.push(r);
            }
        }
    }
    out.iter().map(|r| format!(" {r}")).collect()
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

/// How /dev/ptmx looks to the failing process (else on this host, unless the trace comes
/// from a log of another host): a node or a symlink.
pub fn ptmx_kind(trace: &Trace) -> Option<FileKind> {
    let seen = trace.failures.iter().find_map(|g| {
        let facts = g.context.as_ref()?.path.as_ref()?;
        (facts.path == std::path::Path::new("/dev/ptmx")).then(|| facts.kind.clone())
    });
    if trace.from_log.is_some() {
        return seen;
    }
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
