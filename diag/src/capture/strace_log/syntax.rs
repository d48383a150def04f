//! The value syntax strace prints: argument lists, quoted strings with C escapes, `-y` fd
//! annotations (`3</dev/pts/0>`), `{key=value}` structs and return values.

use crate::model::errno;

/// A call's return value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    /// A value, with the `-y` path annotation of a returned fd.
    Ok(i64, Option<Vec<u8>>),
    Err(i32),
    /// `= ?` (the process exited in the call) or an errno diag does not know.
    Unknown,
}

/// A decoded string argument.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Str {
    pub bytes: Vec<u8>,
    /// strace cut it at its `-s` limit (`"..."...`).
    pub truncated: bool,
}

/// Splits `ARGS) = RET` (the text after `name(`) into the top-level arguments and the text
/// after the closing parenthesis.
pub fn split_call(rest: &str) -> Option<(Vec<&str>, &str)> {
    let end = closing_paren(rest, true).or_else(|| closing_paren(rest, false))?;
    Some((split_top(&rest[..end]), &rest[end + 1..]))
}

/// `-X verbose` prints a named value as its number with the name in a comment
/// (`0x80002 /* O_RDWR|O_CLOEXEC */`, `-100 /* AT_FDCWD */</tmp>`): the name alone is what the
/// default output prints. Comments that are not a name (`/* 3 vars */`) and strings stay.
pub fn abbreviate(s: &str) -> std::borrow::Cow<'_, str> {
    static VERBOSE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#""(?:[^"\\]|\\.)*"|-?(?:0x[0-9a-fA-F]+|\d+) /\* ([A-Za-z_][A-Za-z0-9_|]*) \*/"#,
        )
        .expect("valid regex")
    });
    if !s.contains(" /* ") {
        return s.into();
    }
    VERBOSE.replace_all(s, |c: &regex::Captures| match c.get(1) {
        Some(name) => name.as_str().to_string(),
        None => c[0].to_string(),
    })
}

/// Index of the `)` that closes the argument list; `angles` false retries for logs where a
/// `<` stands alone.
fn closing_paren(s: &str, angles: bool) -> Option<usize> {
    top_level(s, angles)
        .find(|&(_, b)| b == b')')
        .map(|(i, _)| i)
}

/// Splits on commas outside strings, brackets and annotations; trims each part.
pub fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, _) in top_level(s, true).filter(|&(_, b)| b == b',') {
        parts.push(s[start..i].trim());
        start = i + 1;
    }
    let last = s[start..].trim();
    if !last.is_empty() || !parts.is_empty() {
        parts.push(last);
    }
    parts
}

/// The bytes of `s` outside strings, brackets and `<...>` fd annotations (whose paths may hold
/// any bracket), with their positions; an unmatched closing bracket is yielded too.
fn top_level(s: &str, angles: bool) -> impl Iterator<Item = (usize, u8)> + '_ {
    let mut stack: Vec<u8> = Vec::new();
    let mut in_str = false;
    let mut escaped = false;
    s.bytes().enumerate().filter(move |&(_, b)| {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            return false;
        }
        if stack.last() == Some(&b'<') {
            match b {
                b'<' => stack.push(b),
                b'>' => {
                    stack.pop();
                }
                _ => {}
            }
            return false;
        }
        match b {
            b'"' => in_str = true,
            b'(' | b'[' | b'{' => stack.push(b),
            b'<' if angles => stack.push(b),
            b')' | b']' | b'}' if !stack.is_empty() => {
                stack.pop();
            }
            _ => return stack.is_empty(),
        }
        false
    })
}

/// A quoted string argument (`"a\nb"`, `"abc"...`); None when `arg` is not one.
pub fn string(arg: &str) -> Option<Str> {
    let body = arg.strip_prefix('"')?;
    let (bytes, used) = unescape_until(body.as_bytes(), Some(b'"'))?;
    let tail = &body[used..];
    Some(Str {
        bytes,
        truncated: tail.starts_with("..."),
    })
}

/// Decodes C escapes up to an unescaped `stop` byte (consumed), or to the end when `stop` is
/// None. Returns the bytes and how much input was used; None if `stop` never came.
fn unescape_until(s: &[u8], stop: Option<u8>) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if Some(b) == stop {
            return Some((out, i + 1));
        }
        if b != b'\\' || i + 1 >= s.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let e = s[i + 1];
        i += 2;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(0x0b),
            b'f' => out.push(0x0c),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'x' => {
                let n = digits(&s[i..], 2, 16);
                out.push(number(&s[i..i + n], 16).unwrap_or(b'x'));
                i += n;
            }
            b'0'..=b'7' => {
                let n = 1 + digits(&s[i..], 2, 8);
                out.push(number(&s[i - 1..i - 1 + n], 8).unwrap_or(0));
                i += n - 1;
            }
            other => out.push(other),
        }
    }
    stop.is_none().then_some((out, s.len()))
}

/// How many of the next (at most `max`) bytes are digits in `radix`.
fn digits(s: &[u8], max: usize, radix: u32) -> usize {
    s.iter()
        .take(max)
        .take_while(|b| (**b as char).is_digit(radix))
        .count()
}

fn number(s: &[u8], radix: u32) -> Option<u8> {
    let v = u32::from_str_radix(std::str::from_utf8(s).ok()?, radix).ok()?;
    u8::try_from(v).ok()
}

/// An fd argument with its optional `-y` annotation: `3`, `3</dev/pts/0>`,
/// `2</dev/null<char 1:3>>` (`-yy`), `AT_FDCWD</tmp>`. AT_FDCWD is -100.
pub fn fd(arg: &str) -> Option<(i32, Option<Vec<u8>>)> {
    let (num, note) = match arg.find('<') {
        Some(i) => (&arg[..i], Some(&arg[i + 1..])),
        None => (arg, None),
    };
    let fd = match num {
        "AT_FDCWD" => -100,
        n => n.parse().ok()?,
    };
    Some((fd, note.and_then(annotation_path)))
}

/// The path in an annotation body (after the first `<`): strace escapes `<` and `>` inside the
/// path, so it ends at the first of them; `-yy` device details follow.
fn annotation_path(note: &str) -> Option<Vec<u8>> {
    let end = note.find(['<', '>']).unwrap_or(note.len());
    let (bytes, _) = unescape_until(&note.as_bytes()[..end], None)?;
    Some(bytes)
}

/// The value of `key` in `{key=value, ...}` or in a bare `key=value` argument.
pub fn field<'a>(arg: &'a str, key: &str) -> Option<&'a str> {
    let inner = arg
        .strip_prefix('{')
        .map(|s| s.strip_suffix('}').unwrap_or(s))
        .unwrap_or(arg);
    split_top(inner)
        .into_iter()
        .find_map(|p| p.strip_prefix(key)?.strip_prefix('='))
}

/// Elements of a `[a, b, ...]` list (a trailing `...` is kept as an element).
pub fn list(arg: &str) -> Option<Vec<&str>> {
    let inner = arg.strip_prefix('[')?;
    Some(split_top(inner.strip_suffix(']').unwrap_or(inner)))
}

/// The return value after the argument list: ` = 3</dev/null>`, ` = -1 EACCES (...)`, ` = ?`,
/// possibly followed by ` <0.000012>` (`-T`).
pub fn ret(after: &str) -> Option<Ret> {
    let v = after.trim_start().strip_prefix('=')?.trim_start();
    let token = v.split([' ', '<']).next().unwrap_or("");
    if token == "?" {
        return Some(Ret::Unknown);
    }
    if token == "-1" {
        let name = v[2..].split_whitespace().next().unwrap_or("");
        return Some(errno::number(name).map_or(Ret::Unknown, Ret::Err));
    }
    let value = match token.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok().map(|u| u as i64),
        None => token.parse::<i64>().ok(),
    }?;
    let note = v[token.len()..].strip_prefix('<').and_then(annotation_path);
    Some(Ret::Ok(value, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_arguments_around_strings_structs_and_annotations() {
        let (args, after) = split_call(
            r#"AT_FDCWD</tmp/a(b>, "/dev/ptmx", O_RDWR) = -1 EACCES (Permission denied)"#,
        )
        .unwrap();
        assert_eq!(args, vec!["AT_FDCWD</tmp/a(b>", "\"/dev/ptmx\"", "O_RDWR"]);
        assert_eq!(ret(after), Some(Ret::Err(13)));
        let (args, _) =
            split_call(r#"3, {allowed_access=A|B, parent_fd=4</usr>}, 0) = 0"#).unwrap();
        assert_eq!(args.len(), 3);
        assert_eq!(field(args[1], "parent_fd"), Some("4</usr>"));
        assert_eq!(field(args[1], "allowed_access"), Some("A|B"));
    }

    #[test]
    fn decodes_escapes_and_truncation() {
        let s = string(r#""a\33[2J\n\x41\0\\\"z"..."#).unwrap();
        assert_eq!(s.bytes, b"a\x1b[2J\nA\0\\\"z");
        assert!(s.truncated);
        let s = string(r#""\377\1""#).unwrap();
        assert_eq!((s.bytes, s.truncated), (vec![0xff, 1], false));
        assert_eq!(string("0x7ffd"), None);
        assert_eq!(string("\"unterminated"), None);
    }

    /// Lines of `strace -f -X verbose -yy` (strace 6.1).
    #[test]
    fn verbose_constants_are_abbreviated() {
        let rest = r#"-100 /* AT_FDCWD */</tmp>, "/a /* O_RDWR */ b", 0x80002 /* O_RDWR|O_CLOEXEC */) = -1 EACCES (Permission denied)"#;
        assert_eq!(
            abbreviate(rest),
            r#"AT_FDCWD</tmp>, "/a /* O_RDWR */ b", O_RDWR|O_CLOEXEC) = -1 EACCES (Permission denied)"#
        );
        let env = "\"/bin/sh\", [\"sh\"], 0x7ffc /* 3 vars */) = 0";
        assert_eq!(abbreviate(env), env);
    }

    #[test]
    fn fds_with_annotations() {
        assert_eq!(fd("3</dev/pts/0>"), Some((3, Some(b"/dev/pts/0".to_vec()))));
        assert_eq!(
            fd("2</dev/null<char 1:3>>"),
            Some((2, Some(b"/dev/null".to_vec())))
        );
        assert_eq!(fd("AT_FDCWD"), Some((-100, None)));
        assert_eq!(fd("NULL"), None);
    }

    #[test]
    fn return_values() {
        assert_eq!(ret(" = 4</usr>"), Some(Ret::Ok(4, Some(b"/usr".to_vec()))));
        assert_eq!(ret(" = 0x1 (flags FD_CLOEXEC)"), Some(Ret::Ok(1, None)));
        assert_eq!(ret(" = ?"), Some(Ret::Unknown));
        assert_eq!(ret(" = 27517 <0.000314>"), Some(Ret::Ok(27517, None)));
        assert_eq!(
            ret(" = -1 ERESTARTSYS (To be restarted)"),
            Some(Ret::Unknown)
        );
        assert_eq!(ret(" garbage"), None);
    }
}
