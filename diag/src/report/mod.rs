//! Reports: the `diag.report/v1` model, and its JSON, human and Markdown renderings.

pub mod build;
pub mod human;
pub mod model;
pub mod write;

pub use model::Report;
