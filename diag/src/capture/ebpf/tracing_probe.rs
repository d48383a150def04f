//! Whether this kernel refuses BPF tracing programs (fentry/fexit) outright, found without the
//! kernel's BTF. aya's fexit loader and its own feature probe both parse /sys/kernel/btf/vmlinux
//! (5 MiB here), which cost about a third of `diag run`'s startup and 20 MiB of peak RSS on a
//! host where no fexit program can load anyway.

use aya_obj::generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_prog_type};

/// Loads a two-instruction fexit program with no attach target. A kernel that allows tracing
/// programs rejects it in the verifier (EINVAL: "Tracing programs must provide btf_id"); one
/// that forbids them (an LSM policy, as on this host) answers EPERM before the verifier runs.
pub fn refused() -> bool {
    // r0 = 0; exit (struct bpf_insn, little-endian).
    let insns: [u64; 2] = [0xb7, 0x95];
    // SAFETY: bpf_attr is a union of plain integers: all zeroes is a valid value.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing plain integer fields of the prog-load member of a zeroed union.
    let load = unsafe { &mut attr.__bindgen_anon_3 };
    load.prog_type = bpf_prog_type::BPF_PROG_TYPE_TRACING as u32;
    load.expected_attach_type = bpf_attach_type::BPF_TRACE_FEXIT as u32;
    load.insn_cnt = insns.len() as u32;
    load.insns = insns.as_ptr() as u64;
    load.license = c"GPL".as_ptr() as u64;
    // SAFETY: a valid bpf_attr of the size passed, pointing at live buffers; the kernel only reads.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_PROG_LOAD as libc::c_long,
            &attr as *const bpf_attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    if fd >= 0 {
        // SAFETY: the fd the kernel just returned to us.
        unsafe { libc::close(fd as i32) };
        return false;
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
