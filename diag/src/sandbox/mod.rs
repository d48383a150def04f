//! Reproducing a sandbox on the host: policies, Landlock, limits and identity.

pub mod apply;
pub mod identity;
pub mod patch;
pub mod policy;
pub mod seccomp;
pub mod terminal;

pub use apply::Plan;
pub use policy::Policy;
