//! Command-line interface (design.md §1).

pub mod analyze;
pub mod args;
pub mod attach;
pub mod catalog;
pub mod ci;
pub mod doctor;
pub mod live;
pub mod manual;
pub mod output;
pub mod policy;
pub mod run;
pub mod sandbox;
pub mod status;

pub use args::{Cli, Command};

/// diag's own failure: one clear line on stderr, exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for a [`UsageError`].
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}
