//! Emitting a finished report: redacted once, then human text on stderr, and JSON, Markdown and
//! the CI outputs where asked.

use super::args::{FailOn, Format, ReportArgs};
use super::ci;
use crate::capture::{ebpf, ProbeReport};
use crate::correlate::Trace;
use crate::explain::catalog::{self, Catalog};
use crate::model::Confidence;
use crate::report::model;
use crate::report::model::Finding;
use crate::report::stream::Follower;
use crate::report::{human, markdown, redact::Redactor, write, Report};
use anyhow::Result;
use std::io::Write;
use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// `--version`: the version, the commit it was built from and whether the eBPF backend is
/// built in.
pub fn version() -> &'static str {
    static VERSION: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{} (commit {}; eBPF backend: {})",
            env!("CARGO_PKG_VERSION"),
            env!("DIAG_COMMIT"),
            ebpf_status()
        )
    });
    &VERSION
}

/// One line on the eBPF backend of this build.
pub fn ebpf_status() -> String {
    match ebpf::missing_reason() {
        None => "built in".into(),
        Some(r) => format!("not built in: {r}"),
    }
}

/// What the human report is printed on (stderr), with `--color`.
pub fn terminal(args: &ReportArgs) -> human::Terminal {
    human::Terminal::stderr(args.color.forced())
}

/// The cause catalog of this session: the built-in one, extended by `--catalog FILE`.
pub fn catalog(path: Option<&Path>) -> Result<&'static Catalog> {
    match path {
        None => Ok(catalog::builtin()),
        Some(p) => catalog::with_user_file(p).map_err(|e| super::usage(format!("{e:#}"))),
    }
}

/// Checks up front that every requested output can be written, and that none of them would
/// overwrite one of the command's `inputs` (a log, a policy) or another output.
pub fn check(args: &ReportArgs, inputs: &[&Path]) -> Result<()> {
    catalog(args.catalog.as_deref())?;
    let on_stdout = stdout_outputs(args);
    if on_stdout.len() > 1 {
        return Err(super::usage(format!(
            "{} would all write to stdout; send all but one to a file",
            on_stdout.join(" and ")
        )));
    }
    let system = ci::system(args);
    let ci_json = system.map(|_| ci::json_artifact_path());
    let code_quality =
        (system == Some(ci::System::GitLab)).then(|| Path::new(ci::GITLAB_CODE_QUALITY));
    let outputs: Vec<(&str, &Path)> = [
        ("--json", args.json.as_deref()),
        ("--markdown", args.markdown.as_deref()),
        ("CI mode", ci_json.as_deref()),
        ("CI mode (GitLab)", code_quality),
    ]
    .into_iter()
    .filter_map(|(what, p)| Some((what, p?)))
    .filter(|(_, p)| *p != Path::new("-"))
    .collect();
    for (i, &(what, path)) in outputs.iter().enumerate() {
        write::check_writable(path).map_err(|e| super::usage(format!("{what}: {e:#}")))?;
        if let Some(input) = inputs.iter().find(|input| write::same_file(path, input)) {
            return Err(super::usage(format!(
                "{what} {}: that is an input ({}); diag would overwrite it",
                path.display(),
                input.display()
            )));
        }
        if let Some((other, _)) = outputs[..i].iter().find(|(_, p)| write::same_file(path, p)) {
            return Err(super::usage(format!(
                "{what} {}: {other} writes there too",
                path.display()
            )));
        }
    }
    Ok(())
}

/// The outputs that go to stdout ("-").
pub fn stdout_outputs(args: &ReportArgs) -> Vec<&'static str> {
    let dash = |p: &Option<std::path::PathBuf>| p.as_deref() == Some(Path::new("-"));
    [
        (dash(&args.json), "--json -"),
        (dash(&args.markdown), "--markdown -"),
        (args.format == Format::Json, "--format json"),
        (args.format == Format::Jsonl, "--format jsonl"),
    ]
    .into_iter()
    .filter_map(|(on, what)| on.then_some(what))
    .collect()
}

/// JSON lines on stdout while tracing (`--format jsonl`): each snapshot of the report is
/// redacted as the final report is, before anything of it is written.
pub struct Stream {
    follower: Follower<Box<dyn Write>>,
    patterns: Vec<regex::bytes::Regex>,
}

impl Stream {
    /// A stream when `--format jsonl` asks for one.
    pub fn new(args: &ReportArgs) -> Option<Stream> {
        (args.format == Format::Jsonl).then(|| Stream {
            follower: Follower::new(write::stdout()),
            patterns: args.redact.clone(),
        })
    }

    /// Writes what is new in `snapshot`. A reader that went away (EPIPE) does not stop the
    /// trace: the final report is still written where asked.
    pub fn update(&mut self, mut snapshot: Report) {
        Redactor::new(&self.patterns).apply(&mut snapshot);
        let _ = self.follower.update(&snapshot);
    }

    fn finish(self, report: &Report) -> Result<()> {
        Ok(self.follower.finish(report)?)
    }
}

/// A report of the trace so far, for the stream.
pub type Snapshot<'a> = dyn Fn(&Trace, &ProbeReport, model::Backend) -> Report + 'a;

/// `--format jsonl` while tracing: a snapshot of the report when failures or messages were
/// added, at most every 200 ms, its new failures and findings written as lines.
pub struct Following<'a> {
    stream: Stream,
    snapshot: &'a Snapshot<'a>,
    seen: (usize, usize),
    last: Option<Instant>,
}

impl<'a> Following<'a> {
    const EVERY: Duration = Duration::from_millis(200);

    pub fn new(args: &ReportArgs, snapshot: &'a Snapshot<'a>) -> Option<Self> {
        Some(Following {
            stream: Stream::new(args)?,
            snapshot,
            seen: (0, 0),
            last: None,
        })
    }

    pub fn tick(&mut self, trace: &Trace, probes: &ProbeReport, backend: model::Backend) {
        let now = (trace.failures.len(), trace.messages.len());
        if now == self.seen || self.last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return;
        }
        self.seen = now;
        self.last = Some(Instant::now());
        self.stream.update((self.snapshot)(trace, probes, backend));
    }

    pub fn into_stream(self) -> Stream {
        self.stream
    }
}

/// Report files in CI belong to the user who ran diag with sudo, so the runner's next steps
/// can read them; elsewhere they stay root's, 0600.
fn report_owner(ci: bool) -> Option<write::Owner> {
    ci.then(write::Owner::from_sudo).flatten()
}

/// `analyze`'s and `attach`'s exit status: 1 when `fail_on` is set and a finding meets it.
pub fn status_for(report: &Report, fail_on: Option<FailOn>) -> i32 {
    let known = |f: &&Finding| f.cause != "unknown";
    let met = match fail_on {
        None => false,
        Some(FailOn::Any) => !report.findings.is_empty(),
        Some(FailOn::Cause) => report.findings.iter().any(|f| known(&f)),
        Some(FailOn::Direct) => report
            .findings
            .iter()
            .filter(known)
            .any(|f| f.confidence == Confidence::Direct),
    };
    i32::from(met)
}

/// Writes the finished report everywhere asked; `stream` is the JSON-lines stream already
/// started while tracing, if any (else one is made here for `--format jsonl`).
pub fn emit(report: &Report, args: &ReportArgs, stream: Option<Stream>) -> Result<()> {
    let mut report = report.clone();
    Redactor::new(&args.redact).apply(&mut report);
    let report = &report;
    let system = ci::system(args);
    match args.format {
        Format::Table => {}
        Format::Json => {
            let json = serde_json::to_string_pretty(report)? + "\n";
            write::write_output(Path::new("-"), &json, None)?;
        }
        Format::Jsonl => stream
            .or_else(|| Stream::new(args))
            .expect("--format jsonl")
            .finish(report)?,
    }
    if !args.quiet && args.format == Format::Table {
        let (head, tables) = human::render_parts(report, terminal(args));
        let text = match system {
            Some(s) => ci::fold(s, &head, &tables),
            None => head + &tables,
        };
        // stderr may be closed (SIGPIPE is ignored): the files below must still be written.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
    let ci = system.is_some();
    let owner = report_owner(ci);
    if args.json.is_some() || ci {
        let mut json = serde_json::to_string_pretty(report)?;
        json.push('\n');
        if let Some(p) = &args.json {
            write::write_output(p, &json, owner)?;
        }
        if ci {
            ci::write_json(&json, owner, args.quiet)?;
        }
    }
    if args.markdown.is_some() || ci {
        let md = markdown::render(report);
        if let Some(p) = &args.markdown {
            write::write_output(p, &md, owner)?;
        }
        if let Some(system) = system {
            ci::publish(system, report, &md, owner, args.quiet)?;
        }
    }
    Ok(())
}
