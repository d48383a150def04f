//! diag's eBPF object. The programs exist only for the bpfel target; on the host this binary is
//! an empty stub so that `cargo check --workspace` and clippy cover the shared ABI crate.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
// The bpf target lacks `AtomicU64::fetch_add`; the programs use the intrinsic (nightly only).
#![cfg_attr(
    target_arch = "bpf",
    feature(core_intrinsics),
    allow(internal_features)
)]

#[cfg(target_arch = "bpf")]
mod programs;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
