//! The stages after capture, shared by every backend: attribute → explain → report.

use crate::attribute::{Attribution, Attributor, ProbesLive};
use crate::capture::ProbeReport;
use crate::context::HostFacts;
use crate::correlate::Trace;
use crate::explain;
use crate::report::{build, Report};
use crate::sandbox::patch::{self, Grant};

pub fn attribute(trace: &Trace, host: &HostFacts, probes: &ProbeReport) -> Vec<Attribution> {
    let attributor = Attributor {
        host,
        probes: ProbesLive::from_report(probes),
        trace,
    };
    trace
        .failures
        .iter()
        .map(|g| attributor.attribute(g))
        .collect()
}

/// A sandbox policy the user gave, for `policy_patch` suggestions.
pub struct PolicySource<'a> {
    pub text: &'a str,
    pub file_name: &'a str,
}

/// Turns a finished trace into the report, and the policy grants of its top finding (the
/// patch `--verify-fix` proves on its own).
pub fn diagnose(
    trace: &Trace,
    session: build::Session,
    policy: Option<&PolicySource>,
) -> (Report, Vec<Grant>) {
    let attributions = attribute(trace, session.host, session.probes);
    let mut findings = explain::findings(trace, &attributions, session.catalog);
    let mut top_grants: Option<Vec<Grant>> = None;
    if let Some(p) = policy {
        for f in &mut findings {
            let grants = explain::policy::grants(f, trace, &attributions);
            // A patch that cannot be made is left out; the fix text still says what to grant.
            if let Ok(Some(patched)) = patch::apply(p.text, &grants, p.file_name) {
                f.policy_patch = Some(patched.diff);
            }
            top_grants.get_or_insert(grants);
        }
    }
    (
        build::build(trace, &attributions, findings, session),
        top_grants.unwrap_or_default(),
    )
}

/// Turns a finished trace into the report.
pub fn report(trace: &Trace, session: build::Session) -> Report {
    diagnose(trace, session, None).0
}
