//! The stages after capture, shared by every backend: attribute → explain → report.

use crate::attribute::{Attribution, Attributor, ProbesLive};
use crate::capture::ProbeReport;
use crate::context::HostFacts;
use crate::correlate::Trace;
use crate::explain::{self, catalog};
use crate::report::{build, Report};

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

/// Turns a finished trace into the report.
pub fn report(trace: &Trace, session: build::Session) -> Report {
    let attributions = attribute(trace, session.host, session.probes);
    let findings = explain::findings(trace, &attributions, catalog::builtin());
    build::build(trace, &attributions, findings, session)
}
