//! The minimal policy change that would allow exactly the denied accesses, as a unified diff of
//! the user's file. The file is edited as text, so its comments and order are kept exactly; the
//! result is parsed again to prove it is a valid policy that grants what it claims.

use super::policy::Policy;
use anyhow::{bail, Context, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    ReadOnly,
    ReadWrite,
}

impl List {
    fn key(self) -> &'static str {
        match self {
            List::ReadOnly => "read_only",
            List::ReadWrite => "read_write",
        }
    }
}

/// One path to add, with the reason shown as a comment in the patched file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub path: String,
    pub list: List,
    pub why: String,
}

pub struct Patched {
    pub text: String,
    pub diff: String,
}

/// Applies `grants` to the policy text. Grants already present in the right list are skipped.
pub fn apply(original: &str, grants: &[Grant], file_name: &str) -> Result<Option<Patched>> {
    let policy = Policy::parse(original).context("the policy to patch")?;
    let mut text = original.to_string();
    let mut added = 0;
    for g in grants {
        let fs = policy.filesystem();
        let present = match g.list {
            List::ReadOnly => fs
                .read_only
                .iter()
                .chain(&fs.read_write)
                .any(|p| p.as_os_str() == g.path.as_str()),
            List::ReadWrite => fs
                .read_write
                .iter()
                .any(|p| p.as_os_str() == g.path.as_str()),
        };
        if !present {
            text = insert(&text, g)?;
            added += 1;
        }
    }
    if added == 0 {
        return Ok(None);
    }
    let patched =
        Policy::parse(&text).context("the patched policy does not parse (please report this)")?;
    for g in grants {
        let list = match g.list {
            List::ReadOnly => &patched.filesystem().read_only,
            List::ReadWrite => &patched.filesystem().read_write,
        };
        let granted_elsewhere = g.list == List::ReadOnly
            && patched
                .filesystem()
                .read_write
                .iter()
                .any(|p| p.as_os_str() == g.path.as_str());
        if !granted_elsewhere && !list.iter().any(|p| p.as_os_str() == g.path.as_str()) {
            bail!("patching did not grant {} (please report this)", g.path);
        }
    }
    let diff = similar::TextDiff::from_lines(original, &text)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{file_name}"), &format!("b/{file_name}"))
        .to_string();
    Ok(Some(Patched { text, diff }))
}

/// Inserts one list item after the last item of `filesystem_policy.<list>`, creating the list
/// (or the whole section) when it is missing.
fn insert(text: &str, g: &Grant) -> Result<String> {
    let lines: Vec<&str> = text.lines().collect();
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let Some(fs_at) = lines
        .iter()
        .position(|l| l.trim_end() == "filesystem_policy:" && indent_of(l) == 0)
    else {
        let mut out = text.trim_end().to_string();
        out.push_str(&format!(
            "\n\nfilesystem_policy:\n  {}:\n    # {}\n    - {}\n",
            g.list.key(),
            g.why,
            g.path
        ));
        return Ok(out);
    };
    let section_end = lines[fs_at + 1..]
        .iter()
        .position(|l| !l.trim().is_empty() && indent_of(l) == 0 && !l.trim_start().starts_with('#'))
        .map_or(lines.len(), |i| fs_at + 1 + i);
    let key = format!("{}:", g.list.key());
    let key_at = (fs_at + 1..section_end)
        .find(|&i| lines[i].trim() == key || lines[i].trim().starts_with(&format!("{key} ")));
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    match key_at {
        Some(k) => {
            if lines[k].contains('[') {
                bail!(
                    "filesystem_policy.{} is a flow list ([...]): add {} to it by hand",
                    g.list.key(),
                    g.path
                );
            }
            let key_indent = indent_of(lines[k]);
            // The list's items: lines after the key indented deeper (or `- ` at the key's level).
            let mut last_item = k;
            let mut item_indent = key_indent + 2;
            for (i, l) in lines.iter().enumerate().take(section_end).skip(k + 1) {
                let t = l.trim_start();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                if t.starts_with("- ") && indent_of(l) >= key_indent {
                    last_item = i;
                    item_indent = indent_of(l);
                } else {
                    break;
                }
            }
            let pad = " ".repeat(item_indent);
            out.insert(last_item + 1, format!("{pad}- {}", g.path));
            out.insert(last_item + 1, format!("{pad}# {}", g.why));
        }
        None => {
            let child_indent = lines[fs_at + 1..section_end]
                .iter()
                .find(|l| !l.trim().is_empty())
                .map_or(2, |l| indent_of(l));
            let pad = " ".repeat(child_indent);
            let at = section_end.min(out.len());
            out.insert(at, format!("{pad}  - {}", g.path));
            out.insert(at, format!("{pad}  # {}", g.why));
            out.insert(at, format!("{pad}{key}"));
        }
    }
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "version: 1\n# the sandbox\nfilesystem_policy:\n  read_only:\n    - /usr\n  read_write:\n    - /tmp # scratch\n    - /dev/null\n\nlandlock:\n  compatibility: best_effort\n";

    fn grant(path: &str, list: List) -> Grant {
        Grant {
            path: path.into(),
            list,
            why: "diag: test".into(),
        }
    }

    #[test]
    fn adds_after_the_last_item_keeping_comments() {
        let p = apply(
            POLICY,
            &[
                grant("/dev/pts", List::ReadWrite),
                grant("/dev/ptmx", List::ReadWrite),
            ],
            "p.yaml",
        )
        .unwrap()
        .unwrap();
        assert!(p.text.contains("    - /dev/null\n    # diag: test\n    - /dev/pts\n    # diag: test\n    - /dev/ptmx\n\nlandlock:"), "{}", p.text);
        assert!(p.text.contains("# the sandbox") && p.text.contains("/tmp # scratch"));
        assert!(
            p.diff.starts_with("--- a/p.yaml\n+++ b/p.yaml\n"),
            "{}",
            p.diff
        );
        assert_eq!(
            p.diff
                .lines()
                .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
                .count(),
            4
        );
        let reparsed = Policy::parse(&p.text).unwrap();
        assert_eq!(reparsed.filesystem().read_write.len(), 4);
    }

    #[test]
    fn creates_a_missing_list_and_skips_what_is_granted() {
        let p = apply(
            POLICY.replace("  read_only:\n    - /usr\n", "").as_str(),
            &[grant("/opt/tool", List::ReadOnly)],
            "p.yaml",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            Policy::parse(&p.text).unwrap().filesystem().read_only.len(),
            1
        );
        assert!(apply(
            POLICY,
            &[
                grant("/tmp", List::ReadWrite),
                grant("/usr", List::ReadOnly)
            ],
            "p.yaml"
        )
        .unwrap()
        .is_none());
        let p = apply(
            "version: 1\n",
            &[grant("/dev/pts", List::ReadWrite)],
            "p.yaml",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            Policy::parse(&p.text)
                .unwrap()
                .filesystem()
                .read_write
                .len(),
            1
        );
    }
}
