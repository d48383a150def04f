//! Bytes from untrusted processes (paths, comm, argv, program output).
//!
//! Kept as raw bytes; shown on a terminal only through [`Text::escaped`], which escapes control
//! characters and ANSI sequences; serialised to JSON as lossy UTF-8 (serde_json escapes control
//! characters), with the raw bytes in hex beside it when they are not valid UTF-8.

use std::fmt;

#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(pub Vec<u8>);

impl Text {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Text(bytes.into())
    }

    /// From a NUL-terminated kernel buffer.
    pub fn from_c(bytes: &[u8]) -> Self {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Text(bytes[..end].to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    /// The raw bytes in hex when they are not valid UTF-8 (so nothing is lost in JSON).
    pub fn hex_if_invalid(&self) -> Option<String> {
        std::str::from_utf8(&self.0)
            .is_err()
            .then(|| self.0.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Safe for a terminal: control characters, DEL, C1 controls and invalid bytes escaped.
    pub fn escaped(&self) -> String {
        let mut out = String::new();
        for chunk in self.0.utf8_chunks() {
            out.push_str(&escape(chunk.valid()));
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
        out
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.0
            .windows(needle.len().max(1))
            .any(|w| w == needle.as_bytes())
    }
}

/// Escapes a string for terminal output.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            // Bidi overrides can reorder what the operator reads.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.escaped())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.lossy())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(s.as_bytes().to_vec())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(s.into_bytes())
    }
}

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.lossy())
    }
}

impl<'de> serde::Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Text::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls() {
        let t = Text::new(b"/tmp/\x1b[2J\nx\xff".to_vec());
        let e = t.escaped();
        assert!(!e.contains('\x1b') && !e.contains('\n'), "{e}");
        assert_eq!(e, "/tmp/\\u{1b}[2J\\nx\\xff");
        assert_eq!(
            t.hex_if_invalid().as_deref(),
            Some("2f746d702f1b5b324a0a78ff")
        );
        assert_eq!(Text::from("ok").hex_if_invalid(), None);
    }

    #[test]
    fn from_c_stops_at_nul() {
        assert_eq!(Text::from_c(b"tmux\0junk").lossy(), "tmux");
    }
}
