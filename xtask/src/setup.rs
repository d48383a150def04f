//! `cargo xtask setup`: installs what is missing, and only that.

use crate::{is_root, run_cmd};
use anyhow::{bail, Context, Result};
use std::process::Command;

/// Debian packages the tests and the demo use (binary they provide, package).
const PACKAGES: &[(&str, &str)] = &[
    ("tmux", "tmux"),
    ("strace", "strace"),
    ("script", "bsdutils"),
    ("setpriv", "util-linux"),
    ("python3", "python3"),
    // examples/openshell_supervisor.py reads its policy with PyYAML and runs `ip`.
    ("/usr/lib/python3/dist-packages/yaml", "python3-yaml"),
    ("ip", "iproute2"),
    ("bpftrace", "bpftrace"),
    ("ping", "iputils-ping"),
    ("auditctl", "auditd"),
    ("/usr/bin/time", "time"),
    ("gcc", "gcc"),
    // Real container engines for diag/tests/containers.rs (dockerd started by the tests).
    ("dockerd", "docker.io"),
    ("podman", "podman"),
    ("runc", "runc"),
    ("/bin/busybox", "busybox-static"),
];

pub fn run() -> Result<()> {
    install_packages()?;
    toolchain()
}

/// What building diag with its eBPF backend needs (no Debian packages, no root).
pub fn toolchain() -> Result<()> {
    install_nightly_components()?;
    install_bpf_linker()?;
    Ok(())
}

fn have(binary: &str) -> bool {
    if binary.starts_with('/') {
        return std::path::Path::new(binary).exists();
    }
    Command::new("sh")
        .args(["-c", &format!("command -v {binary} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether dpkg knows the package as installed.
fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b" installed"))
}

fn install_packages() -> Result<()> {
    let lab = crate::cases::apt_packages()?;
    let mut missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(bin, _)| !have(bin))
        .map(|(_, pkg)| *pkg)
        .collect();
    // The case lab's packages (lab/cases/*.yaml `apt`), by package name.
    missing.extend(lab.iter().map(String::as_str).filter(|p| !installed(p)));
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        eprintln!("xtask: setup: Debian packages present");
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing packages {} and not root: run `sudo apt-get install {}`",
            missing.join(" "),
            missing.join(" ")
        );
    }
    run_cmd(Command::new("apt-get").arg("update").arg("-qq"))?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}

/// Nightly components the eBPF programs need: the core sources to build them, clippy to lint
/// them (`cargo xtask test`).
const NIGHTLY_COMPONENTS: &[&str] = &["rust-src", "clippy"];

fn nightly_has(component: &str) -> bool {
    Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with(component))
        })
}

fn install_nightly_components() -> Result<()> {
    let has_nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_nightly {
        bail!("no nightly Rust toolchain: the eBPF programs need one (rustup toolchain install nightly)");
    }
    for &component in NIGHTLY_COMPONENTS {
        if nightly_has(component) {
            eprintln!("xtask: setup: nightly {component} present");
            continue;
        }
        run_cmd(Command::new("rustup").args([
            "component",
            "add",
            component,
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

fn bpf_linker_works() -> bool {
    Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// bpf-linker linked against the nightly's own libLLVM (Debian 12's LLVM is too old); see
/// shared/notes/ebpf-toolchain.md. Reinstalled only when it does not run.
fn install_bpf_linker() -> Result<()> {
    if bpf_linker_works() {
        eprintln!("xtask: setup: bpf-linker present");
        return Ok(());
    }
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib_dir = std::path::Path::new(sysroot.trim()).join("lib");
    let llvm_lib = std::fs::read_dir(&lib_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM") && n.ends_with(".so"))
        .context("the nightly toolchain has no libLLVM shared library")?;
    let llvm_lib = llvm_lib
        .trim_start_matches("lib")
        .trim_end_matches(".so")
        .to_string();
    let version = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let major = version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("cannot read the nightly's LLVM version")?
        .to_string();
    let rustflags = format!(
        "-L {0} -l dylib={llvm_lib} -C link-arg=-Wl,-rpath,{0}",
        lib_dir.display()
    );
    run_cmd(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker@0.13.0",
                "--locked",
                "--no-default-features",
            ])
            .args(["--features", &format!("llvm-{major},no-llvm-linking")])
            .env("RUSTFLAGS", rustflags)
            .env_remove("RUSTUP_TOOLCHAIN"),
    )?;
    if !bpf_linker_works() {
        bail!("bpf-linker was installed but does not run");
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let o = cmd.output().context("running a toolchain command")?;
    if !o.status.success() {
        bail!("{}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}
