//! An exec the kernel could not run although the file exists: ENOENT for a missing `#!`
//! interpreter or ELF loader (the kernel reports the missing interpreter as the file), ENOEXEC
//! for a file that is neither a script with `#!` nor a binary for this machine.

use super::Attribution;
use crate::context::refusal::Interpreter;
use crate::context::{path::FileKind, FailureContext};
use crate::model::{syscalls, Confidence, Failure, Layer};

pub(super) fn check(f: &Failure, ctx: &FailureContext, mut a: Attribution) -> Option<Attribution> {
    if !syscalls::is_exec(&f.syscall) || !matches!(f.errno, libc::ENOENT | libc::ENOEXEC) {
        return None;
    }
    let Some(facts) = ctx.path.as_ref() else {
        a.evidence.push(format!(
            "{} could not be examined (the process had exited): a missing file, or a file whose '#!' interpreter or ELF loader is missing",
            f.path.as_ref().map(|p| p.escaped()).unwrap_or_default()
        ));
        return Some(a);
    };
    if facts.kind == FileKind::Missing {
        return None; // a plain missing file: the generic ENOENT verdict says so
    }
    // The file as the program named it (a relative name stays relative, as in its message).
    let file = f
        .path
        .as_ref()
        .map_or_else(|| facts.path.display().to_string(), |p| p.escaped());
    let Some(exec) = ctx.refusal.exec.as_ref() else {
        a.evidence.push(format!(
            "{file} exists, but its first bytes could not be read to name what the kernel looked for"
        ));
        return Some(a);
    };
    let (why, fix) = match (&exec.interpreter, exec.interpreter_exists, f.errno) {
        (Interpreter::Shebang(name), Some(false), libc::ENOENT) => {
            let shown = crate::model::Text::new(name.clone()).escaped();
            if name.ends_with(b"\r") {
                let bare = String::from_utf8_lossy(&name[..name.len() - 1]).into_owned();
                (
                    format!("{file} exists; its '#!' line names the interpreter {shown}, which ends in a carriage return (CRLF line ends): no such file exists, so execve returned ENOENT for it"),
                    format!("Convert {file} to LF line ends (dos2unix {file}, or git config core.autocrlf input and check it out again): its '#!' line asks for \"{bare}\\r\" (CRLF)."),
                )
            } else {
                (
                    format!("{file} exists; its '#!' line names the interpreter {shown}, which does not exist in the process's root, so execve returned ENOENT"),
                    format!("Install {shown} in the image or root the program runs in, or change the '#!' line of {file} to an interpreter that exists there (e.g. #!/bin/sh)."),
                )
            }
        }
        (Interpreter::Loader(loader), Some(false), libc::ENOENT) => (
            format!("{file} exists; it is a dynamically linked ELF whose loader (PT_INTERP) {} does not exist in the process's root, so execve returned ENOENT", loader.display()),
            format!("Provide the dynamic loader {} (install the C library it was built for, e.g. glibc on Alpine via gcompat), or rebuild {file} for this system's loader or statically.", loader.display()),
        ),
        (Interpreter::Unrecognised { first_bytes }, _, libc::ENOEXEC) => (
            format!("{file} starts with {} : neither '#!' nor an ELF header, so execve returned ENOEXEC", crate::model::Text::new(first_bytes.clone()).escaped()),
            format!("Make '#!' (e.g. #!/bin/sh) the very first two bytes of {file}, with no blank line or byte-order mark before it, or run it through its interpreter."),
        ),
        (Interpreter::Loader(_) | Interpreter::None, _, libc::ENOEXEC) => (
            format!("{file} is an ELF file the kernel refused with ENOEXEC: built for another architecture or ABI"),
            format!("Use a build of {file} for this machine's architecture."),
        ),
        _ => {
            a.evidence.push(format!(
                "{file} exists and what it asks for exists too: the ENOENT came from elsewhere"
            ));
            return Some(a);
        }
    };
    a.fix = Some(fix);
    a.exclude(
        Layer::Dac,
        "exec refusals by permission return EACCES or EPERM, not ENOENT/ENOEXEC",
    );
    Some(a.decide(Layer::Unknown, Confidence::Inferred, why))
}
