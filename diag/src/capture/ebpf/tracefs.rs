//! Tracepoint field offsets, read from tracefs at load time: layouts change between kernels
//! (on 6.18 `sched_process_fork`'s `child_pid` moved because the comm fields became __data_loc).

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};

const CANDIDATES: &[&str] = &["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Where tracefs is mounted, if it is.
pub fn mounted_tracefs() -> Option<PathBuf> {
    CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| p.join("events").is_dir())
        .map(Path::to_path_buf)
}

/// The tracefs mount, mounting it at /sys/kernel/tracing when it is missing.
pub fn tracefs_root() -> Result<PathBuf> {
    if let Some(p) = mounted_tracefs() {
        return Ok(p);
    }
    let target = Path::new(CANDIDATES[0]);
    let mounted = nix::mount::mount(
        Some("tracefs"),
        target,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    // Two diag processes starting at once on a fresh host race to mount it: the loser gets
    // EBUSY, and the winner's mount serves both.
    if mounted == Err(nix::errno::Errno::EBUSY) {
        if let Some(p) = mounted_tracefs() {
            return Ok(p);
        }
    }
    mounted.with_context(|| {
        format!(
            "tracefs is not mounted and mounting it at {} failed",
            target.display()
        )
    })?;
    Ok(target.to_path_buf())
}

/// Whether the tracepoint `group/event` exists on this kernel.
pub fn has_event(root: &Path, group: &str, event: &str) -> bool {
    root.join("events")
        .join(group)
        .join(event)
        .join("format")
        .is_file()
}

fn read_format(root: &Path, group: &str, event: &str) -> Result<String> {
    let path = root.join("events").join(group).join(event).join("format");
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The byte offset of `field` in the tracepoint `group/event`.
pub fn field_offset(root: &Path, group: &str, event: &str, field: &str) -> Result<u32> {
    let text = read_format(root, group, event)?;
    parse_offset(&text, field).ok_or_else(|| anyhow!("{group}:{event} has no field '{field}'"))
}

/// The position of `field` among the tracepoint's own (non-`common_`) fields. Where the record
/// mirrors `TP_PROTO` (as `cap_capable`'s does), that is the raw tracepoint argument's index.
pub fn field_position(root: &Path, group: &str, event: &str, field: &str) -> Result<u32> {
    let text = read_format(root, group, event)?;
    parse_position(&text, field).ok_or_else(|| anyhow!("{group}:{event} has no field '{field}'"))
}

/// `(name, offset)` of each `field:<type> <name>;\toffset:N;` line of a tracefs `format` file.
fn fields(format: &str) -> impl Iterator<Item = (&str, Option<u32>)> {
    format.lines().filter_map(|line| {
        let decl = line.trim().strip_prefix("field:")?;
        let (decl, rest) = decl.split_once(';')?;
        let name = decl.rsplit([' ', '*']).next()?.split('[').next()?;
        let off = rest.trim().strip_prefix("offset:")?.split(';').next()?;
        Some((name, off.parse().ok()))
    })
}

fn parse_offset(format: &str, field: &str) -> Option<u32> {
    fields(format).find(|&(name, _)| name == field)?.1
}

fn parse_position(format: &str, field: &str) -> Option<u32> {
    fields(format)
        .filter(|(name, _)| !name.starts_with("common_"))
        .position(|(name, _)| name == field)
        .map(|i| i as u32)
}

/// Reads a `/sys/kernel/security/lsm`-style file, mounting securityfs if needed.
pub fn active_lsms() -> Result<Vec<String>> {
    let path = Path::new("/sys/kernel/security/lsm");
    if !path.exists() {
        let _ = nix::mount::mount(
            Some("securityfs"),
            "/sys/kernel/security",
            Some("securityfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
    }
    let text = std::fs::read_to_string(path).context("reading /sys/kernel/security/lsm")?;
    let lsms: Vec<String> = text
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if lsms.is_empty() {
        bail!("/sys/kernel/security/lsm is empty");
    }
    Ok(lsms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORK_6_18: &str = "name: sched_process_fork\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;\n\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";
    const FORK_OLD: &str = "\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:0;\n\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;\n";

    #[test]
    fn offsets_follow_the_kernel_layout() {
        assert_eq!(parse_offset(FORK_6_18, "child_pid"), Some(20));
        assert_eq!(parse_offset(FORK_6_18, "parent_pid"), Some(12));
        assert_eq!(parse_offset(FORK_6_18, "parent_comm"), Some(8));
        assert_eq!(parse_offset(FORK_OLD, "child_pid"), Some(44));
        assert_eq!(parse_offset(FORK_OLD, "child_comm"), Some(28));
        assert_eq!(parse_offset(FORK_OLD, "nope"), None);
    }

    const CAP_6_18: &str = "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:const struct cred * cred;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:struct user_namespace * target_ns;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:const struct user_namespace * capable_ns;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:int cap;\toffset:32;\tsize:4;\tsigned:1;\n\tfield:int ret;\toffset:36;\tsize:4;\tsigned:1;\n";

    #[test]
    fn positions_skip_the_common_fields() {
        assert_eq!(parse_position(CAP_6_18, "cred"), Some(0));
        assert_eq!(parse_position(CAP_6_18, "cap"), Some(3));
        assert_eq!(parse_position(CAP_6_18, "ret"), Some(4));
        assert_eq!(parse_position(CAP_6_18, "common_pid"), None);
        assert_eq!(parse_offset(CAP_6_18, "ret"), Some(36));
    }
}
