//! `diag run`: launch a command under tracing, explain its failures, exit with its status.
//! With `--verify-fix`, run it twice (policy, then patched policy) and report both.

use super::args::{Backend, FilterArgs, OnSignal, RunArgs};
use super::live::{self, Interrupt};
use super::{output, usage};
use crate::capture::container::{engine_run, Container, NewContainer};
use crate::capture::ptrace::{self, PtraceCapture};
use crate::capture::targets;
use crate::capture::{
    ebpf::{Closing, EbpfCapture},
    launch, CaptureConfig, ProbeReport,
};
use crate::context::HostFacts;
use crate::correlate::Trace;
use crate::model::{errno, syscalls, Text};
use crate::pipeline::{self, PolicySource};
use crate::report::build::Session;
use crate::report::container::verify_flags;
use crate::report::model::{FailureEntry, RunSummary, Verification};
use crate::report::{self, human, write, Report};
use crate::sandbox::patch::{self, Grant};
use crate::sandbox::policy::read_policy_text;
use crate::sandbox::terminal::Isolation;
use crate::sandbox::{identity::Identity, Plan, Policy};
use anyhow::{Context, Result};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::path::Path;

pub fn capture_config(filter: &FilterArgs) -> Result<CaptureConfig> {
    Ok(CaptureConfig {
        errnos: errno::parse_selection(&filter.errno)
            .map_err(|e| usage(format!("--errno: {e}")))?,
        syscalls: syscalls::parse_selection(&filter.syscalls)
            .map_err(|e| usage(format!("--syscalls: {e}")))?,
        ring_bytes: crate::capture::ring_bytes(filter.ring_buffer_kib).map_err(usage)?,
        ..CaptureConfig::default()
    })
}

/// A policy file read once: its text (for suggestions and patches) and what it parses to (to
/// apply it).
pub struct PolicyFile {
    pub text: String,
    pub name: String,
    pub policy: Policy,
}

impl PolicyFile {
    pub fn read(path: &Path) -> Result<Self> {
        let text = read_policy_text(path).map_err(|e| usage(format!("{e:#}")))?;
        let name = path.file_name().map_or_else(
            || "policy.yaml".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        Self::from_text(text, name)
            .map_err(|e| usage(format!("--policy {}: {e:#}", path.display())))
    }

    /// A policy held in memory only: `--verify-fix`'s patched copy is never written to disk,
    /// where another local user could swap it before the second run reads it back.
    fn from_text(text: String, name: String) -> Result<Self> {
        let policy = Policy::parse(&text)?;
        Ok(PolicyFile { text, name, policy })
    }

    pub fn source(&self) -> PolicySource<'_> {
        PolicySource {
            text: &self.text,
            file_name: &self.name,
        }
    }
}

/// One traced execution of the command.
struct Outcome {
    report: Report,
    grants: Vec<Grant>,
    exit_code: i32,
    /// A signal to diag ended tracing.
    interrupted: bool,
    /// exec itself failed: one line was printed instead of a report.
    exec_failed: bool,
    /// The capture's teardown, joined when the outcome is dropped (after the report is out).
    _closing: Option<Closing>,
}

pub fn run(args: RunArgs) -> Result<i32> {
    let inputs: Vec<&Path> = [&args.policy, &args.policy_file_for_suggestions]
        .into_iter()
        .flatten()
        .map(|p| p.as_path())
        .collect();
    output::check(&args.report, &inputs)?;
    match (output::stdout_outputs(&args.report).first(), args.report_fd) {
        (_, Some(fd)) => write::send_stdout_to(fd).map_err(|e| usage(format!("{e:#}")))?,
        (Some(what), None) => {
            return Err(usage(format!(
                "{what}: stdout is the command's own output here; write the report to a file, or to another descriptor with --report-fd 3 (3>FILE)"
            )))
        }
        (None, None) => {}
    }
    let config = CaptureConfig {
        // The command inherits diag's stdout: a terminal there is where its complaints land.
        // (An attached process's stdout is its own, and says nothing of diag's.)
        stdout_complains: std::io::IsTerminal::is_terminal(&std::io::stdout()),
        ..capture_config(&args.filter)?
    };
    let applied = args.policy.as_deref().map(PolicyFile::read).transpose()?;
    let suggest_only = args
        .policy_file_for_suggestions
        .as_deref()
        .map(PolicyFile::read)
        .transpose()?;
    if args.verify_fix {
        return match applied {
            Some(policy) => verify_fix(&args, &config, &policy),
            None if engine_run(&args.command).is_some() => verify_engine_fix(&args, &config),
            None => Err(usage(
                "--verify-fix needs --policy FILE (the policy to patch and run under), or an engine's run command (docker|podman|nerdctl run ...)",
            )),
        };
    }
    let suggest = applied.as_ref().or(suggest_only.as_ref());
    let applied = applied.as_ref().map(|p| &p.policy);
    let out = trace_once(&args, &config, applied, suggest)?;
    emit(&out, &args);
    Ok(out.exit_code)
}

/// Prints and writes the report. diag's exit status stays the command's own even when a report
/// file cannot be written: that is said on stderr instead.
fn emit(out: &Outcome, args: &RunArgs) {
    let mut report_args = args.report.clone();
    report_args.quiet |= out.exec_failed;
    if let Err(e) = output::emit(&out.report, &report_args, None) {
        eprintln!("diag: error: writing the report: {e:#}");
    }
}

/// What the launch needs besides the command.
struct ChildSetup {
    /// Work for the child before exec: its session (under another user), the policy, `--user`.
    pre_exec: launch::PreExec,
    /// When the workload runs as another user: its own session, set up around the fork.
    isolation: Option<Isolation>,
}

fn prepare_child(args: &RunArgs, policy: Option<&Policy>) -> Result<(ChildSetup, Vec<String>)> {
    let mut plan = policy
        .map(|p| Plan::new(p).map_err(|e| usage(format!("--policy: {e:#}"))))
        .transpose()?;
    let mut user = Identity::resolve(args.user.as_deref(), None)
        .map_err(|e| usage(format!("--user: {e:#}")))?;
    let mut notes = plan.as_ref().map(|p| p.notes.clone()).unwrap_or_default();
    let policy_user = plan.as_mut().and_then(|p| p.identity.as_mut());
    for id in policy_user.into_iter().chain(user.as_mut()) {
        id.preserve_env(&args.env.preserve_env);
    }
    // --user is applied last, so it is the one the workload ends up as.
    let runs_as = user
        .as_ref()
        .or(plan.as_ref().and_then(|p| p.identity.as_ref()))
        .map(|id| id.uid);
    if let (Ok(sudo_user), None) = (std::env::var("SUDO_USER"), runs_as) {
        notes.push(format!(
            "the workload ran as root: diag was started with sudo by {}; pass --user {0} to run it as that user",
            crate::model::text::escape(&sudo_user)
        ));
    }
    let isolation = runs_as.map(Isolation::new).transpose()?;
    let session = isolation.as_ref().map(Isolation::child_side);
    let pre_exec: launch::PreExec = Box::new(move || {
        if let Some(session) = session {
            session.enter()?;
        }
        if let Some(plan) = &plan {
            plan.apply()?;
        }
        if let Some(id) = &user {
            id.become_()?;
        }
        Ok(())
    });
    Ok((
        ChildSetup {
            pre_exec,
            isolation,
        },
        notes,
    ))
}

/// The backend chosen for this run, loaded before the command is forked.
enum Chosen {
    Ebpf(EbpfCapture),
    Ptrace(PtraceCapture),
}

/// What a backend captured of the launched command.
struct Captured {
    backend: report::model::Backend,
    root: Pid,
    status: Option<WaitStatus>,
    /// exec failed: errno and reason.
    exec_failure: Option<(i32, String)>,
    probes: ProbeReport,
    warnings: Vec<String>,
    /// The eBPF capture's teardown, joined when dropped (after the report is out).
    closing: Option<Closing>,
    /// The container an engine run command started.
    container: Option<Container>,
}

/// `--backend`: eBPF where it loads; `auto` falls back to ptrace with a one-line note.
fn choose_backend(
    args: &RunArgs,
    config: &CaptureConfig,
    warnings: &mut Vec<String>,
) -> Result<Chosen> {
    let ptrace = || {
        let mode = if args.no_prefilter {
            ptrace::Mode::EveryStop
        } else {
            ptrace::Mode::Prefilter
        };
        Ok(Chosen::Ptrace(PtraceCapture::new(
            config,
            mode,
            args.let_cpus_sleep,
        )?))
    };
    match args.backend {
        Backend::Ptrace => ptrace(),
        Backend::Ebpf => load_ebpf(config)
            .map(Chosen::Ebpf)
            .map_err(|(why, fix)| usage(format!("the eBPF backend {why}{fix}"))),
        Backend::Auto => match load_ebpf(config) {
            Ok(cap) => Ok(Chosen::Ebpf(cap)),
            Err((why, _)) => {
                let note = format!("the eBPF backend {why}; using the ptrace backend");
                eprintln!("diag: {note}");
                warnings.push(note);
                ptrace()
            }
        },
    }
}

/// Loads the eBPF backend, or says why it cannot (and what fixes it, where something does).
fn load_ebpf(config: &CaptureConfig) -> Result<EbpfCapture, (String, &'static str)> {
    if let Some(reason) = crate::capture::ebpf::missing_reason() {
        return Err((format!("was not built into this binary: {reason}"), ""));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err((
            "needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)".into(),
            ": run diag with sudo, or use --backend ptrace",
        ));
    }
    EbpfCapture::load(config, None).map_err(|e| (format!("cannot load: {e:#}"), ""))
}

/// The launched process, traced from its first instruction: every Landlock domain of its tree
/// will be seen.
fn add_root(trace: &mut Trace, root: Pid, args: &RunArgs) {
    trace.traced_from_start = true;
    trace.launching = Some(root.as_raw() as u32);
    trace.add_process(
        root.as_raw() as u32,
        Some(std::process::id()),
        Text::from(args.command[0].as_str()),
        None,
    );
}

fn exec_failure(started: launch::Started) -> Option<(i32, String)> {
    match started {
        launch::Started::ExecFailed { errno, message, .. } => Some((errno, message)),
        launch::Started::Running(_) => None,
    }
}

fn capture_ebpf(
    mut cap: EbpfCapture,
    args: &RunArgs,
    setup: ChildSetup,
    trace: &mut Trace,
    interrupt: &Interrupt,
) -> Result<Captured> {
    // The child waits until tracing is ready.
    let held = launch::spawn_held(&args.command, setup.pre_exec, dies_with_diag(args))?;
    let _relay = setup.isolation.map(Isolation::relay).transpose()?;
    let root = held.pid;
    if let Err(e) = cap.track(root.as_raw() as u32) {
        held.abandon();
        return Err(e);
    }
    add_root(trace, root, args);
    // `docker run ...`: the container is containerd's child, not the command's.
    let mut watch = NewContainer::watch(&args.command).map(|(watch, daemons)| {
        for seed in daemons
            .into_iter()
            .filter_map(|pid| targets::seed(pid).ok())
        {
            let tracked = seed.tids.iter().all(|&tid| cap.track(tid).is_ok());
            if tracked {
                trace.add_process(
                    seed.pid,
                    seed.ppid,
                    Text::from(seed.comm.as_str()),
                    seed.exe.as_deref().map(Text::from),
                );
            }
        }
        watch
    });
    live::prioritise_reader();
    // A handled SIGCHLD interrupts the pump's poll(): the command's exit ends tracing at once
    // instead of at the next poll tick (half of `diag run -- true`'s wall time otherwise).
    let sigchld = signal_hook::flag::register(
        signal_hook::consts::SIGCHLD,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )?;
    let exec_failure = exec_failure(held.release()?);
    let mut status = None;
    let after_root = live::AfterRoots::new(args.wait_tree);
    live::pump_until(&mut cap, trace, interrupt, args.on_signal, |t, _| {
        if let Some(w) = watch.as_mut() {
            w.look(&t.live_pids());
        }
        status = status.or_else(|| reap(root));
        status.is_some() && after_root.over(t)
    })?;
    signal_hook::low_level::unregister(sigchld);
    let limit = match interrupt.fired() {
        true => live::DRAIN_AT_DEADLINE,
        false => live::DRAIN_UNHURRIED,
    };
    let unread = live::drain(&mut cap, trace, limit)?;
    trace.finish(cap.stats()?);
    let probes = std::mem::take(&mut cap.probes);
    Ok(Captured {
        backend: report::model::Backend::Ebpf,
        root,
        status,
        exec_failure,
        probes,
        warnings: unread.into_iter().collect(),
        // Detaching the programs takes a while: it runs while the report is built.
        closing: Some(cap.close_in_background()),
        container: watch.and_then(NewContainer::found),
    })
}

/// `--on-signal end`: the command dies with diag, even when diag is SIGKILLed.
fn dies_with_diag(args: &RunArgs) -> bool {
    args.on_signal == OnSignal::End
}

/// The ptrace backend traces until the command has exited and only daemons are left (or the
/// whole tree, with `--wait-tree`), then detaches.
fn capture_ptrace(
    mut cap: PtraceCapture,
    args: &RunArgs,
    setup: ChildSetup,
    trace: &mut Trace,
    interrupt: &Interrupt,
) -> Result<Captured> {
    let install_filter = cap.child_setup();
    let held = launch::spawn_held(
        &args.command,
        Box::new(move || {
            install_filter()?;
            (setup.pre_exec)()
        }),
        dies_with_diag(args),
    )?;
    let _relay = setup.isolation.map(Isolation::relay).transpose()?;
    let root = held.pid;
    if let Err(e) = cap.seize(root) {
        held.abandon();
        return Err(usage(format!("{e:#}")));
    }
    add_root(trace, root, args);
    let released = held.release_only()?;
    let after_root = live::AfterRoots::new(args.wait_tree);
    live::step_until(&mut cap, trace, interrupt, args.on_signal, |t, cap| {
        cap.root_status().is_some() && after_root.over(t)
    })?;
    // The status pipe is closed once the command exec'd or exited; a running, interrupted
    // command with its exec done has nothing to report there.
    let exec_failure = match cap.root_status() {
        Some(_) => exec_failure(released.outcome()?),
        None => None,
    };
    trace.finish(cap.stats());
    Ok(Captured {
        backend: report::model::Backend::Ptrace,
        root,
        status: cap.root_status(),
        exec_failure,
        probes: cap.probes,
        warnings: vec![],
        closing: None,
        container: None,
    })
}

/// What the processes left running after tracing face, by backend.
fn left_behind(backend: report::model::Backend) -> &'static str {
    if backend == report::model::Backend::Ptrace {
        "; diag's seccomp prefilter stays on them with no tracer, so the calls it stops (opens, writes, ...) now fail with ENOSYS (--wait-tree keeps tracing them; --backend ebpf leaves them untouched)"
    } else {
        "; their later failures are not in this report (--wait-tree follows them)"
    }
}

fn trace_once(
    args: &RunArgs,
    config: &CaptureConfig,
    policy: Option<&Policy>,
    suggest: Option<&PolicyFile>,
) -> Result<Outcome> {
    let started = std::time::SystemTime::now();
    let (setup, mut warnings) = prepare_child(args, policy)?;
    let backend = choose_backend(args, config, &mut warnings)?;
    let host = HostFacts::read();
    let mut trace = Trace::new();
    let interrupt = Interrupt::install()?;
    let captured = match backend {
        Chosen::Ebpf(cap) => capture_ebpf(cap, args, setup, &mut trace, &interrupt)?,
        Chosen::Ptrace(cap) => capture_ptrace(cap, args, setup, &mut trace, &interrupt)?,
    };
    if let Some((e, msg)) = &captured.exec_failure {
        // One clear line instead of a report about the failed exec's PATH search.
        let line = format!(
            "cannot run {}: {msg} ({})",
            Text::from(args.command[0].as_str()).escaped(),
            errno::name(*e)
        );
        eprintln!(
            "diag: {}",
            crate::report::redact::Redactor::new(&args.report.redact).string(&line)
        );
        warnings.push(line);
    }
    warnings.extend(captured.warnings);
    warnings.extend(live::left_running(&trace, left_behind(captured.backend)));
    warnings.extend(live::diag_was_the_tracer(&trace));
    let partial = interrupt.fired();
    let exit_status = captured.status.and_then(launch::exit_code);
    let session = Session {
        backend: captured.backend,
        mode: report::model::Mode::Run,
        command: args
            .command
            .iter()
            .map(|a| Text::from(a.as_str()))
            .collect(),
        root_pids: vec![captured.root.as_raw() as u32],
        exit_status,
        partial,
        host: &host,
        probes: &captured.probes,
        warnings,
        catalog: output::catalog(args.report.catalog.as_deref())?,
        started,
    };
    let source = suggest.map(PolicyFile::source);
    let (mut report, grants) = pipeline::diagnose(&trace, session, source.as_ref());
    report.set_container(captured.container);
    Ok(Outcome {
        report,
        grants,
        exit_code: interrupt.exit_code().or(exit_status).unwrap_or(1),
        interrupted: partial,
        exec_failed: captured.exec_failure.is_some(),
        _closing: captured.closing,
    })
}

/// Runs under the policy, patches it with the top finding's own grants, runs again, reports
/// both, and says when the command still fails on what other findings would grant.
fn verify_fix(args: &RunArgs, config: &CaptureConfig, policy: &PolicyFile) -> Result<i32> {
    let before = trace_once(args, config, Some(&policy.policy), Some(policy))?;
    if before.interrupted {
        emit(&before, args);
        return Ok(before.exit_code);
    }
    let patched = patch::apply(&policy.text, &before.grants, &policy.name)?;
    let Some(patched) = patched else {
        let mut out = before;
        out.report.warnings.push("--verify-fix: no finding here is a Landlock denial the policy could fix; nothing to verify".into());
        emit(&out, args);
        return Ok(out.exit_code);
    };
    let patched_policy = PolicyFile::from_text(patched.text, policy.name.clone())
        .context("the patched policy does not parse")?;
    let after = trace_once(args, config, Some(&patched_policy.policy), None)?;
    report_verification(args, before, after, patched.diff)
}

/// `--verify-fix -- docker run ...`: runs again with the fix's engine flags added after `run`.
fn verify_engine_fix(args: &RunArgs, config: &CaptureConfig) -> Result<i32> {
    let before = trace_once(args, config, None, None)?;
    let Some(flags) = verify_flags(&before.report) else {
        let mut out = before;
        out.report.warnings.push("--verify-fix: the container's top finding is not one engine flags fix (--cap-add, --pids-limit); nothing to verify".into());
        emit(&out, args);
        return Ok(out.exit_code);
    };
    let at = args
        .command
        .iter()
        .position(|a| a == "run")
        .map_or(0, |i| i + 1);
    let mut patched = args.clone();
    patched.command.splice(at..at, flags.iter().cloned());
    let after = trace_once(&patched, config, None, None)?;
    let patch = format!(
        "--- {}\n+++ {}\n",
        shlex::try_join(args.command.iter().map(String::as_str)).unwrap_or_default(),
        shlex::try_join(patched.command.iter().map(String::as_str)).unwrap_or_default()
    );
    report_verification(args, before, after, patch)
}

/// Compares the workload's failures before and after the fix, and reports both runs.
fn report_verification(
    args: &RunArgs,
    before: Outcome,
    after: Outcome,
    patch: String,
) -> Result<i32> {
    let key = |f: &FailureEntry| {
        format!(
            "{} {} {} ({})",
            f.syscall,
            f.path.as_ref().map(|p| p.lossy()).unwrap_or_default(),
            f.errno,
            f.comm.lossy()
        )
    };
    let meaningful = |r: &Report| -> Vec<FailureEntry> {
        r.failures
            .iter()
            .filter(|f| f.noise.is_none() && f.engine_plumbing.is_none())
            .cloned()
            .collect()
    };
    let (b, a) = (meaningful(&before.report), meaningful(&after.report));
    let after_keys: Vec<String> = a.iter().map(key).collect();
    let before_keys: Vec<String> = b.iter().map(key).collect();
    let mut out = before;
    if after.exit_code != 0 {
        let still = out
            .report
            .findings
            .iter()
            .skip(1)
            .filter(|f| {
                f.failures
                    .iter()
                    .any(|&i| after_keys.contains(&key(&out.report.failures[i])))
            })
            .map(|f| format!("{} ({})", f.cause, f.layer.as_str()))
            .collect::<Vec<_>>();
        if !still.is_empty() {
            out.report.warnings.push(format!(
                "--verify-fix: the top finding's patch alone left the command failing; it also needs the grants of: {}",
                still.join(", ")
            ));
        }
    }
    let verification = Verification {
        patch,
        disappeared: b
            .iter()
            .map(key)
            .filter(|k| !after_keys.contains(k))
            .collect(),
        remained: b
            .iter()
            .map(key)
            .filter(|k| after_keys.contains(k))
            .collect(),
        appeared: after_keys
            .iter()
            .filter(|k| !before_keys.contains(k))
            .cloned()
            .collect(),
        before: RunSummary {
            exit_status: out.report.exit_status,
            failures: b,
        },
        after: RunSummary {
            exit_status: after.report.exit_status,
            failures: a,
        },
    };
    out.report.verification = Some(verification);
    emit(&out, args);
    if !args.report.quiet {
        eprint!(
            "{}",
            human::render_verification(
                out.report.verification.as_ref().expect("set above"),
                output::terminal(&args.report)
            )
        );
    }
    Ok(after.exit_code)
}

fn reap(pid: Pid) -> Option<WaitStatus> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => None,
        Ok(s @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => Some(s),
        Ok(_) => None,
        Err(_) => Some(WaitStatus::Exited(pid, 1)),
    }
}
