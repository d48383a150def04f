//! One line of strace output: the pid and timestamp prefixes, then what the line is.

use regex::Regex;
use std::sync::LazyLock;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// `1234 ` (`-f -o`) or `[pid  1234] ` (`-f` on a terminal); absent in `-ff` files.
    pub pid: Option<u32>,
    pub stamp: Option<Stamp>,
    pub body: Body<'a>,
}

/// A `-t`/`-tt` time of day, a `-ttt` time since the epoch, or a `-r` time since the previous
/// line, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamp {
    TimeOfDay(u64),
    Epoch(u64),
    SincePrevious(u64),
}

/// `-ttt` seconds have ten digits (since 2001); `-r` seconds are few.
const EPOCH_DIGITS: usize = 9;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// `name(args) = ret`: `rest` is everything after the `(`.
    Call { name: &'a str, rest: &'a str },
    /// `name(args <unfinished ...>`: `partial` is the argument text so far.
    Unfinished { name: &'a str, partial: &'a str },
    /// `<... name resumed>rest`.
    Resumed { name: &'a str, rest: &'a str },
    /// `+++ exited with N +++`
    Exited(i32),
    /// `+++ killed by SIGKILL +++`: the signal's name.
    Killed(&'a str),
    /// `--- SIGCHLD {...} ---` and other notes diag has no use for.
    Note,
}

static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^\s*(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?(?:(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s+|(\d+)\.(\d{1,9})\s+)?",
    )
    .expect("valid regex")
});
static EXITED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\+\+\+ exited with (-?\d+) \+\+\+").expect("valid regex"));
static KILLED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\+\+\+ killed by (SIG[A-Z0-9+-]+)").expect("valid regex"));
static RESUMED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^<\.\.\. ([A-Za-z0-9_?]+) resumed>").expect("valid regex"));
static CALL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z_][A-Za-z0-9_?]*)\(").expect("valid regex"));

const UNFINISHED: &str = " <unfinished ...>";

pub fn parse(line: &str) -> Option<Line<'_>> {
    let line = line.trim_end();
    let caps = PREFIX.captures(line)?;
    let int = |i: usize| caps.get(i).and_then(|m| m.as_str().parse::<u64>().ok());
    let pid = int(1).or(int(2)).and_then(|p| u32::try_from(p).ok());
    let frac = |i: usize| caps.get(i).map_or(0, |m| nanos(m.as_str()));
    let stamp = if let (Some(h), Some(m), Some(s)) = (int(3), int(4), int(5)) {
        Some(Stamp::TimeOfDay(
            ((h * 60 + m) * 60 + s) * 1_000_000_000 + frac(6),
        ))
    } else {
        let digits = caps.get(7).map_or(0, |m| m.len());
        int(7).map(|s| {
            let ns = s.saturating_mul(1_000_000_000).saturating_add(frac(8));
            match digits >= EPOCH_DIGITS {
                true => Stamp::Epoch(ns),
                false => Stamp::SincePrevious(ns),
            }
        })
    };
    let body = &line[caps.get(0).map_or(0, |m| m.end())..];
    Some(Line {
        pid,
        stamp,
        body: classify(body)?,
    })
}

/// `123456` as the fraction of a second → nanoseconds.
fn nanos(frac: &str) -> u64 {
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    digits.parse().unwrap_or(0)
}

fn classify(body: &str) -> Option<Body<'_>> {
    if body.starts_with("+++") {
        if let Some(c) = EXITED.captures(body) {
            return Some(Body::Exited(c[1].parse().ok()?));
        }
        if let Some(c) = KILLED.captures(body) {
            return Some(Body::Killed(c.get(1)?.as_str()));
        }
        return Some(Body::Note);
    }
    if body.starts_with("---") {
        return Some(Body::Note);
    }
    if let Some(c) = RESUMED.captures(body) {
        let whole = c.get(0)?;
        return Some(Body::Resumed {
            name: c.get(1)?.as_str(),
            rest: &body[whole.end()..],
        });
    }
    let c = CALL.captures(body)?;
    let name = c.get(1)?.as_str();
    let rest = &body[c.get(0)?.end()..];
    Some(match rest.strip_suffix(UNFINISHED) {
        Some(partial) => Body::Unfinished { name, partial },
        None => Body::Call { name, rest },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let l = parse("27515 20:55:26.077192 close(3) = 0").unwrap();
        assert_eq!(l.pid, Some(27515));
        assert_eq!(
            l.stamp,
            Some(Stamp::TimeOfDay(
                (20 * 3600 + 55 * 60 + 26) * 1_000_000_000 + 77_192_000
            ))
        );
        let l = parse("1795899326.188232 close(3) = 0 <0.000015>").unwrap();
        assert_eq!(
            (l.pid, l.stamp),
            (None, Some(Stamp::Epoch(1_795_899_326_188_232_000)))
        );
        // -r, with -f and in a -ff file (right-aligned).
        let l = parse("26909      0.000010 openat(AT_FDCWD, \"/x\", O_RDONLY) = 3").unwrap();
        assert_eq!(
            (l.pid, l.stamp),
            (Some(26909), Some(Stamp::SincePrevious(10_000)))
        );
        let l = parse("     1.500000 close(3) = 0").unwrap();
        assert_eq!(
            (l.pid, l.stamp),
            (None, Some(Stamp::SincePrevious(1_500_000_000)))
        );
        let l = parse("[pid  4242] openat(AT_FDCWD, \"/x\", O_RDONLY) = 3").unwrap();
        assert_eq!(l.pid, Some(4242));
        assert!(matches!(l.body, Body::Call { name: "openat", .. }));
    }

    #[test]
    fn bodies() {
        let body = |s| parse(s).unwrap().body;
        assert_eq!(
            body("27516 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>"),
            Body::Unfinished {
                name: "clone",
                partial: "child_stack=NULL, flags=SIGCHLD"
            }
        );
        assert_eq!(
            body("27516 <... clone resumed>, child_tidptr=0x1) = 27517"),
            Body::Resumed {
                name: "clone",
                rest: ", child_tidptr=0x1) = 27517"
            }
        );
        assert_eq!(body("27516 +++ exited with 3 +++"), Body::Exited(3));
        assert_eq!(
            body("+++ killed by SIGKILL (core dumped) +++"),
            Body::Killed("SIGKILL")
        );
        assert_eq!(body("--- SIGCHLD {si_signo=SIGCHLD} ---"), Body::Note);
        assert_eq!(parse("strace: Process 12 attached"), None);
        assert_eq!(parse(""), None);
    }
}
