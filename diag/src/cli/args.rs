//! clap definitions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "diag", version = crate::cli::output::version(), propagate_version = true, about = "Tells you why a sandboxed program was denied, when its own error message points the wrong way.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Launch a command under tracing, print the diagnosis, exit with the command's status.
    Run(RunArgs),
    /// Trace a running sandbox from the host: by pid (with its descendants) or by cgroup.
    Attach(AttachArgs),
    /// Sandbox policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// List the causes diag knows and the messages each one explains.
    Catalog(CatalogArgs),
    /// Run a command inside an OpenShell-style sandbox policy (Landlock, limits, identity).
    Sandbox(SandboxArgs),
    /// What this host supports (BTF, privileges, probes, LSMs, Landlock, cgroups) and how to fix
    /// what is missing.
    Doctor(DoctorArgs),
    /// Explain failures after the fact, from strace logs or kernel audit records.
    Analyze(AnalyzeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(CompletionsArgs),
    /// Print diag's man page (or a subcommand's) in roff on stdout.
    Man(ManArgs),
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// A subcommand (run, attach, analyze, ...); without it, the page of diag itself.
    pub subcommand: Option<String>,
}

/// `--fail-on`: the weakest finding that makes `analyze` or `attach` exit 1.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Any finding, even one whose cause is unknown.
    Any,
    /// A finding with a known cause.
    Cause,
    /// A finding with a known cause that rests on direct kernel evidence.
    Direct,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// The choice made, or None to decide by the terminal.
    pub fn forced(self) -> Option<bool> {
        match self {
            ColorWhen::Auto => None,
            ColorWhen::Always => Some(true),
            ColorWhen::Never => Some(false),
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// eBPF when it loads, else ptrace.
    Auto,
    Ebpf,
    Ptrace,
}

/// `--on-signal`: what SIGINT, SIGTERM, SIGHUP or SIGPIPE to diag does to the traced tree (the
/// report is written, marked partial, either way, and diag exits 128+N).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnSignal {
    /// Pass the signal on to every process of the tree, SIGKILL what is left after 2 s.
    End,
    /// Stop tracing and leave the tree running.
    Detach,
}

/// Options shared by every command that writes a report.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Write the JSON report (diag.report/v1) here; `-` is stdout.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write a Markdown report (for bug tickets and CI summaries) here; `-` is stdout.
    #[arg(long, value_name = "PATH")]
    pub markdown: Option<PathBuf>,
    /// CI mode (on by itself when GITHUB_ACTIONS=true or GITLAB_CI=true): write the JSON to
    /// $RUNNER_TEMP/diag-report.json (else ./diag-report.json) and fold the tables in the log;
    /// on GitHub append the Markdown to $GITHUB_STEP_SUMMARY and print one `::error`
    /// annotation per finding; on GitLab write gl-code-quality-report.json.
    #[arg(long)]
    pub ci: bool,
    /// No CI mode, even under GitHub Actions or GitLab CI.
    #[arg(long, conflicts_with = "ci")]
    pub no_ci: bool,
    /// Mask strings matching this regular expression in every output (repeatable).
    #[arg(long, value_name = "PATTERN", value_parser = crate::report::redact::parse_pattern)]
    pub redact: Vec<regex::bytes::Regex>,
    /// Do not print the human report on stderr, nor CI annotations.
    #[arg(long, short)]
    pub quiet: bool,
    /// How the report is shown: `table` (the human report on stderr), `json` (the JSON report on
    /// stdout), `jsonl` (JSON lines on stdout: each failure and finding as it is known, then a
    /// summary line with the whole report).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "table")]
    pub format: Format,
    /// Colour in the human report: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto")]
    pub color: ColorWhen,
    /// Extend the built-in cause catalog with this file (same YAML format as `diag catalog
    /// --json` shows): an entry with a built-in cause's id adds messages (cases), evidence and
    /// fixes to it; an entry named `local-...` is a cause of your own. At most 1 MiB.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

/// What to capture.
#[derive(Args, Debug, Clone)]
pub struct FilterArgs {
    /// Errnos to report: names, numbers, `default` (EACCES,EPERM,EAGAIN,EROFS,ENOSYS; plus
    /// ENOENT/ENXIO/ENODEV under /dev/, exec's ENOENT/ENOEXEC, clone/unshare/inotify ENOSPC,
    /// EMFILE/ENFILE from calls that make a descriptor) or `all`.
    #[arg(long, value_name = "LIST", default_value = "default")]
    pub errno: String,
    /// Syscalls to watch: `all`, groups (file, process, exec, network, memory, privileged) or
    /// syscall names.
    #[arg(long, value_name = "GROUP|LIST", default_value = "all")]
    pub syscalls: String,
    /// Kernel ring buffer size in KiB (a power of two); lost events are counted and reported.
    #[arg(long, value_name = "KIB", default_value_t = crate::capture::DEFAULT_RING_BYTES / 1024)]
    pub ring_buffer_kib: u32,
}

/// What a workload run as another user keeps of diag's environment.
#[derive(Args, Debug, Clone)]
pub struct EnvArgs {
    /// When the command runs as another user (`run --user`, a policy's run_as_user): also pass
    /// these variables of diag's environment to it (comma-separated, repeatable). Otherwise the
    /// command gets diag's whole environment anyway.
    #[arg(long, value_name = "VAR,...", value_delimiter = ',', value_parser = crate::sandbox::identity::parse_env_name)]
    pub preserve_env: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub report: ReportArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: Backend,
    /// Run the command as USER, as sudo does: that user's groups, a new session with a pty of
    /// its own (relayed by diag) instead of diag's terminal, no fd above 2, and an environment of
    /// HOME, USER, LOGNAME, SHELL, a safe PATH and the terminal and locale variables; diag stays
    /// root.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    #[command(flatten)]
    pub env: EnvArgs,
    /// Apply this OpenShell-style sandbox policy to the command before exec.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Run twice: under --policy, then under the policy patched with diag's suggested grants
    /// (or, for `docker|podman|nerdctl run ...`, with the engine flags of the fix: --cap-add,
    /// --pids-limit); report both and exit with the second run's status.
    #[arg(long)]
    pub verify_fix: bool,
    /// A policy to suggest patches against, without applying it (the sandbox applies it).
    #[arg(long, value_name = "FILE", conflicts_with = "policy")]
    pub policy_file_for_suggestions: Option<PathBuf>,
    /// Keep tracing until every process of the tree has exited, not just the command.
    #[arg(long)]
    pub wait_tree: bool,
    /// What a signal to diag does to the launched tree. `end` also makes the command die with
    /// diag if diag is killed (SIGKILL); `detach` leaves it running then too.
    #[arg(long, value_enum, default_value = "end")]
    pub on_signal: OnSignal,
    /// Write what would go to stdout (`--json -`, `--markdown -`, `--format json|jsonl`) to this
    /// open file descriptor instead, so it does not mix with the command's own output (e.g.
    /// `--report-fd 3 3>report.jsonl`). The command does not inherit it.
    #[arg(long, value_name = "FD")]
    pub report_fd: Option<i32>,
    /// ptrace backend: stop on every syscall instead of only those the seccomp prefilter marks,
    /// so calls a sandbox's own seccomp filter refuses are seen (and named as seccomp's).
    #[arg(long)]
    pub no_prefilter: bool,
    /// ptrace backend: do not hold the CPUs' wake-up latency at zero while tracing. By default
    /// idle CPUs poll instead of sleeping between stops (a PM QoS request on
    /// /dev/cpu_dma_latency, dropped when diag exits): on virtual machines a stop that has to
    /// wake a sleeping CPU costs several times the stop itself.
    #[arg(long)]
    pub let_cpus_sleep: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    #[command(flatten)]
    pub report: ReportArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// A process to trace with all its descendants (repeatable).
    #[arg(long, value_name = "PID", allow_negative_numbers = true)]
    pub pid: Vec<i64>,
    /// Every process of this cgroup (v1 or v2 directory).
    #[arg(long, value_name = "PATH", conflicts_with = "pid")]
    pub cgroup: Option<PathBuf>,
    /// Every process of this running container (Docker, Podman or containerd name or id; found
    /// through the engine's CLI, else by its id in /proc/*/cgroup).
    #[arg(long, value_name = "NAME|ID", conflicts_with_all = ["pid", "cgroup"])]
    pub container: Option<String>,
    /// Every container of this Kubernetes pod on this node (found through crictl, else the
    /// kubelet's /var/log/pods and the kubepods cgroup naming).
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with_all = ["pid", "cgroup", "container"])]
    pub pod: Option<String>,
    /// Trace for this long once attached (e.g. 60s, 5m), a hard deadline: the report is
    /// written right after. Default: until the attached processes exit (--pid) or Ctrl-C.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Exit 1 when a finding at least this strong is made (default: exit 0 once reported).
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub fail_on: Option<FailOn>,
    /// Follow: JSON lines on stdout as failures and findings become known (`--format jsonl`).
    #[arg(long, conflicts_with = "format")]
    pub follow: bool,
    /// With --pid: keep tracing until every descendant has exited too, not just the processes
    /// named (daemons they left behind included).
    #[arg(long, conflicts_with = "cgroup")]
    pub until_tree_exits: bool,
    /// What a signal to diag does to the attached processes: by default diag only stops
    /// tracing (`detach`); `end` passes the signal on and SIGKILLs what is left after 2 s.
    #[arg(long, value_enum, default_value = "detach")]
    pub on_signal: OnSignal,
    /// auto: eBPF when it loads, else ptrace. ptrace attaches to every thread of the tree and
    /// stops at each syscall's entry and exit (slow: the tree runs much slower while traced),
    /// then lets go; with --cgroup it sees the members of the moment and their descendants only.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: Backend,
    /// ptrace backend: do not hold the CPUs' wake-up latency at zero while tracing (see
    /// `diag run --let-cpus-sleep`).
    #[arg(long)]
    pub let_cpus_sleep: bool,
}

#[derive(Args, Debug)]
pub struct CatalogArgs {
    /// Print the catalog as Markdown (this is how docs/causes.md is made).
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    /// Print the catalog as JSON (the same fields as its YAML source).
    #[arg(long)]
    pub json: bool,
    /// Show the built-in catalog extended by this file (see `diag run --catalog`).
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SandboxArgs {
    /// The policy file.
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    #[command(flatten)]
    pub env: EnvArgs,
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Warn when the permissive policy lacks a path the base policy grants.
    Check { base: PathBuf, permissive: PathBuf },
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Print the checks as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub report: ReportArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// The files are kernel audit records (audit.log, `ausearch --raw` or `ausearch -i`,
    /// dmesg with or without timestamps, `journalctl -k` in any of its -o forms), not strace
    /// logs.
    #[arg(long)]
    pub audit: bool,
    /// Exit 1 when a finding at least this strong is made (default: exit 0 once reported).
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub fail_on: Option<FailOn>,
    /// Report only the failures of this process and its descendants, as the log shows its
    /// forks (repeatable).
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,
    /// Report only the failures of processes of this name, as the log names them (comm;
    /// repeatable).
    #[arg(long, value_name = "NAME")]
    pub comm: Vec<String>,
    /// Report only the failures at or after TIME: `2025-11-28T20:56:39Z`, `2025-11-28
    /// 20:56:39` or `2025-11-28` (UTC), `@1764363399` (seconds since the epoch), or a duration before now
    /// (`10m`, `2h`). Logs with dates only (audit records, `strace -ttt`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// strace logs (`strace -f -o FILE`; for `-ff`, FILE stands for its FILE.<pid> files;
    /// `-t/-tt/-ttt/-r/-T/-y/-yy/-X verbose` are read), or with --audit kernel audit records
    /// (audit.log, `ausearch --raw` or `-i`, dmesg, `journalctl -k`). `-` is stdin; pipes and
    /// FIFOs are read once, as a stream.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}
