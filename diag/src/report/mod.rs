//! Reports: the `diag.report/v1` model, and its JSON, human and Markdown renderings.

pub mod build;
pub mod container;
#[cfg(test)]
pub(crate) mod fixture;
pub mod github;
pub mod human;
pub mod markdown;
pub mod model;
pub mod redact;
pub mod schema;
pub mod stream;
#[cfg(test)]
mod tests;
pub mod write;

pub use model::Report;
