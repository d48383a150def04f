//! One measured run: wall time around the whole command, the tracer tree's peak RSS from
//! `/usr/bin/time -f %M`, and the workload's own report line.

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CLEAN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What one run measured.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Wall time of the whole command: tracer startup, the workload, the tracer's report.
    pub wall: Duration,
    /// `ru_maxrss` of the waited-for tree, in KiB: the largest single process in it.
    pub peak_rss_kib: u64,
    /// The workload's line, when it ran one (`denied=N elapsed_ms=MS`).
    pub workload: Option<WorkloadLine>,
}

#[derive(Clone, Copy, Debug)]
pub struct WorkloadLine {
    pub denied: u64,
    /// The workload's own clock, from after its setup to its end.
    pub elapsed: Duration,
    /// The wall clock (since the epoch) at its end.
    pub end_unix: Option<Duration>,
}

/// For a tracer that runs with the CPUs held awake: a zero wake-up latency request on
/// /dev/cpu_dma_latency, kept while the returned file is open (as diag's ptrace backend does).
pub fn cpus_awake(tracer: super::Tracer) -> Result<Option<std::fs::File>> {
    if !tracer.holds_cpus_awake() {
        return Ok(None);
    }
    let mut f = std::fs::File::options()
        .write(true)
        .open("/dev/cpu_dma_latency")
        .context("opening /dev/cpu_dma_latency")?;
    std::io::Write::write_all(&mut f, &0i32.to_ne_bytes())
        .context("writing /dev/cpu_dma_latency")?;
    Ok(Some(f))
}

/// Runs `cmd` under `/usr/bin/time`, killing its process group after `limit`.
pub fn run(mut cmd: Command, scratch: &Path, limit: Duration) -> Result<(Sample, Output)> {
    let time_file = scratch.join("time.out");
    let mut timed = Command::new("/usr/bin/time");
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&time_file)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A fixed environment: cargo's LD_LIBRARY_PATH (under /root) made every exec of the
        // dropped-privilege workload fail EACCES in ld.so's library search.
        .env_clear()
        .env("PATH", CLEAN_PATH)
        .env("LC_ALL", "C");
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let described = describe(&mut cmd);
    let start = Instant::now();
    let child = timed
        .spawn()
        .with_context(|| format!("starting {described}"))?;
    let group = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(limit) {
        Ok(out) => out?,
        Err(_) => {
            // SAFETY: signalling the process group we created.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            bail!("{described} ran longer than {limit:?}: killed");
        }
    };
    let wall = start.elapsed();
    if !output.status.success() {
        return Ok((
            Sample {
                wall,
                peak_rss_kib: 0,
                workload: None,
            },
            output,
        ));
    }
    let peak_rss_kib = std::fs::read_to_string(&time_file)?
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("reading /usr/bin/time's %M")?;
    let workload = parse_workload(&String::from_utf8_lossy(&output.stdout));
    Ok((
        Sample {
            wall,
            peak_rss_kib,
            workload,
        },
        output,
    ))
}

/// The command line as a shell would take it (arguments with spaces or quotes single-quoted).
pub fn describe(cmd: &mut Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| quote(&s.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./,=:$%+@".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// Finds `denied=N elapsed_ms=MS` in the workload's stdout.
pub fn parse_workload(stdout: &str) -> Option<WorkloadLine> {
    let line = stdout.lines().rev().find(|l| l.starts_with("denied="))?;
    let mut denied = None;
    let mut elapsed = None;
    let mut end_unix = None;
    let ms = |v: &str| {
        v.parse::<f64>()
            .ok()
            .map(|ms| Duration::from_secs_f64(ms / 1e3))
    };
    for field in line.split_whitespace() {
        match field.split_once('=') {
            Some(("denied", v)) => denied = v.parse().ok(),
            Some(("elapsed_ms", v)) => elapsed = ms(v),
            Some(("end_unix_ms", v)) => end_unix = ms(v),
            _ => {}
        }
    }
    Some(WorkloadLine {
        denied: denied?,
        elapsed: elapsed?,
        end_unix,
    })
}

/// One line naming why a run failed, from its stderr.
pub fn failure_line(output: &Output) -> String {
    let err = String::from_utf8_lossy(&output.stderr);
    let last = err
        .lines()
        .rfind(|l| !l.trim().is_empty() && !l.starts_with("Command exited"))
        .unwrap_or("");
    format!("{} ({})", last.trim(), output.status)
}

/// The workload's argv as an OsString list.
pub fn argv<I, S>(parts: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    parts.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_commands_quote_what_a_shell_would_split() {
        let mut cmd = Command::new("bpftrace");
        cmd.args(["-e", "a { b; }", "it's", "--plain=1"]);
        assert_eq!(
            describe(&mut cmd),
            r"bpftrace -e 'a { b; }' 'it'\''s' --plain=1"
        );
    }

    #[test]
    fn workload_line_is_found_after_other_output() {
        let w =
            parse_workload("hello\ndenied=60001 elapsed_ms=1834.5 end_unix_ms=2000.5\n").unwrap();
        assert_eq!(w.denied, 60001);
        assert_eq!(w.elapsed, Duration::from_micros(1_834_500));
        assert_eq!(w.end_unix, Some(Duration::from_micros(2_000_500)));
        assert!(parse_workload("denied=x elapsed_ms=1").is_none());
    }
}
