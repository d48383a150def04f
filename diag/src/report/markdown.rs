//! The Markdown report, for bug tickets and CI step summaries (GitHub-flavoured): the verdict
//! first, then the findings, the host, the command, and the tables in a collapsed section.
//!
//! Traced processes control paths, comm, argv and messages: every such string goes through
//! [`inline`], [`code`] or [`fenced`], so it can neither format the page nor break a table.

use super::human;
use super::model::{FailureEntry, Finding, Report};
use crate::model::text::escape;
use crate::model::Text;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// Rows of failures shown before "... and N more".
const MAX_ROWS: usize = 100;

pub fn render(r: &Report) -> String {
    let mut md = String::new();
    verdict(&mut md, r);
    findings(&mut md, r);
    verification(&mut md, r);
    host(&mut md, r);
    command(&mut md, r);
    details(&mut md, r);
    md
}

fn verdict(md: &mut String, r: &Report) {
    match r.findings.first() {
        Some(top) => {
            let _ = writeln!(
                md,
                "## diag: {} ({})\n\n**{}**\n\n**Fix:** {}\n",
                inline(&top.cause),
                inline(top.layer.title()),
                inline(&top.summary),
                inline(&top.fix)
            );
        }
        None => {
            let _ = writeln!(md, "## diag: {}\n", inline(&human::no_finding(r)));
        }
    }
    let status = match r.exit_status {
        Some(s) => format!("exited with status {s}"),
        None => "exit status unknown".into(),
    };
    let noise = r.failures.iter().filter(|f| f.noise.is_some()).count();
    let _ = writeln!(
        md,
        "{} {status} · {} failed syscalls ({noise} benign noise) · {} messages · backend {} · mode {}{}\n",
        match r.command.first() {
            Some(argv0) => code(argv0, false),
            None => "The traced processes".into(),
        },
        r.failures.len(),
        r.messages.len(),
        inline(&r.backend),
        inline(&r.mode),
        if r.partial { " · **partial: diag was interrupted**" } else { "" }
    );
}

fn findings(md: &mut String, r: &Report) {
    if r.findings.is_empty() {
        return;
    }
    md.push_str("### Findings\n\n");
    for (n, f) in r.findings.iter().enumerate() {
        finding(md, r, n + 1, f);
    }
}

fn finding(md: &mut String, r: &Report, n: usize, f: &Finding) {
    let _ = writeln!(
        md,
        "#### {n}. {} · {} · {}\n",
        inline(&f.cause),
        inline(f.layer.title()),
        f.confidence.as_str(),
    );
    // The first finding's summary and fix are the verdict, already at the top.
    if n > 1 {
        let _ = writeln!(
            md,
            "{}\n\n**Fix:** {}\n",
            inline(&f.summary),
            inline(&f.fix)
        );
    }
    let said: Vec<String> = f
        .explains
        .iter()
        .filter_map(|&i| r.messages.get(i))
        .map(|m| {
            format!(
                "pid {} {}: {}",
                m.pid,
                code(&m.comm, false),
                code(&m.text, false)
            )
        })
        .collect();
    list(md, "The program said", &said);
    let failed: Vec<String> = f
        .failures
        .iter()
        .filter_map(|&i| r.failures.get(i))
        .map(failure_line)
        .collect();
    list(md, "Failed calls", &failed);
    let evidence: Vec<String> = f.evidence.iter().map(|e| inline(e)).collect();
    list(md, "Evidence", &evidence);
    let ruled_out: Vec<String> = f.ruled_out.iter().map(|x| inline(&x.why)).collect();
    list(md, "Ruled out", &ruled_out);
    if let Some(patch) = &f.policy_patch {
        let lines: Vec<String> = patch.lines().map(escape).collect();
        let _ = writeln!(
            md,
            "**Policy patch:**\n\n{}",
            fenced("diff", &lines.join("\n"))
        );
    }
}

/// `--verify-fix`: the patch that was tried, and what it changed.
fn verification(md: &mut String, r: &Report) {
    let Some(v) = &r.verification else { return };
    let status = |s: Option<i32>| s.map_or_else(|| "none".to_string(), |c| c.to_string());
    let _ = writeln!(
        md,
        "### Verification of the suggested patch\n\n| | before (policy) | after (patched policy) |\n|---|---|---|\n| exit status | {} | {} |\n| failures | {} | {} |\n",
        status(v.before.exit_status),
        status(v.after.exit_status),
        v.before.failures.len(),
        v.after.failures.len()
    );
    for (label, items) in [
        ("Fixed", &v.disappeared),
        ("Remaining", &v.remained),
        ("New (the command got further)", &v.appeared),
    ] {
        let items: Vec<String> = items.iter().map(|i| inline(i)).collect();
        list(md, label, &items);
    }
    let lines: Vec<String> = v.patch.lines().map(escape).collect();
    let _ = writeln!(
        md,
        "**Patch tried:**\n\n{}",
        fenced("diff", &lines.join("\n"))
    );
}

/// The path as a code span, `…` after it when it was cut.
fn path_code(f: &FailureEntry, in_table: bool) -> String {
    let Some(p) = &f.path else {
        return String::new();
    };
    let cut = if f.path_truncated { "…" } else { "" };
    format!("{}{cut}", code(p, in_table))
}

fn failure_line(f: &FailureEntry) -> String {
    format!(
        "{} {} {} in pid {} {}{} ({}, {}){}",
        inline(&f.syscall),
        path_code(f, false),
        inline(&f.outcome()),
        f.pid,
        code(&f.comm, false),
        match f.count {
            1 => String::new(),
            c => format!(" ×{c}"),
        },
        inline(f.layer.as_str()),
        f.confidence.as_str(),
        f.flags
            .as_deref()
            .map(|fl| format!(" flags {}", inline(fl)))
            .unwrap_or_default(),
    )
}

fn list(md: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(md, "**{title}:**\n");
    for i in items {
        let _ = writeln!(md, "- {i}");
    }
    md.push('\n');
}

fn host(md: &mut String, r: &Report) {
    let h = &r.host;
    md.push_str("### Host\n\n| Fact | Value |\n|---|---|\n");
    let lsms: Vec<String> = h.lsms.iter().map(|l| inline(l)).collect();
    let rows = [
        ("Kernel", inline(&h.kernel)),
        ("LSMs", lsms.join(", ")),
        (
            "Landlock ABI",
            h.landlock_abi
                .map_or("not available".into(), |v| v.to_string()),
        ),
        (
            "Backend",
            format!(
                "{} ({} probes attached)",
                inline(&r.backend),
                r.probes.attached.len()
            ),
        ),
        ("Events lost", r.lost_events.to_string()),
        ("diag", inline(&r.tool.version)),
    ];
    let container = r
        .container
        .as_ref()
        .map(|c| ("Container", inline(&c.describe())));
    for (k, v) in rows.into_iter().chain(container) {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    md.push('\n');
    let missing: Vec<String> = r
        .probes
        .missing
        .iter()
        .map(|m| format!("{}: {}", code_str(&m.probe, false), inline(&m.why)))
        .collect();
    list(
        md,
        "Probes missing (attribution used tracepoints and context instead)",
        &missing,
    );
    let warnings: Vec<String> = r.warnings.iter().map(|w| inline(w)).collect();
    list(md, "Warnings", &warnings);
}

fn command(md: &mut String, r: &Report) {
    if r.command.is_empty() {
        return;
    }
    let words: Vec<String> = r
        .command
        .iter()
        .map(|a| {
            let a = a.escaped();
            shlex::try_quote(&a).map_or(a.clone(), |q| q.into_owned())
        })
        .collect();
    let _ = writeln!(md, "### Command\n\n{}", fenced("sh", &words.join(" ")));
}

fn details(md: &mut String, r: &Report) {
    let _ = writeln!(
        md,
        "<details>\n<summary>Failed syscalls ({}), messages ({}) and the process tree ({} processes)</summary>\n",
        r.failures.len(),
        r.messages.len(),
        r.processes.len()
    );
    failure_table(md, r);
    message_table(md, r);
    if !r.processes.is_empty() {
        let _ = writeln!(md, "**Process tree:**\n\n{}", fenced("text", &tree(r)));
    }
    md.push_str("</details>\n");
}

fn failure_table(md: &mut String, r: &Report) {
    if r.failures.is_empty() {
        return;
    }
    md.push_str("**Failed syscalls:**\n\n| pid | comm | syscall | errno | path | flags | layer | confidence | count | noise |\n|---:|---|---|---|---|---|---|---|---:|---|\n");
    for &i in r.failures_by_relevance().iter().take(MAX_ROWS) {
        let f = &r.failures[i];
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f.pid,
            code(&f.comm, true),
            inline(&f.syscall),
            inline(&f.outcome()),
            path_code(f, true),
            inline(f.flags.as_deref().unwrap_or("")),
            inline(f.layer.as_str()),
            f.confidence.as_str(),
            f.count,
            inline(f.noise.as_deref().unwrap_or("")),
        );
    }
    if r.failures.len() > MAX_ROWS {
        let _ = writeln!(
            md,
            "\n... and {} more (see the JSON report)",
            r.failures.len() - MAX_ROWS
        );
    }
    md.push('\n');
}

fn message_table(md: &mut String, r: &Report) {
    if r.messages.is_empty() {
        return;
    }
    md.push_str(
        "**Messages the program printed:**\n\n| pid | comm | fd | message |\n|---:|---|---:|---|\n",
    );
    for m in r.messages.iter().take(MAX_ROWS) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            m.pid,
            code(&m.comm, true),
            m.fd,
            code(&m.text, true)
        );
    }
    md.push('\n');
}

/// The process table as an indented tree, roots being processes whose parent diag did not see.
fn tree(r: &Report) -> String {
    let pids: BTreeSet<u32> = r.processes.iter().map(|p| p.pid).collect();
    let mut children: BTreeMap<Option<u32>, Vec<usize>> = BTreeMap::new();
    for (i, p) in r.processes.iter().enumerate() {
        let parent = p.ppid.filter(|pp| pids.contains(pp) && *pp != p.pid);
        children.entry(parent).or_default().push(i);
    }
    let mut out = String::new();
    let mut seen = BTreeSet::new();
    let mut stack: Vec<(usize, String, bool, bool)> = children
        .get(&None)
        .into_iter()
        .flatten()
        .rev()
        .map(|&i| (i, String::new(), true, true))
        .collect();
    // Iterative depth-first walk; `seen` guards against ppid cycles in untrusted tables.
    while let Some((i, prefix, last, root)) = stack.pop() {
        let p = &r.processes[i];
        if !seen.insert(p.pid) {
            continue;
        }
        let branch = match (root, last) {
            (true, _) => "",
            (false, true) => "└─ ",
            (false, false) => "├─ ",
        };
        let _ = writeln!(
            out,
            "{prefix}{branch}{} {}{}",
            p.pid,
            p.comm.escaped(),
            p.exe
                .as_ref()
                .map(|e| format!("  ({})", e.escaped()))
                .unwrap_or_default()
        );
        let child_prefix = match (root, last) {
            (true, _) => prefix.clone(),
            (false, true) => format!("{prefix}   "),
            (false, false) => format!("{prefix}│  "),
        };
        let kids = children.get(&Some(p.pid)).map(Vec::as_slice).unwrap_or(&[]);
        for (k, &c) in kids.iter().enumerate().rev() {
            stack.push((c, child_prefix.clone(), k + 1 == kids.len(), false));
        }
    }
    out
}

/// Text as Markdown inline content: control characters made visible, and every character that
/// could start formatting, HTML, a link or a table cell backslash-escaped.
pub fn inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in escape(s).chars() {
        if "\\`*_[]<>|#~&!".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Untrusted bytes as a code span: verbatim (control characters made visible), fenced with more
/// backticks than any run inside. In a table cell `|` is escaped, which GFM undoes in the cell.
pub fn code(t: &Text, in_table: bool) -> String {
    code_span(t.escaped(), in_table)
}

/// [`code`] for a string.
pub fn code_str(s: &str, in_table: bool) -> String {
    code_span(escape(s), in_table)
}

fn code_span(escaped: String, in_table: bool) -> String {
    if escaped.is_empty() {
        return escaped;
    }
    let s = if in_table {
        escaped.replace('|', "\\|")
    } else {
        escaped
    };
    let fence = "`".repeat(longest_run(&s, '`') + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// A fenced code block around lines that are already escaped (no control characters), with a
/// fence longer than any backtick run inside so the content cannot close it.
fn fenced(lang: &str, escaped_lines: &str) -> String {
    let fence = "`".repeat((longest_run(escaped_lines, '`') + 1).max(3));
    format!(
        "{fence}{lang}\n{}\n{fence}\n",
        escaped_lines.trim_end_matches('\n')
    )
}

fn longest_run(s: &str, c: char) -> usize {
    s.split(|x| x != c).map(str::len).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::{sample, HOSTILE};

    #[test]
    fn inline_text_cannot_format_or_break_a_table() {
        assert_eq!(inline("a|b"), "a\\|b");
        assert_eq!(inline("<b>x</b>"), "\\<b\\>x\\</b\\>");
        assert_eq!(inline("# h\nx"), "\\# h\\\\nx");
        assert_eq!(inline("O_RDWR"), "O\\_RDWR");
        assert!(!inline(HOSTILE).contains('\n') && !inline(HOSTILE).contains('\x1b'));
    }

    #[test]
    fn code_spans_outlast_backticks_inside() {
        assert_eq!(code(&Text::from("/dev/ptmx"), false), "`/dev/ptmx`");
        assert_eq!(code(&Text::from("a``b"), false), "```a``b```");
        assert_eq!(code(&Text::from("`x"), false), "`` `x ``");
        assert_eq!(code(&Text::from("a|b"), true), "`a\\|b`");
        assert_eq!(code(&Text::from(""), true), "");
        assert_eq!(fenced("sh", "a\n```\nb\n"), "````sh\na\n```\nb\n````\n");
    }

    #[test]
    fn tree_nests_children_under_parents() {
        let t = tree(&sample());
        assert_eq!(
            t,
            "10 tmux  (/usr/bin/tmux)\n└─ 11 tmux: server\n   └─ 12 evil|`x`<b>\\n## hi\\u{1b}[31m\n"
        );
    }

    #[test]
    fn hostile_text_adds_no_structure() {
        use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
        let md = render(&sample());
        let (mut headings, mut rows, mut html, mut cells) = (0, 0, Vec::new(), Vec::new());
        let mut cell = None::<String>;
        for ev in Parser::new_ext(&md, Options::ENABLE_TABLES) {
            match ev {
                Event::Start(Tag::Heading { .. }) => headings += 1,
                Event::Start(Tag::TableRow) => rows += 1,
                Event::Html(h) | Event::InlineHtml(h) => html.push(h.trim().to_string()),
                Event::Start(Tag::TableCell) => cell = Some(String::new()),
                Event::Text(t) | Event::Code(t) => {
                    if let Some(c) = cell.as_mut() {
                        c.push_str(&t)
                    }
                }
                Event::End(TagEnd::TableCell) => cells.extend(cell.take()),
                _ => {}
            }
        }
        // The verdict, Findings, two findings, Verification, Host, Command: no heading from a
        // traced program.
        assert_eq!(headings, 7, "{md}");
        // Verification (2), host facts (6) and the container, failures (3), messages (2): no row
        // or cell split by a `|`.
        assert_eq!(rows, 14, "{md}");
        assert_eq!(
            html,
            [
                "<details>",
                "<summary>Failed syscalls (3), messages (2) and the process tree (3 processes)</summary>",
                "</details>"
            ]
        );
        assert!(
            cells.contains(&"/tmp/evil|`x`<b>\\n## hi\\u{1b}[31m\\xff…".to_string()),
            "{cells:?}"
        );
    }

    #[test]
    fn verdict_comes_first_and_every_section_is_there() {
        let md = render(&sample());
        assert!(
            md.starts_with("## diag: pty-denied (Landlock)\n\n**tmux said"),
            "{md}"
        );
        for section in [
            "### Findings",
            "### Host",
            "### Command",
            "<details>",
            "</details>",
        ] {
            assert!(md.contains(section), "{section} missing:\n{md}");
        }
        assert!(md.find("### Findings") < md.find("<details>"));
    }
}
