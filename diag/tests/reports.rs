//! Reports people use (issue 8): the schema, the Markdown ticket, CI mode, redaction, private
//! report files, `diag doctor`, `--version`, completions and man pages. End to end, as root,
//! on the seed case where a run is needed.

mod common;
use common::*;
use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// `-- diag sandbox --policy <seed policy> -- tmux -L <socket> new-session -d -s t 'sleep 30'`.
fn seed_tail(tmux: &TmuxSocket) -> Vec<String> {
    std::iter::once("--".to_string())
        .chain(seed_command(tmux))
        .collect()
}

fn with<'a>(options: &[&'a str], command: &'a [String]) -> Vec<&'a str> {
    options
        .iter()
        .copied()
        .chain(command.iter().map(String::as_str))
        .collect()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A Markdown document as the blocks a reader sees.
#[derive(Debug, PartialEq)]
enum Block {
    Heading(HeadingLevel, String),
    Paragraph(String),
    Item(String),
    Table(Vec<Vec<String>>),
    Code(String, String),
    Html(String),
}

fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut depth_in_item = 0;
    let mut lang = String::new();
    for ev in Parser::new_ext(md, Options::ENABLE_TABLES) {
        match ev {
            Event::Start(Tag::Item) => {
                depth_in_item += 1;
                text.clear();
            }
            Event::End(TagEnd::Item) => {
                depth_in_item -= 1;
                out.push(Block::Item(std::mem::take(&mut text)));
            }
            Event::Start(Tag::Heading { .. } | Tag::Paragraph | Tag::TableCell)
                if depth_in_item == 0 =>
            {
                text.clear()
            }
            Event::End(TagEnd::Heading(level)) => {
                out.push(Block::Heading(level, std::mem::take(&mut text)))
            }
            Event::End(TagEnd::Paragraph) if depth_in_item == 0 => {
                out.push(Block::Paragraph(std::mem::take(&mut text)))
            }
            Event::Start(Tag::Table(_)) => rows.clear(),
            Event::Start(Tag::TableHead | Tag::TableRow) => rows.push(Vec::new()),
            Event::End(TagEnd::TableCell) => {
                rows.last_mut().unwrap().push(std::mem::take(&mut text))
            }
            Event::End(TagEnd::Table) => out.push(Block::Table(std::mem::take(&mut rows))),
            Event::Start(Tag::CodeBlock(kind)) => {
                text.clear();
                lang = match kind {
                    CodeBlockKind::Fenced(l) => l.to_string(),
                    CodeBlockKind::Indented => String::new(),
                };
            }
            Event::End(TagEnd::CodeBlock) => {
                out.push(Block::Code(lang.clone(), std::mem::take(&mut text)))
            }
            Event::Html(h) => out.push(Block::Html(h.trim().to_string())),
            Event::Text(t) | Event::Code(t) => text.push_str(&t),
            Event::SoftBreak | Event::HardBreak => text.push(' '),
            _ => {}
        }
    }
    out
}

fn heading_index(b: &[Block], level: HeadingLevel, title: &str) -> usize {
    b.iter()
        .position(|x| matches!(x, Block::Heading(l, t) if *l == level && t == title))
        .unwrap_or_else(|| panic!("no {level:?} heading {title:?} in {b:#?}"))
}

#[test]
fn seed_report_matches_the_schema_and_its_markdown_reads_as_a_ticket() {
    require_privileged!();
    let scratch = Scratch::new("md");
    let tmux = TmuxSocket::new("md");
    let md_path = scratch.path("report.md");
    let cmd = seed_tail(&tmux);
    // diag_json checks the JSON against docs/report-schema.json before parsing it.
    let run = diag_json(
        &scratch,
        "run",
        &with(&["--markdown", md_path.to_str().unwrap()], &cmd),
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.report();
    let top = &r.findings[0];
    assert_eq!(top.cause, "pty-denied");
    let md = std::fs::read_to_string(&md_path).unwrap();
    let b = blocks(&md);

    // The verdict first: a heading naming the cause and layer, then the summary, then the fix.
    assert_eq!(
        b[0],
        Block::Heading(HeadingLevel::H2, "diag: pty-denied (Landlock)".into()),
        "{md}"
    );
    assert_eq!(b[1], Block::Paragraph(top.summary.clone()));
    assert_eq!(b[2], Block::Paragraph(format!("Fix: {}", top.fix)));

    // The findings, with the message they explain, evidence and ruled-out lists.
    let findings = heading_index(&b, HeadingLevel::H3, "Findings");
    let first = heading_index(&b, HeadingLevel::H4, "1. pty-denied · Landlock · direct");
    assert!(findings < first);
    let items: Vec<&str> = b[first + 1..]
        .iter()
        .take_while(|x| !matches!(x, Block::Heading(..)))
        .filter_map(|x| match x {
            Block::Item(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        items.iter().any(|i| i.ends_with(&format!(": {TMUX_FAIL}"))),
        "{items:#?}"
    );
    assert!(
        items
            .iter()
            .any(|i| i.starts_with("openat /dev/ptmx EACCES in pid") && i.contains("tmux: server")),
        "{items:#?}"
    );
    for ro in &top.ruled_out {
        assert!(
            items.contains(&ro.why.as_str()),
            "ruled-out {} missing from {items:#?}",
            ro.cause
        );
    }
    for ev in &top.evidence {
        assert!(items.contains(&ev.as_str()), "evidence missing: {ev}");
    }

    // Host facts: kernel, LSMs, backend; the probes this kernel refused.
    let host = heading_index(&b, HeadingLevel::H3, "Host");
    let Block::Table(rows) = &b[host + 1] else {
        panic!("no host table after the Host heading: {:#?}", &b[host..])
    };
    let kernel = nix::sys::utsname::uname().unwrap();
    let kernel = kernel.release().to_str().unwrap();
    assert!(
        rows.contains(&vec!["Kernel".into(), kernel.into()]),
        "{rows:?}"
    );
    assert!(rows.contains(&vec!["LSMs".into(), r.host.lsms.join(", ")]));
    assert!(rows
        .iter()
        .any(|row| row[0] == "Backend" && row[1].starts_with("ebpf")));
    for m in &r.probes.missing {
        assert!(
            b.contains(&Block::Item(format!("{}: {}", m.probe, m.why))),
            "missing probe {} not listed",
            m.probe
        );
    }

    // The exact command line, shell-quoted.
    let command = heading_index(&b, HeadingLevel::H3, "Command");
    assert_eq!(
        b[command + 1],
        Block::Code(
            "sh".into(),
            format!(
                "{} sandbox --policy {} -- tmux -L {} new-session -d -s t 'sleep 30'\n",
                diag_bin(),
                example("openclaw-sandbox.yaml").display(),
                tmux.0
            )
        )
    );

    // A collapsed section with the failure table and the process tree, after the rest.
    let open = b
        .iter()
        .position(|x| matches!(x, Block::Html(h) if h.starts_with("<details>")))
        .expect("a <details> section");
    let close = b
        .iter()
        .position(|x| *x == Block::Html("</details>".into()))
        .expect("</details>");
    assert!(command < open && open < close, "{b:#?}");
    let inside = &b[open..close];
    let failures = inside
        .iter()
        .find_map(|x| match x {
            Block::Table(rows) if rows[0][0] == "pid" && rows[0][2] == "syscall" => Some(rows),
            _ => None,
        })
        .expect("the failure table inside <details>");
    assert_eq!(failures.len(), r.failures.len() + 1);
    assert!(failures.iter().any(|row| row[2] == "openat"
        && row[3] == "EACCES"
        && row[4] == "/dev/ptmx"
        && row[6] == "landlock"));
    let tree = inside
        .iter()
        .find_map(|x| match x {
            Block::Code(lang, t) if lang == "text" => Some(t),
            _ => None,
        })
        .expect("the process tree inside <details>");
    let server = r
        .processes
        .iter()
        .find(|p| p.comm.lossy() == "tmux: server")
        .unwrap();
    assert!(
        tree.lines()
            .any(|l| l.contains(&format!("└─ {} tmux: server", server.pid))),
        "{tree}"
    );
    assert!(tree.starts_with(&r.root_pids[0].to_string()), "{tree}");
}

#[test]
fn github_actions_gets_a_step_summary_annotations_and_a_json_artifact() {
    require_privileged!();
    let scratch = Scratch::new("gha");
    let tmux = TmuxSocket::new("gha");
    let summary = scratch.path("step-summary.md");
    std::fs::write(&summary, "earlier step\n").unwrap();
    let runner_temp = scratch.path("runner-temp");
    std::fs::create_dir(&runner_temp).unwrap();
    let md_path = scratch.path("report.md");
    let cmd = seed_tail(&tmux);
    let run = diag_json_with(
        &scratch,
        "run",
        &with(&["--markdown", md_path.to_str().unwrap()], &cmd),
        |c| {
            c.env("GITHUB_ACTIONS", "true")
                .env("GITHUB_STEP_SUMMARY", &summary)
                .env("RUNNER_TEMP", &runner_temp);
        },
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.report();
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert_eq!(
        std::fs::read_to_string(&summary).unwrap(),
        format!("earlier step\n{md}\n"),
        "the Markdown is appended to the step summary"
    );

    let err = run.stderr();
    let annotations: Vec<&str> = err.lines().filter(|l| l.starts_with("::error")).collect();
    // The verdict stays in view; the tables are folded in the job log.
    let group = err
        .find("::group::diag: failed syscalls and messages")
        .expect("a group");
    assert!(err[..group].contains("Real cause"), "{err}");
    assert!(
        err[group..].contains("Failed syscalls") && err.contains("::endgroup::"),
        "{err}"
    );
    assert_eq!(annotations.len(), r.findings.len().min(10), "{err}");
    assert_eq!(
        annotations[0],
        format!(
            "::error title=diag%3A pty-denied (landlock)::{}%0AFix: {}",
            r.findings[0].summary.replace('%', "%25"),
            r.findings[0].fix.replace('%', "%25")
        )
    );

    let artifact = runner_temp.join("diag-report.json");
    let text = std::fs::read_to_string(&artifact).unwrap();
    assert_valid_report(&text);
    let from_artifact: diag::report::Report = serde_json::from_str(&text).unwrap();
    assert_eq!(from_artifact.findings[0].summary, r.findings[0].summary);
    assert_eq!(mode(&artifact), 0o600);
    assert!(
        err.contains(&format!(
            "diag: JSON report written to {}",
            artifact.display()
        )),
        "{err}"
    );
}

#[test]
fn ci_flag_works_outside_github_with_the_artifact_in_the_working_directory() {
    require_privileged!();
    let scratch = Scratch::new("ci");
    let run = diag_json_with(
        &scratch,
        "run",
        &["--ci", "--quiet", "--", "sh", "-c", "exit 3"],
        |c| {
            c.current_dir(&scratch.0);
        },
    );
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let artifact = scratch.path("diag-report.json");
    let text = std::fs::read_to_string(&artifact).unwrap();
    assert_valid_report(&text);
    assert!(text.contains("\"exit_status\": 3"), "{text}");
    // No finding, no annotation; no GITHUB_STEP_SUMMARY, no summary written anywhere.
    assert!(!run.stderr().contains("::error"), "{}", run.stderr());
}

/// GitLab CI: a Code Quality report keyed by finding fingerprints, tables in a collapsed
/// section, no GitHub annotations. `--no-ci` turns CI mode off; `-q` silences it.
#[test]
fn gitlab_gets_a_code_quality_report_and_no_ci_turns_ci_mode_off() {
    require_privileged!();
    let scratch = Scratch::new("gitlab");
    let policy = example("openclaw-sandbox.yaml");
    let cmd = sandboxed(
        &policy,
        &["/usr/bin/python3", "-c", "import os; os.openpty()"],
    );
    let run_in = |extra: &[&str], gitlab: bool| {
        let options: Vec<&str> = extra.iter().copied().chain(["--"]).collect();
        diag_json_with(&scratch, "run", &with(&options, &cmd), |c| {
            c.current_dir(&scratch.0).env_remove("GITHUB_ACTIONS");
            if gitlab {
                c.env("GITLAB_CI", "true");
            }
        })
    };
    let run = run_in(&[], true);
    let quality: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(scratch.path("gl-code-quality-report.json")).unwrap(),
    )
    .unwrap();
    let top = &run.report().findings[0];
    assert_eq!(quality[0]["check_name"], format!("diag/{}", top.cause));
    assert_eq!(quality[0]["fingerprint"], top.fingerprint.as_str());
    let err = run.stderr();
    assert!(
        err.contains("section_start:") && err.contains("[collapsed=true]"),
        "{err}"
    );
    assert!(!err.contains("::error"), "{err}");
    assert!(scratch.path("diag-report.json").exists());

    for (extra, gitlab) in [(&["--no-ci"][..], true), (&["--quiet", "--ci"][..], false)] {
        std::fs::remove_file(scratch.path("diag-report.json")).ok();
        let run = run_in(extra, gitlab);
        let err = run.stderr();
        assert!(
            !err.contains("::error") && !err.contains("section_start"),
            "{extra:?}: {err}"
        );
        assert!(!err.contains("JSON report written"), "{extra:?}: {err}");
        assert_eq!(
            scratch.path("diag-report.json").exists(),
            extra.contains(&"--ci"),
            "{extra:?}"
        );
    }
}

#[test]
fn ci_mode_checks_its_artifact_path_before_running_anything() {
    let scratch = Scratch::new("ci-bad");
    let marker = scratch.path("ran");
    let out = diag_command()
        .args(["run", "--ci", "--", "touch"])
        .arg(&marker)
        .env("RUNNER_TEMP", scratch.path("missing"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("CI mode: cannot write") && err.contains("missing"),
        "{err}"
    );
    assert!(!marker.exists(), "the command ran");
}

#[test]
fn redact_masks_the_pattern_in_every_output() {
    require_privileged!();
    let scratch = Scratch::new("redact");
    let tmux = TmuxSocket::new("redact");
    let md_path = scratch.path("report.md");
    let summary = scratch.path("summary.md");
    let cmd = seed_tail(&tmux);
    let secrets = ["ptmx", "fork failed", tmux.0.as_str()];
    let run = diag_json_with(
        &scratch,
        "run",
        &with(
            &[
                "--ci",
                "--markdown",
                md_path.to_str().unwrap(),
                "--redact",
                "ptmx",
                "--redact",
                "fork fail(ed)?",
                "--redact",
                &regex::escape(&tmux.0),
            ],
            &cmd,
        ),
        |c| {
            c.env("GITHUB_STEP_SUMMARY", &summary)
                .env("RUNNER_TEMP", &scratch.0);
        },
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let r = run.report();
    // Redaction is applied to the finished report: the diagnosis itself is unchanged.
    assert_eq!(r.findings[0].cause, "pty-denied");
    assert!(r.failures.iter().any(|f| f
        .path
        .as_ref()
        .is_some_and(|p| p.lossy() == "/dev/[redacted]")));
    assert!(r.command.iter().any(|a| a.lossy() == "[redacted]"));

    // tmux's own stderr line is the program's, not diag's: set it aside.
    let human: String = run
        .stderr()
        .lines()
        .filter(|l| *l != TMUX_FAIL)
        .map(|l| format!("{l}\n"))
        .collect();
    let outputs = [
        ("JSON", serde_json::to_string(r).unwrap()),
        (
            "CI JSON",
            std::fs::read_to_string(scratch.path("diag-report.json")).unwrap(),
        ),
        ("Markdown", std::fs::read_to_string(&md_path).unwrap()),
        ("step summary", std::fs::read_to_string(&summary).unwrap()),
        ("human report and annotations", human),
    ];
    for (name, text) in &outputs {
        assert!(
            text.contains("[redacted]"),
            "{name}: nothing masked\n{text}"
        );
        for s in secrets {
            assert!(!text.contains(s), "{name} still shows {s:?}:\n{text}");
        }
    }
}

#[test]
fn report_files_are_created_0600_whatever_the_umask() {
    require_privileged!();
    let scratch = Scratch::new("mode");
    let json = scratch.path("r.json");
    let md = scratch.path("r.md");
    let mut cmd = diag_command();
    cmd.args(["run", "--quiet", "--ci", "--json"])
        .arg(&json)
        .arg("--markdown")
        .arg(&md)
        .args(["--", "true"])
        .current_dir(&scratch.0);
    // SAFETY: umask is async-signal-safe and has no preconditions.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for p in [json, md, scratch.path("diag-report.json")] {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

/// `diag doctor --json`, parsed.
fn doctor(btf: Option<&str>) -> serde_json::Value {
    let mut cmd = diag_command();
    cmd.args(["doctor", "--json"]);
    if let Some(path) = btf {
        cmd.env("DIAG_BTF_PATH", path);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {doc:#}"))
}

fn probes_with(doc: &serde_json::Value, status: &str) -> BTreeSet<String> {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == status)
        .filter_map(|c| c["name"].as_str()?.strip_prefix("probe ").map(String::from))
        .collect()
}

const TRACEPOINTS: [&str; 7] = [
    "raw_tp/sys_enter",
    "raw_tp/sys_exit",
    "raw_tp/sched_process_fork",
    "raw_tp/sched_process_exec",
    "raw_tp/sched_process_exit",
    "raw_tp/cap_capable",
    "raw_tp/signal_deliver",
];
/// Attached only where SELinux is an active LSM (not on this host).
const SELINUX: &str = "tracepoint/avc/selinux_audited";
const FEXIT: [&str; 5] = [
    "fexit/security_file_open",
    "fexit/hook_file_open",
    "fexit/generic_permission",
    "fexit/__secure_computing",
    "fexit/pids_can_fork",
];

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn doctor_reports_each_probe_as_this_kernel_answers() {
    require_privileged!();
    let doc = doctor(None);
    assert_eq!(doc["schema"], "diag.doctor/v1");
    // This host: tracepoints load; fentry/fexit are refused with EPERM (notes/ebpf-toolchain.md).
    assert_eq!(probes_with(&doc, "ok"), set(&TRACEPOINTS), "{doc:#}");
    let mut missing = set(&FEXIT);
    missing.insert(SELINUX.to_string());
    assert_eq!(probes_with(&doc, "missing"), missing, "{doc:#}");
    let selinux = check(&doc, &format!("probe {SELINUX}"));
    assert!(
        selinux["detail"]
            .as_str()
            .unwrap()
            .contains("SELinux is not an active LSM"),
        "{selinux}"
    );
    for f in FEXIT {
        let c = check(&doc, &format!("probe {f}"));
        assert!(c["detail"].as_str().unwrap().contains("EPERM"), "{c}");
        assert!(c["fix"].as_str().unwrap().contains("tracepoints"), "{c}");
    }
    assert_eq!(check(&doc, "btf")["status"], "ok");
    assert_eq!(check(&doc, "cap_bpf")["status"], "ok");
    assert_eq!(check(&doc, "cap_perfmon")["status"], "ok");
    assert_eq!(check(&doc, "tracefs")["status"], "ok");
    let landlock = check(&doc, "landlock");
    let abi = diag::context::host::landlock_abi().expect("Landlock is active here");
    assert!(
        landlock["detail"]
            .as_str()
            .unwrap()
            .starts_with(&format!("ABI {abi}:")),
        "{landlock}"
    );
    // Yama is not built into this kernel: doctor says so rather than guessing a scope.
    let yama = check(&doc, "yama.ptrace_scope");
    assert_eq!(
        Path::new("/proc/sys/kernel/yama/ptrace_scope").exists(),
        !yama["detail"].as_str().unwrap().contains("not active"),
        "{yama}"
    );
    let cgroups = check(&doc, "cgroups");
    assert!(
        cgroups["detail"]
            .as_str()
            .unwrap()
            .starts_with("hybrid: v2 at /sys/fs/cgroup/unified"),
        "{cgroups}"
    );
    assert_eq!(
        check(&doc, "kernel.unprivileged_bpf_disabled")["status"],
        "ok"
    );
}

#[test]
fn doctor_reports_missing_btf_with_its_fix() {
    require_privileged!();
    let scratch = Scratch::new("btf");
    let missing = scratch.path("no-vmlinux");
    let doc = doctor(Some(missing.to_str().unwrap()));
    let btf = check(&doc, "btf");
    assert_eq!(btf["status"], "missing", "{btf}");
    assert!(btf["detail"]
        .as_str()
        .unwrap()
        .starts_with(missing.to_str().unwrap()));
    assert!(
        btf["fix"]
            .as_str()
            .unwrap()
            .contains("CONFIG_DEBUG_INFO_BTF=y"),
        "{btf}"
    );
    // The fexit probes stay missing: on this kernel the BTF-free check refuses them before the
    // BTF is read; where fexit is allowed, the loader reads BTF from the same (missing) place.
    for f in FEXIT {
        let c = check(&doc, &format!("probe {f}"));
        assert_eq!(c["status"], "missing");
        let detail = c["detail"].as_str().unwrap();
        assert!(
            detail.contains("no kernel BTF at") || detail.contains("refused fexit"),
            "{c}"
        );
    }
    assert_eq!(probes_with(&doc, "ok"), set(&TRACEPOINTS));

    // The human form says the same, with the fix under the line.
    let out = diag_command()
        .arg("doctor")
        .env("DIAG_BTF_PATH", &missing)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("missing") && l.contains(" btf "))
        .unwrap_or_else(|| panic!("{text}"));
    let fix = text.lines().nth(line + 1).unwrap();
    assert!(
        fix.trim_start()
            .starts_with("fix: use a kernel built with CONFIG_DEBUG_INFO_BTF=y"),
        "{text}"
    );
}

#[test]
fn version_names_the_commit_and_the_ebpf_backend_of_this_build() {
    let out = Command::new(diag_bin()).arg("--version").output().unwrap();
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(workspace())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "diag {} (commit {}; eBPF backend: {})\n",
            env!("CARGO_PKG_VERSION"),
            String::from_utf8_lossy(&head.stdout).trim(),
            diag::cli::output::ebpf_status()
        )
    );
}

#[test]
fn completions_and_man_pages_come_from_the_clap_definition() {
    use clap::CommandFactory;
    let mut cmd = diag::cli::Cli::command();
    cmd.build();
    cmd.clone().debug_assert();
    let mut bash = Vec::new();
    clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "diag", &mut bash);
    let bash = String::from_utf8(bash).unwrap();
    for word in ["doctor", "--markdown", "--redact", "--ci"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let run = cmd.find_subcommand("run").unwrap().clone();
    let mut man = Vec::new();
    clap_mangen::Man::new(run).render(&mut man).unwrap();
    let man = String::from_utf8(man).unwrap();
    assert!(
        man.contains(".TH diag-run 1 ") && man.contains("\\-\\-redact"),
        "{man}"
    );
    assert!(man.contains(diag::cli::output::version()), "{man}");
}

#[test]
fn nothing_reads_a_process_environment() {
    // A report must never carry secrets from a traced process's environment.
    let mut offenders = Vec::new();
    for dir in ["diag/src", "diag-ebpf/src"] {
        let mut stack = vec![workspace().join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    if ["/environ", "environ()", "\"environ\""]
                        .iter()
                        .any(|needle| text.contains(needle))
                    {
                        offenders.push(p);
                    }
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:?}");
}

#[test]
fn the_example_report_matches_the_schema_and_its_markdown() {
    let json = std::fs::read_to_string(example("report.json")).unwrap();
    assert_valid_report(&json);
    let report: diag::report::Report = serde_json::from_str(&json).unwrap();
    assert_eq!(report.findings[0].cause, "pty-denied");
    let md = std::fs::read_to_string(example("report.md")).unwrap();
    assert!(
        md == diag::report::markdown::render(&report),
        "examples/report.md is stale: regenerate both files as docs/reports.md says"
    );
}

/// Two runs of the same failure: the same finding fingerprint; the session's wall-clock start,
/// duration and host are in the report.
#[test]
fn the_same_failure_has_the_same_fingerprint_in_every_run() {
    require_privileged!();
    let scratch = Scratch::new("fingerprint");
    let policy = example("openclaw-sandbox.yaml");
    let cmd = sandboxed(
        &policy,
        &["/usr/bin/python3", "-c", "import os; os.openpty()"],
    );
    let mut args = vec!["--quiet", "--"];
    args.extend(cmd.iter().map(String::as_str));
    let runs: Vec<DiagRun> = (0..2).map(|_| diag_json(&scratch, "run", &args)).collect();
    let tops: Vec<&diag::report::model::Finding> =
        runs.iter().map(|r| &r.report().findings[0]).collect();
    assert_eq!(tops[0].cause, "pty-denied");
    assert_ne!(
        runs[0].report().failures[0].pid,
        runs[1].report().failures[0].pid
    );
    assert_eq!(tops[0].fingerprint, tops[1].fingerprint);
    let r = runs[0].report();
    let started = r.started_at.as_deref().expect("started_at");
    assert!(humantime::parse_rfc3339(started).is_ok(), "{started}");
    assert!(r.duration_ms.is_some_and(|d| d < 600_000));
    let host = nix::unistd::gethostname().unwrap();
    assert_eq!(r.hostname.as_deref(), host.to_str());
}
