//! clap definitions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "diag", version = crate::cli::output::VERSION, about = "Tells you why a sandboxed program was denied, when its own error message points the wrong way.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Launch a command under tracing, print the diagnosis, exit with the command's status.
    Run(RunArgs),
    /// List the causes diag knows and the messages each one explains.
    Catalog(CatalogArgs),
    /// Run a command inside an OpenShell-style sandbox policy (Landlock, limits, identity).
    Sandbox(SandboxArgs),
    /// Explain failures after the fact, from strace logs or kernel audit records.
    Analyze(AnalyzeArgs),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// eBPF when it loads, else ptrace.
    Auto,
    Ebpf,
    Ptrace,
}

/// Options shared by every command that writes a report.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Write the JSON report (diag.report/v1) here; `-` is stdout.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Do not print the human report on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// What to capture.
#[derive(Args, Debug, Clone)]
pub struct FilterArgs {
    /// Errnos to report: names, numbers, `default` (EACCES,EPERM,EAGAIN,EROFS,ENOSYS plus ENOENT
    /// under /dev/) or `all`.
    #[arg(long, value_name = "LIST", default_value = "default")]
    pub errno: String,
    /// Syscalls to watch: `all`, groups (file, process, exec, network, memory, privileged) or
    /// syscall names.
    #[arg(long, value_name = "GROUP|LIST", default_value = "all")]
    pub syscalls: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub report: ReportArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: Backend,
    /// Run the command as USER (with that user's groups and environment); diag stays root.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Apply this OpenShell-style sandbox policy to the command before exec.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Keep tracing until every process of the tree has exited, not just the command.
    #[arg(long)]
    pub wait_tree: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CatalogArgs {
    /// Print the catalog as Markdown (this is how docs/causes.md is made).
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Args, Debug)]
pub struct SandboxArgs {
    /// The policy file.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub report: ReportArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// The files are kernel audit records (audit.log, dmesg or `journalctl -k` output), not
    /// strace logs.
    #[arg(long)]
    pub audit: bool,
    /// strace logs (`strace -f -o FILE`; for `-ff`, FILE stands for its FILE.<pid> files), or
    /// audit records with --audit.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}
