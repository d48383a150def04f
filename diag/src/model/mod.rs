//! The event model shared by every stage: what happened, in the vocabulary of syscalls.

pub mod errno;
mod errno_table;
pub mod event;
pub mod flags;
pub mod layer;
pub mod syscalls;
pub mod text;

pub use event::*;
pub use layer::{Confidence, Layer};
pub use text::Text;
