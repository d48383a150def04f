//! The live status line of `attach` on a terminal: elapsed time, processes, failures, the top
//! failure so far, lost events. Off when stderr is not a terminal, and with --quiet.

use crate::correlate::Trace;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

pub struct StatusLine(Option<ProgressBar>);

impl StatusLine {
    pub fn new(quiet: bool) -> Self {
        if quiet || !std::io::stderr().is_terminal() {
            return StatusLine(None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(250));
        StatusLine(Some(bar))
    }

    pub fn update(&self, trace: &Trace, lost: u64) {
        let Some(bar) = &self.0 else { return };
        let failures: u64 = trace.failures.iter().map(|g| g.count).sum();
        let top = trace
            .failures
            .iter()
            .max_by_key(|g| g.count)
            .map(crate::explain::describe_call)
            .map(|c| format!(" | top: {}", crate::model::text::escape(&c)))
            .unwrap_or_default();
        bar.set_message(format!(
            "{} processes | {failures} failures{top} | {lost} lost",
            trace.processes.len()
        ));
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
