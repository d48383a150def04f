//! Reproducing a sandbox on the host: policies, Landlock, limits and identity.

pub mod apply;
pub mod identity;
pub mod policy;

pub use apply::Plan;
pub use policy::Policy;
