//! `diag completions SHELL` and `diag man [SUBCOMMAND]`: generated from the clap definitions at
//! run time, so they always match the binary. `cargo xtask dist` writes them out for packaging.

use super::args::{Cli, CompletionsArgs, ManArgs};
use super::usage;
use anyhow::Result;
use clap::CommandFactory;
use roff::{bold, roman, Roff};

pub fn completions(args: CompletionsArgs) -> Result<i32> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "diag", &mut script);
    print(&script)
}

/// Writes a generated document to stdout; a reader that stopped early (`| head`) is no error.
fn print(bytes: &[u8]) -> Result<i32> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(0),
    }
}

pub fn man(args: ManArgs) -> Result<i32> {
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let (cmd, name) = match &args.subcommand {
        None => (root, "diag".to_string()),
        Some(sub) => {
            let cmd = root
                .find_subcommand(sub)
                .ok_or_else(|| usage(format!("no subcommand '{sub}' (see diag --help)")))?
                .clone();
            let cmd = cmd
                .display_name(format!("diag-{sub}"))
                .bin_name(format!("diag {sub}"));
            (cmd, format!("diag {sub}"))
        }
    };
    let page = clap_mangen::Man::new(cmd);
    let out = &mut Vec::new();
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    page.render_description_section(out)?;
    page.render_options_section(out)?;
    if args.subcommand.is_none() {
        page.render_subcommands_section(out)?;
    }
    sections(&name).to_writer(out)?;
    page.render_version_section(out)?;
    print(out)
}

/// Commands a page shows, by the subcommand they belong to.
const EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "run",
        "Launch a command under tracing and explain its failures",
        "sudo diag run -- tmux new-session -d -s smoke 'sleep 30'",
    ),
    (
        "run",
        "Prove the suggested policy patch by running again",
        "sudo diag run --policy sandbox.yaml --verify-fix -- CMD",
    ),
    (
        "run",
        "Run the workload as the invoking user, not root",
        "sudo diag run --user \"$SUDO_USER\" -- ./failing-test.sh",
    ),
    (
        "run",
        "Without eBPF privileges",
        "diag run --backend ptrace -- ./failing-test.sh",
    ),
    (
        "attach",
        "Attach to a running sandbox for a minute",
        "sudo diag attach --pid 4242 --duration 60s",
    ),
    (
        "attach",
        "Attach to every process of a cgroup",
        "sudo diag attach --cgroup /sys/fs/cgroup/unified/sandbox.slice/sb-1",
    ),
    (
        "attach",
        "Attach to every container of a Kubernetes pod on this node",
        "sudo diag attach --pod default/web-5d78c9869d-x2x4q --duration 60s",
    ),
    (
        "analyze",
        "Explain a strace log from a CI artifact, failing the job on a known cause",
        "diag analyze --fail-on cause trace.log",
    ),
    (
        "analyze",
        "Explain kernel audit records",
        "diag analyze --audit /var/log/audit/audit.log",
    ),
    (
        "analyze",
        "Explain pasted ausearch -i, dmesg or journalctl -k output from stdin, for one program since a date",
        "ausearch -m avc -i | diag analyze --audit --comm tmux --since 2025-11-28 -",
    ),
    (
        "completions",
        "Install bash completion",
        "diag completions bash > /etc/bash_completion.d/diag",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    ("GITHUB_ACTIONS", "When \"true\", CI mode is on (as --ci)."),
    (
        "GITHUB_STEP_SUMMARY",
        "CI mode appends the Markdown report to this file.",
    ),
    (
        "RUNNER_TEMP",
        "CI mode writes diag-report.json here (else in the working directory).",
    ),
    (
        "SUDO_UID, SUDO_GID",
        "In CI mode, report files are given to this user.",
    ),
    (
        "SUDO_USER",
        "Under sudo without --user, the report notes that the workload ran as root.",
    ),
];

fn sections(name: &str) -> Roff {
    let mut roff = Roff::new();
    let sub = name.strip_prefix("diag ");
    let examples: Vec<_> = EXAMPLES
        .iter()
        .filter(|(s, _, _)| sub.is_none_or(|sub| sub == *s))
        .collect();
    if !examples.is_empty() {
        roff.control("SH", ["EXAMPLES"]);
        for (_, what, cmd) in examples {
            roff.control("TP", [])
                .text([roman(*what)])
                .text([bold(*cmd)]);
        }
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (status, meaning) in [
        ("run", "The command's own exit status, or 128+N when signal N ended it."),
        ("analyze, attach", "0 once the report is out; 1 with --fail-on when a finding at least that strong was made."),
        ("2", "diag's own failure (bad arguments, no backend, unreadable input), with one line on stderr."),
    ] {
        roff.control("TP", []).text([bold(status)]).text([roman(meaning)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    for (var, meaning) in ENVIRONMENT {
        roff.control("TP", [])
            .text([bold(*var)])
            .text([roman(*meaning)]);
    }
    roff
}
