//! Project tasks: `cargo xtask setup | test | demo | bench | cases | dist | fuzz | soak`.

mod bench;
mod cases;
mod fuzz;
mod setup;
mod soak;
mod tally;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Parser)]
#[command(about = "diag's project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing (Debian packages, nightly rust-src, bpf-linker), nothing twice.
    Setup,
    /// Setup, then fmt --check, clippy -D warnings, and every test (privileged ones included).
    Test,
    /// Run the bundled seed scenario under diag and print the diagnosis.
    Demo,
    /// A long fork-and-fail loop under diag, sampling its memory (not part of CI).
    Soak {
        /// How long the loop runs.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
    },
    /// Install the eBPF toolchain if missing, then a release build, shell completions and man
    /// pages, all in target/dist/.
    Dist,
    /// Fuzz the strace-log and audit-log parsers (nightly, cargo-fuzz) for a bounded time each.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// diag against strace, strace --seccomp-bpf and bpftrace, interleaved in one run.
    Bench(bench::BenchArgs),
    /// The case lab: real-world failures reproduced here, graded per backend; writes
    /// docs/accuracy.md.
    Cases(cases::CasesArgs),
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Test => test(),
        Task::Demo => demo(),
        Task::Soak { seconds } => soak::run(seconds),
        Task::Dist => dist(),
        Task::Fuzz { seconds } => fuzz::run(seconds),
        Task::Bench(args) => bench::run(args),
        Task::Cases(args) => cases::run(args),
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs a command from the workspace root, failing with its name when it fails.
pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    cmd.current_dir(workspace_root());
    eprintln!("xtask: $ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The kernel programs compile only for the bpf target (on the host `diag-ebpf` is a stub), so
/// the workspace clippy run never sees them: lint them with the toolchain that builds them.
fn clippy_kernel_programs() -> Result<()> {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "clippy", "--quiet", "--release"])
        .args([
            "--package",
            "diag-ebpf",
            "--bins",
            "--target",
            "bpfel-unknown-none",
        ])
        .args(["-Z", "build-std=core", "--", "-D", "warnings"])
        .current_dir(workspace_root().join("diag-ebpf"))
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "--cfg=bpf_target_arch=\"x86_64\"",
        );
    // The outer (stable) cargo's settings must not leak into the nightly run.
    for var in [
        "RUSTC",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    run_cmd(&mut cmd)
}

fn test() -> Result<()> {
    setup::run()?;
    run_cmd(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run_cmd(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    clippy_kernel_programs()?;
    // Privileged end-to-end tests load eBPF programs and start sandboxes: they run as root here.
    let tally = tally::cargo_test(cargo().args(["test", "--workspace", "--all-targets"]))?;
    // A smoke run of the benchmark: every tracer runs and counts every denial (no timings).
    run_cmd(cargo().args(["xtask", "bench", "--quick"]))?;
    // The case lab's quick subset: cases diag gets fully right must stay right.
    run_cmd(cargo().args(["xtask", "cases", "--quick"]))?;
    // The last line CI reads: how many tests really ran (the bench smoke run and the quick case
    // lab count as one each).
    println!(
        "tests: {} passed, {} failed, {} skipped",
        tally.passed + 2,
        tally.failed,
        tally.skipped
    );
    Ok(())
}

fn demo() -> Result<()> {
    setup::run()?;
    run_cmd(cargo().args(["build", "--release", "-p", "diag"]))?;
    let root = workspace_root();
    let diag = root.join("target/release/diag");
    let policy = root.join("examples/openclaw-sandbox.yaml");
    let supervisor = root.join("examples/openshell_supervisor.py");
    let json = std::env::temp_dir().join("diag-demo-report.json");
    // The workload runs as an unprivileged user: its tmux socket goes where that user may write.
    let socket = std::env::temp_dir().join(format!("diag-demo-{}.sock", std::process::id()));
    let mut cmd = Command::new(&diag);
    if !is_root() {
        cmd = Command::new("sudo");
        cmd.arg(&diag);
    }
    // cargo's LD_LIBRARY_PATH points into root's home: the workload would probe it, refused.
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd.arg("run").arg("--json").arg(&json).arg("--");
    cmd.arg("/usr/bin/python3")
        .arg(&supervisor)
        .arg("--policy")
        .arg(&policy)
        .args(["--monitor-seconds", "3", "--"]);
    cmd.args(["tmux", "-S"])
        .arg(&socket)
        .args(["new-session", "-d", "-s", "demo", "sleep 30"]);
    eprintln!(
        "xtask: the seed case: tmux under an OpenShell-style supervisor whose Landlock policy does not grant /dev/pts\nxtask: $ {}",
        describe(&cmd)
    );
    let status = cmd.current_dir(&root).status().context("running diag")?;
    // The command is expected to fail (that is the scenario); diag passes its status through.
    eprintln!(
        "xtask: tmux exited with {status}; the JSON report is {}",
        json.display()
    );
    let _ = Command::new("tmux")
        .arg("-S")
        .arg(&socket)
        .arg("kill-server")
        .stderr(std::process::Stdio::null())
        .status();
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// target/dist/: the diag binary, completions/ (bash, zsh, fish, elvish, powershell) and man/.
fn dist() -> Result<()> {
    setup::toolchain()?;
    let dist = workspace_root().join("target/dist");
    run_cmd(cargo().args(["build", "--release", "-p", "diag"]))?;
    let diag = workspace_root().join("target/release/diag");
    let (completions, man) = (dist.join("completions"), dist.join("man"));
    std::fs::create_dir_all(&completions)?;
    std::fs::create_dir_all(&man)?;
    // The binary generates them from its own clap definitions (`diag completions`, `diag man`).
    let generate = |args: &[&str], to: PathBuf| -> Result<()> {
        let out = Command::new(&diag).args(args).output()?;
        if !out.status.success() {
            bail!("diag {} failed", args.join(" "));
        }
        std::fs::write(&to, out.stdout).with_context(|| format!("writing {}", to.display()))
    };
    for (shell, file) in [
        ("bash", "diag.bash"),
        ("zsh", "_diag"),
        ("fish", "diag.fish"),
        ("elvish", "diag.elv"),
        ("powershell", "_diag.ps1"),
    ] {
        generate(&["completions", shell], completions.join(file))?;
    }
    generate(&["man"], man.join("diag.1"))?;
    for sub in [
        "run",
        "attach",
        "analyze",
        "sandbox",
        "policy",
        "catalog",
        "doctor",
        "completions",
        "man",
    ] {
        generate(&["man", sub], man.join(format!("diag-{sub}.1")))?;
    }
    std::fs::copy(&diag, dist.join("diag")).context("copying the diag binary into target/dist")?;
    eprintln!("xtask: wrote {}", dist.display());
    Ok(())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
