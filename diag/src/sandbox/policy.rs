//! OpenShell-style sandbox policies (the shape of NemoClaw's `openclaw-sandbox.yaml`).
//! Unknown keys are errors that name the key.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub version: u32,
    /// Absent: no Landlock domain at all. Present (even empty): deny by default, as OpenShell.
    #[serde(default)]
    pub filesystem_policy: Option<FilesystemPolicy>,
    #[serde(default)]
    pub landlock: LandlockSettings,
    #[serde(default)]
    pub process: ProcessPolicy,
    /// Off by default: an OpenShell-like seccomp blocklist.
    #[serde(default)]
    pub seccomp: Option<super::seccomp::SeccompPolicy>,
    /// Accepted and ignored: diag is not a network proxy.
    #[serde(default)]
    pub network_policies: Option<serde_yaml_ng::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemPolicy {
    #[serde(default)]
    pub read_only: Vec<PathBuf>,
    #[serde(default)]
    pub read_write: Vec<PathBuf>,
    /// Grant read_write on the working directory too.
    #[serde(default)]
    pub include_workdir: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandlockSettings {
    #[serde(default)]
    pub compatibility: Compatibility,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compatibility {
    /// Skip paths that do not exist (with a note) and features the kernel lacks.
    #[default]
    BestEffort,
    /// Every path must exist and the kernel must enforce the whole policy.
    HardRequirement,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessPolicy {
    pub run_as_user: Option<String>,
    pub run_as_group: Option<String>,
    /// RLIMIT_NPROC for the sandboxed command (`ulimit -u`).
    pub nproc: Option<u64>,
}

/// A policy is a short YAML file; anything larger is not one (`/dev/zero` would never end).
const MAX_POLICY_BYTES: u64 = 1 << 20;
/// Far deeper than any policy nests its flow collections.
const MAX_FLOW_DEPTH: usize = 64;

/// The policy file's text, read once and bounded.
pub fn read_policy_text(path: &Path) -> Result<String> {
    use std::io::Read;
    let shown = path.display();
    if path.is_dir() {
        bail!("--policy {shown}: is a directory, not a policy file");
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("--policy {shown}: cannot read"))?;
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("--policy {shown}: cannot read"))?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        bail!("--policy {shown}: larger than {MAX_POLICY_BYTES} bytes, not a policy file");
    }
    String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("--policy {shown}: is not UTF-8 text"))
}

/// The deepest nesting of YAML flow collections (`[`, `{`), outside quotes and comments.
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for line in text.lines() {
        let mut quote = None;
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    deepest
}

impl Policy {
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_policy_text(path)?;
        Self::parse(&text).with_context(|| format!("--policy {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let depth = flow_depth(text);
        if depth > MAX_FLOW_DEPTH {
            // The YAML parser reaches its own recursion limit only after a long, quadratic scan.
            bail!("nests {depth} levels of [ ] or {{ }} (at most {MAX_FLOW_DEPTH})");
        }
        let p: Policy = serde_yaml_ng::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        if p.version != 1 {
            bail!(
                "unsupported policy version {} (diag reads version 1)",
                p.version
            );
        }
        Ok(p)
    }

    /// The filesystem section, empty when absent.
    pub fn filesystem(&self) -> &FilesystemPolicy {
        static NONE: FilesystemPolicy = FilesystemPolicy {
            read_only: Vec::new(),
            read_write: Vec::new(),
            include_workdir: false,
        };
        self.filesystem_policy.as_ref().unwrap_or(&NONE)
    }

    /// Notes for the report about parts of the policy diag does not enforce.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.network_policies.is_some() {
            notes.push(
                "policy: network_policies accepted and ignored (diag is not a network proxy)"
                    .into(),
            );
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_openclaw_shape_and_names_unknown_keys() {
        let p = Policy::parse(
            "version: 1\nfilesystem_policy:\n  read_only: [/usr, /etc]\n  read_write: [/tmp]\n  include_workdir: false\nlandlock:\n  compatibility: hard_requirement\nprocess:\n  run_as_user: nobody\n  nproc: 512\nnetwork_policies:\n  x: 1\n",
        )
        .unwrap();
        assert_eq!(p.filesystem().read_write, vec![PathBuf::from("/tmp")]);
        assert_eq!(p.landlock.compatibility, Compatibility::HardRequirement);
        assert_eq!(p.process.nproc, Some(512));
        assert_eq!(p.notes().len(), 1);
        let err =
            Policy::parse("version: 1\nfilesystem_policy:\n  read_wrote: [/tmp]\n").unwrap_err();
        assert!(format!("{err:#}").contains("read_wrote"), "{err:#}");
        assert!(Policy::parse("version: 2\n").is_err());
        assert!(Policy::parse("version: [").is_err());
    }
}
