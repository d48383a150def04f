//! The cause catalog: data (`causes.yaml`, compiled in), parsed and compiled once.

use crate::model::{errno, Layer};
use anyhow::{bail, Context, Result};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

const CATALOG_YAML: &str = include_str!("causes.yaml");

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    causes: Vec<CauseSpec>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CauseSpec {
    id: String,
    // Optional in a user file that only adds messages to a built-in cause; a cause needs them.
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    evidence: Vec<EvidenceSpec>,
    #[serde(default)]
    fix: BTreeMap<String, String>,
    #[serde(default)]
    cases: Vec<CaseSpec>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct EvidenceSpec {
    #[serde(default)]
    syscalls: Vec<String>,
    #[serde(default)]
    errnos: Vec<String>,
    path: Option<String>,
    #[serde(default)]
    layers: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    program: String,
    message: String,
    misleading: Option<String>,
    source: String,
    /// The integration test that reproduces this case for real, if any.
    reproduced_by: Option<String>,
}

pub struct Cause {
    pub id: String,
    pub title: String,
    pub description: String,
    pub evidence: Vec<Evidence>,
    /// Fix text per layer name, with `default` as the fallback.
    pub fix: BTreeMap<String, String>,
    pub cases: Vec<Case>,
}

pub struct Evidence {
    pub syscalls: Vec<String>,
    pub errnos: Vec<i32>,
    pub path: Option<Regex>,
    pub layers: Vec<Layer>,
    /// The spec text, for docs.
    pub describe: String,
}

pub struct Case {
    pub program: String,
    pub message: Regex,
    pub message_text: String,
    pub misleading: Option<String>,
    pub source: String,
    pub reproduced_by: Option<String>,
}

pub struct Catalog {
    pub causes: Vec<Cause>,
}

/// The built-in catalog as JSON: the same fields as its YAML source, for scripts.
pub fn builtin_json() -> String {
    let file: CatalogFile =
        serde_yaml_ng::from_str(CATALOG_YAML).expect("the built-in catalog is valid");
    serde_json::to_string_pretty(&file).expect("a catalog serializes") + "\n"
}

/// The compiled-in catalog. Its validity is a unit test, so this cannot fail at run time.
pub fn builtin() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog::parse(CATALOG_YAML).expect("the built-in catalog is valid"))
}

/// The most a `--catalog` file may hold: a team's messages, not a data dump.
pub const USER_FILE_MAX_BYTES: u64 = 1 << 20;

/// New causes of a user catalog are named `local-...`, so a report's cause is always either a
/// built-in one (the schema's enum) or visibly a site's own.
pub const LOCAL_PREFIX: &str = "local-";

/// The built-in catalog extended by a team's file (`--catalog FILE`, the same format): an entry
/// with a built-in cause's id adds its evidence, cases and fixes to that cause; an entry named
/// `local-...` is a new cause, matched before the catch-all `unknown`. Parsed once; the result
/// lives as long as diag.
pub fn with_user_file(path: &std::path::Path) -> Result<&'static Catalog> {
    static LOADED: OnceLock<(std::path::PathBuf, &'static Catalog)> = OnceLock::new();
    if let Some((_, c)) = LOADED.get().filter(|(p, _)| p == path) {
        return Ok(c);
    }
    let catalog: &'static Catalog = Box::leak(Box::new(read_user_file(path)?));
    let _ = LOADED.set((path.to_path_buf(), catalog));
    Ok(catalog)
}

fn read_user_file(path: &std::path::Path) -> Result<Catalog> {
    use std::io::Read;
    let shown = path.display();
    let mut text = String::new();
    std::fs::File::open(path)
        .with_context(|| format!("--catalog {shown}"))?
        .take(USER_FILE_MAX_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("--catalog {shown}: not UTF-8 text"))?;
    if text.len() as u64 > USER_FILE_MAX_BYTES {
        bail!("--catalog {shown}: larger than {USER_FILE_MAX_BYTES} bytes");
    }
    let user: CatalogFile =
        serde_yaml_ng::from_str(&text).map_err(|e| anyhow::anyhow!("--catalog {shown}: {e}"))?;
    let mut file: CatalogFile =
        serde_yaml_ng::from_str(CATALOG_YAML).expect("the built-in catalog is valid");
    for spec in user.causes {
        match file.causes.iter_mut().find(|c| c.id == spec.id) {
            Some(builtin) => {
                builtin.evidence.extend(spec.evidence);
                builtin.cases.extend(spec.cases);
                builtin.fix.extend(spec.fix);
            }
            None if spec.id.starts_with(LOCAL_PREFIX) => {
                let before_unknown = file.causes.len() - 1;
                file.causes.insert(before_unknown, spec);
            }
            None => bail!(
                "--catalog {shown}: cause '{}' is neither a built-in cause nor named {LOCAL_PREFIX}...",
                spec.id
            ),
        }
    }
    Catalog::from_file(file).map_err(|e| anyhow::anyhow!("--catalog {shown}: {e:#}"))
}

impl Catalog {
    pub fn parse(yaml: &str) -> Result<Self> {
        let file: CatalogFile =
            serde_yaml_ng::from_str(yaml).context("parsing the cause catalog")?;
        Self::from_file(file)
    }

    fn from_file(file: CatalogFile) -> Result<Self> {
        let mut causes = Vec::new();
        for c in file.causes {
            if c.title.is_empty() || c.description.is_empty() {
                bail!("cause {} has no title or description", c.id);
            }
            if !c.fix.contains_key("default") {
                bail!("cause {} has no default fix", c.id);
            }
            for layer in c.fix.keys().filter(|k| *k != "default") {
                if Layer::parse(layer).is_none() {
                    bail!("cause {}: fix for unknown layer '{layer}'", c.id);
                }
            }
            let evidence = c
                .evidence
                .into_iter()
                .map(|e| compile_evidence(&c.id, e))
                .collect::<Result<_>>()?;
            let cases = c
                .cases
                .into_iter()
                .map(|k| {
                    let message = RegexBuilder::new(&k.message)
                        .case_insensitive(true)
                        .build()
                        .with_context(|| {
                            format!("cause {}: message pattern {:?}", c.id, k.message)
                        })?;
                    Ok(Case {
                        program: k.program,
                        message,
                        message_text: k.message,
                        misleading: k.misleading,
                        source: k.source,
                        reproduced_by: k.reproduced_by,
                    })
                })
                .collect::<Result<_>>()?;
            causes.push(Cause {
                id: c.id,
                title: c.title,
                description: c.description,
                evidence,
                fix: c.fix,
                cases,
            });
        }
        if causes.last().map(|c| c.id.as_str()) != Some("unknown") {
            bail!("the catalog must end with the catch-all cause 'unknown'");
        }
        Ok(Catalog { causes })
    }

    pub fn get(&self, id: &str) -> Option<&Cause> {
        self.causes.iter().find(|c| c.id == id)
    }

    pub fn case_count(&self) -> usize {
        self.causes.iter().map(|c| c.cases.len()).sum()
    }
}

fn compile_evidence(cause: &str, e: EvidenceSpec) -> Result<Evidence> {
    let errnos = e
        .errnos
        .iter()
        .map(|n| errno::number(n).with_context(|| format!("cause {cause}: unknown errno {n}")))
        .collect::<Result<_>>()?;
    let layers = e
        .layers
        .iter()
        .map(|l| Layer::parse(l).with_context(|| format!("cause {cause}: unknown layer {l}")))
        .collect::<Result<_>>()?;
    for s in &e.syscalls {
        if crate::model::syscalls::number(s).is_none() {
            bail!("cause {cause}: unknown syscall {s}");
        }
    }
    let mut parts = Vec::new();
    if !e.syscalls.is_empty() {
        parts.push(e.syscalls.join("/"));
    }
    if !e.errnos.is_empty() {
        parts.push(e.errnos.join("/"));
    }
    if let Some(p) = &e.path {
        parts.push(format!("path ~ `{p}`"));
    }
    if !e.layers.is_empty() {
        parts.push(format!("layer {}", e.layers.join("/")));
    }
    let path = e
        .path
        .as_deref()
        .map(Regex::new)
        .transpose()
        .with_context(|| format!("cause {cause}: path pattern"))?;
    Ok(Evidence {
        syscalls: e.syscalls,
        errnos,
        path,
        layers,
        describe: parts.join(", "),
    })
}

impl Evidence {
    pub fn matches(&self, syscall: &str, errno: i32, path: Option<&str>, layer: Layer) -> bool {
        (self.syscalls.is_empty() || self.syscalls.iter().any(|s| s == syscall))
            && (self.errnos.is_empty() || self.errnos.contains(&errno))
            && self
                .path
                .as_ref()
                .is_none_or(|re| path.is_some_and(|p| re.is_match(p)))
            && (self.layers.is_empty() || self.layers.contains(&layer))
    }
}

impl Cause {
    pub fn fix_for(&self, layer: Layer) -> &str {
        self.fix
            .get(layer.as_str())
            .or_else(|| self.fix.get("default"))
            .map(String::as_str)
            .unwrap_or("")
    }
}
