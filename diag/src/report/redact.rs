//! `--redact PATTERN`: one pass over the finished report, before any rendering, so the human,
//! JSON, Markdown and CI outputs all show the same masked text.
//!
//! Masked: everything a traced process or the host supplied (argv, comm, exe, paths, messages,
//! Landlock rule paths, the container's name, image, cgroup and mounts) and diag's prose that quotes it (evidence, ruled-out reasons, summaries,
//! fixes, policy patches, warnings, probe errors, verification). Not masked: the vocabulary
//! (syscall and errno names, layers, causes, flags), numbers, and the host's kernel and LSMs.
//!
//! A path the kernel cut (`path_truncated`) may end inside a secret that the pattern only
//! matches whole: from the first place where a match could begin and run past the cut, the path
//! is masked to its end, here and wherever the report quotes it.

use super::model::{FailureEntry, Report};
use crate::model::Text;
use regex::bytes::{NoExpand, Regex};
use regex_automata::{hybrid::dfa::DFA, Anchored, Input};

pub const MASK: &str = "[redacted]";

pub struct Redactor<'a> {
    patterns: &'a [Regex],
    /// Cut paths as the report's text quotes them, each with its masked form.
    cuts: Vec<(Regex, String)>,
}

impl<'a> Redactor<'a> {
    pub fn new(patterns: &'a [Regex]) -> Self {
        Redactor {
            patterns,
            cuts: Vec::new(),
        }
    }

    /// Masks every match of every pattern, on the raw bytes (invalid UTF-8 included).
    pub fn bytes(&self, b: &[u8]) -> Vec<u8> {
        let mut out = b.to_vec();
        for (quoted, masked) in &self.cuts {
            out = quoted
                .replace_all(&out, NoExpand(masked.as_bytes()))
                .into_owned();
        }
        for re in self.patterns {
            out = re.replace_all(&out, MASK.as_bytes()).into_owned();
        }
        out
    }

    pub fn string(&self, s: &str) -> String {
        String::from_utf8_lossy(&self.bytes(s.as_bytes())).into_owned()
    }

    fn text(&self, t: &mut Text) {
        *t = Text::new(self.bytes(t.as_bytes()));
    }

    fn in_place(&self, s: &mut String) {
        *s = self.string(s);
    }

    fn all(&self, v: &mut [String]) {
        v.iter_mut().for_each(|s| self.in_place(s));
    }

    /// Where in `head` (a path the kernel cut after it) a match of some pattern could begin
    /// and still be going at the end: the secret's first part would be left unmasked.
    fn match_could_cross_the_end(&self, head: &[u8]) -> Option<usize> {
        let dfas: Vec<DFA> = self
            .patterns
            .iter()
            .filter_map(|re| DFA::new(re.as_str()).ok())
            .collect();
        (0..head.len()).find(|&start| {
            dfas.iter().any(|dfa| {
                let mut cache = dfa.create_cache();
                let input = Input::new(head).range(start..).anchored(Anchored::Yes);
                let Ok(mut state) = dfa.start_state_forward(&mut cache, &input) else {
                    return true;
                };
                for &b in &head[start..] {
                    match dfa.next_state(&mut cache, state, b) {
                        Ok(next) if next.is_dead() => return false,
                        Ok(next) => state = next,
                        // The lazy DFA gave up: assume the worst.
                        Err(_) => return true,
                    }
                }
                true
            })
        })
    }

    /// A cut path's masked form, and the text that quotes it masked the same way.
    fn mask_cut_path(&mut self, path: &mut Text) {
        let Some(start) = self.match_could_cross_the_end(path.as_bytes()) else {
            return;
        };
        let mut masked = path.as_bytes()[..start].to_vec();
        masked.extend_from_slice(MASK.as_bytes());
        for (quoted, masked) in [
            (path.lossy(), String::from_utf8_lossy(&masked).into_owned()),
            (path.escaped(), Text::new(masked.clone()).escaped()),
        ] {
            if let Ok(re) = Regex::new(&regex::escape(&quoted)) {
                self.cuts.push((re, masked));
            }
        }
        *path = Text::new(masked);
    }

    fn failure(&self, f: &mut FailureEntry) {
        self.text(&mut f.comm);
        f.path.iter_mut().for_each(|t| self.text(t));
        f.path_hex = f.path.as_ref().and_then(Text::hex_if_invalid);
        self.all(&mut f.evidence);
        f.ruled_out
            .iter_mut()
            .for_each(|x| self.in_place(&mut x.why));
        f.noise.iter_mut().for_each(|s| self.in_place(s));
    }

    pub fn apply(mut self, r: &mut Report) {
        if self.patterns.is_empty() {
            return;
        }
        let verified = r.verification.iter_mut().flat_map(|v| {
            v.before
                .failures
                .iter_mut()
                .chain(v.after.failures.iter_mut())
        });
        for f in r.failures.iter_mut().chain(verified) {
            if let (Some(path), true) = (f.path.as_mut(), f.path_truncated) {
                self.mask_cut_path(path);
            }
        }
        r.command.iter_mut().for_each(|t| self.text(t));
        for p in &mut r.processes {
            self.text(&mut p.comm);
            p.exe.iter_mut().for_each(|t| self.text(t));
        }
        r.failures.iter_mut().for_each(|f| self.failure(f));
        for d in &mut r.landlock_domains {
            self.text(&mut d.creator_comm);
            for rule in &mut d.rules {
                rule.path.iter_mut().for_each(|t| self.text(t));
            }
        }
        for m in &mut r.messages {
            self.text(&mut m.comm);
            self.text(&mut m.text);
            m.text_hex = m.text.hex_if_invalid();
        }
        for f in &mut r.findings {
            self.in_place(&mut f.summary);
            self.all(&mut f.evidence);
            f.ruled_out
                .iter_mut()
                .for_each(|x| self.in_place(&mut x.why));
            self.in_place(&mut f.fix);
            f.policy_patch.iter_mut().for_each(|s| self.in_place(s));
        }
        r.probes
            .missing
            .iter_mut()
            .for_each(|m| self.in_place(&mut m.why));
        self.all(&mut r.warnings);
        for f in &mut r.recovered {
            self.text(&mut f.comm);
            f.path.iter_mut().for_each(|t| self.text(t));
        }
        if let Some(c) = &mut r.container {
            c.name.iter_mut().for_each(|t| self.text(t));
            c.image.iter_mut().for_each(|t| self.text(t));
            self.text(&mut c.cgroup);
            // It names the log directory (NAMESPACE_NAME_UID) or the inspected container.
            self.in_place(&mut c.found_by);
            for m in &mut c.confinement.restricted_mounts {
                self.text(&mut m.path);
            }
            if let Some(pod) = &mut c.pod {
                self.text(&mut pod.namespace);
                self.text(&mut pod.name);
                for k in &mut pod.containers {
                    k.name.iter_mut().for_each(|t| self.text(t));
                    k.image.iter_mut().for_each(|t| self.text(t));
                }
            }
        }
        if let Some(v) = &mut r.verification {
            self.in_place(&mut v.patch);
            for f in v
                .before
                .failures
                .iter_mut()
                .chain(v.after.failures.iter_mut())
            {
                self.failure(f);
            }
            self.all(&mut v.disappeared);
            self.all(&mut v.remained);
            self.all(&mut v.appeared);
        }
    }
}

/// Parses a `--redact` pattern; one that matches the empty string would mask between every
/// character, so it is refused.
pub fn parse_pattern(p: &str) -> Result<Regex, String> {
    let re = Regex::new(p).map_err(|e| format!("not a regular expression: {e}"))?;
    if re.is_match(b"") {
        return Err(format!("'{p}' matches the empty string"));
    }
    Ok(re)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture::sample;

    #[test]
    fn masks_every_output_field_but_keeps_the_vocabulary() {
        let mut r = sample();
        let patterns = [
            parse_pattern("ptmx").unwrap(),
            parse_pattern("evil").unwrap(),
            parse_pattern("/tmp").unwrap(),
            parse_pattern("fork failed").unwrap(),
        ];
        Redactor::new(&patterns).apply(&mut r);
        let json = serde_json::to_string(&r).unwrap();
        for secret in ["ptmx", "evil", "/tmp", "fork failed"] {
            assert!(!json.contains(secret), "{secret} left in {json}");
        }
        assert!(json.contains(MASK));
        assert_eq!(r.failures[0].syscall, "openat");
        assert_eq!(r.findings[0].cause, "pty-denied");
        // The hex twin follows the masked bytes: the secret is not left behind in hex.
        let f = &r.failures[1];
        let hex = f.path_hex.as_deref().expect("invalid UTF-8 keeps its hex");
        assert_eq!(
            Some(hex),
            f.path.as_ref().unwrap().hex_if_invalid().as_deref()
        );
        let evil_hex: String = "evil".bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!hex.contains(&evil_hex), "{hex}");
    }

    #[test]
    fn a_secret_cut_by_the_kernel_is_masked_from_where_it_could_begin() {
        let mut r = sample();
        // The kernel kept the path up to "hunt"; the program opened ".../hunter2.key".
        let head = format!("/srv/{}/hunt", "d".repeat(240));
        let f = &mut r.failures[1];
        f.path = Some(Text::from(head.as_str()));
        f.path_truncated = true;
        f.evidence = vec![format!(
            "{head}… does not exist in the process's mount namespace"
        )];
        r.findings[0].fix = format!("Allow the access to {head}… (The path was cut)");
        // A whole path that ends the same way names no secret: nothing to mask.
        r.failures[0].path = Some(Text::from("/srv/hunt"));
        let patterns = [parse_pattern("hunter2").unwrap()];
        Redactor::new(&patterns).apply(&mut r);
        let masked = format!("/srv/{}/{MASK}", "d".repeat(240));
        assert_eq!(r.failures[1].path.as_ref().unwrap().lossy(), masked);
        assert_eq!(r.failures[0].path.as_ref().unwrap().lossy(), "/srv/hunt");
        assert!(
            r.failures[1].evidence[0].starts_with(&masked),
            "{:?}",
            r.failures[1].evidence
        );
        assert!(r.findings[0].fix.contains(&masked), "{}", r.findings[0].fix);
        assert!(
            !r.findings[0].fix.contains("/hunt"),
            "{}",
            r.findings[0].fix
        );

        // A pattern that cannot begin in the head leaves it whole.
        let mut r = sample();
        r.failures[1].path = Some(Text::from(head.as_str()));
        r.failures[1].path_truncated = true;
        let patterns = [parse_pattern("s3cr3t-[0-9]+").unwrap()];
        Redactor::new(&patterns).apply(&mut r);
        assert_eq!(r.failures[1].path.as_ref().unwrap().lossy(), head);
    }

    #[test]
    fn refuses_patterns_that_match_nothing_in_particular() {
        assert!(parse_pattern("a*").is_err());
        assert!(parse_pattern("(").is_err());
        assert!(parse_pattern("s3cr3t-[0-9]+").is_ok());
    }
}
