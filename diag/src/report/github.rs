//! GitHub Actions workflow commands: one `::error` annotation per finding.
//!
//! Escaping follows the runner's rules: in the message `%`, `\r` and `\n` become `%25`, `%0D`
//! and `%0A`; in a property (`title=`) `:` and `,` are escaped too. Untrusted text is first made
//! terminal-safe, so a traced program cannot inject a workflow command of its own.

use super::model::Report;
use crate::model::text::escape;

/// GitHub shows at most this many error annotations per step.
pub const MAX_ANNOTATIONS: usize = 10;

/// The annotation lines, one per finding (most likely root cause first), each ending in `\n`.
pub fn annotations(r: &Report) -> String {
    r.findings
        .iter()
        .take(MAX_ANNOTATIONS)
        .map(|f| {
            let title = format!("diag: {} ({})", f.cause, f.layer);
            let message = format!("{}\nFix: {}", escape(&f.summary), escape(&f.fix));
            format!("::error title={}::{}\n", property(&title), data(&message))
        })
        .collect()
}

/// Escapes a command's message.
pub fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a command's property value.
pub fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::sample;

    #[test]
    fn escapes_per_the_runner_rules() {
        assert_eq!(data("100%\r\nx"), "100%25%0D%0Ax");
        assert_eq!(property("a:b,c%"), "a%3Ab%2Cc%25");
    }

    #[test]
    fn one_line_per_finding_and_no_injected_line() {
        let text = annotations(&sample());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].starts_with("::error title=diag%3A pty-denied (landlock)::tmux said"),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains("%0AFix: Grant read_write"),
            "{}",
            lines[0]
        );
        // The second summary carries `%`, `,`, `:`, a newline and CR from a traced path.
        assert!(
            lines[1].contains("100%25 sure, a,b:c\\r\\n%0AFix"),
            "{}",
            lines[1]
        );
        assert!(lines.iter().all(|l| l.starts_with("::error ")));
    }
}
