//! Builds `diag-ebpf` for `bpfel-unknown-none` with the nightly toolchain and bpf-linker, and
//! embeds the object. Without that toolchain the build still succeeds: the binary then carries
//! an empty object and the reason, and says so when asked for its eBPF backend.
//!
//! Written by hand rather than with aya-build so that the inner cargo's output is shown only when
//! it matters (a failed build), not echoed as dozens of warnings.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

const EBPF_CRATE: &str = "diag-ebpf";
const TARGET: &str = "bpfel-unknown-none";
const SKIP_VAR: &str = "DIAG_SKIP_EBPF";

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let ebpf_dir = manifest_dir.join("..").join(EBPF_CRATE);
    println!("cargo:rerun-if-changed={}", ebpf_dir.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        ebpf_dir.join("Cargo.toml").display()
    );
    println!("cargo:rerun-if-env-changed={SKIP_VAR}");
    println!("cargo:rerun-if-env-changed=PATH");

    embed_commit(&manifest_dir);
    let object = out_dir.join("diag.bpf.o");
    match build_ebpf(&ebpf_dir, &out_dir) {
        Ok(built) => {
            fs::copy(&built, &object).expect("copy eBPF object");
            println!("cargo:rustc-env=DIAG_EBPF_MISSING=");
        }
        Err(Missing(reason)) => {
            println!("cargo:warning=eBPF backend not built in: {reason}");
            fs::write(&object, b"").expect("write empty eBPF object");
            println!("cargo:rustc-env=DIAG_EBPF_MISSING={reason}");
        }
    }
}

/// `DIAG_COMMIT` for `--version`: the source's git commit, or "unknown" outside a checkout (a
/// crates.io or tarball build). Rebuilt when HEAD moves.
fn embed_commit(manifest_dir: &Path) {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(manifest_dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    for watched in ["HEAD", "logs/HEAD"] {
        if let Some(p) = git(&["rev-parse", "--git-path", watched]) {
            println!("cargo:rerun-if-changed={}", manifest_dir.join(p).display());
        }
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=DIAG_COMMIT={commit}");
}

/// The toolchain needed for the eBPF object is absent; carries the one-line reason.
struct Missing(String);

fn build_ebpf(ebpf_dir: &Path, out_dir: &Path) -> Result<PathBuf, Missing> {
    if env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        return Err(Missing(format!("{SKIP_VAR}=1 was set at build time")));
    }
    let has_nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_nightly {
        return Err(Missing(
            "no nightly Rust toolchain (run `cargo xtask setup`)".into(),
        ));
    }
    let has_linker = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_linker {
        return Err(Missing(
            "bpf-linker is not installed or does not run (run `cargo xtask setup`)".into(),
        ));
    }

    let target_dir = out_dir.join("ebpf-target");
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "build", "--quiet", "--release"])
        .args(["--package", EBPF_CRATE, "--bins", "--target", TARGET])
        .args(["-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(ebpf_dir)
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                "--cfg=bpf_target_arch=\"x86_64\"",
                "-Cdebuginfo=2",
                "-Clink-arg=--btf",
            ]
            .join("\x1f"),
        );
    // The outer (stable) cargo's settings must not leak into the nightly build.
    for var in [
        "RUSTC",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd
        .output()
        .map_err(|e| Missing(format!("cannot run rustup: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("rust-src") {
            return Err(Missing(
                "the nightly toolchain lacks rust-src (run `cargo xtask setup`)".into(),
            ));
        }
        // The toolchain is there and the code does not build: that is a real error.
        panic!("building {EBPF_CRATE} for {TARGET} failed:\n{stderr}");
    }
    Ok(target_dir.join(TARGET).join("release").join("diag"))
}
