//! Where the facts the kernel reads at a failure ([`diag_ebpf::TaskFacts`],
//! [`diag_ebpf::FileFacts`]) live in this kernel's structs: member offsets from its BTF. A
//! group of facts whose members this kernel lacks (or renamed) is simply not read.

use btf_rs::{Backend, Btf, Type};
use diag_ebpf::{facts, koff};

/// Offsets for `DIAG_KERNEL_OFFSETS` and the `facts` groups they make readable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelOffsets {
    pub offsets: [u32; koff::COUNT],
    pub facts: u32,
}

impl Default for KernelOffsets {
    fn default() -> Self {
        KernelOffsets {
            offsets: [0; koff::COUNT],
            facts: 0,
        }
    }
}

/// `RLIMIT_NPROC` (uapi) and the size of `struct rlimit` on 64-bit kernels.
const RLIMIT_NPROC: u32 = 6;
const RLIMIT_SIZE: u32 = 16;
/// Pointers and `atomic_long_t` on 64-bit kernels.
const WORD: u32 = 8;

/// Members each group reads: (index, struct, member path through nested and anonymous members).
const TASK: &[(usize, &str, &str)] = &[
    (koff::TASK_CRED, "task_struct", "cred"),
    (koff::TASK_SIGNAL, "task_struct", "signal"),
    (koff::TASK_ATOMIC_FLAGS, "task_struct", "atomic_flags"),
    (koff::TASK_MM, "task_struct", "mm"),
    (koff::CRED_CAP_INHERITABLE, "cred", "cap_inheritable"),
    (koff::CRED_CAP_EFFECTIVE, "cred", "cap_effective"),
    (koff::CRED_CAP_BSET, "cred", "cap_bset"),
    (koff::CRED_UCOUNTS, "cred", "ucounts"),
    (koff::UCOUNTS_NPROC, "ucounts", "rlimit"),
    (koff::SIGNAL_RLIM_NPROC, "signal_struct", "rlim"),
    (koff::MM_EXE_FILE, "mm_struct", "exe_file"),
    (koff::FILE_MNT, "file", "f_path.mnt"),
    (koff::VFSMOUNT_FLAGS, "vfsmount", "mnt_flags"),
];
const PIDS: &[(usize, &str, &str)] = &[
    (koff::TASK_CGROUPS, "task_struct", "cgroups"),
    (koff::CSS_SET_PIDS, "css_set", "subsys"),
    (koff::PIDS_COUNTER, "pids_cgroup", "counter"),
    (koff::PIDS_LIMIT, "pids_cgroup", "limit"),
    (koff::CSS_PARENT, "cgroup_subsys_state", "parent"),
    (koff::CSS_CGROUP, "cgroup_subsys_state", "cgroup"),
    (koff::CGROUP_KN, "cgroup", "kn"),
    (koff::KN_ID, "kernfs_node", "id"),
];
const FILE: &[(usize, &str, &str)] = &[
    (koff::TASK_FILES, "task_struct", "files"),
    (koff::FILES_FDT, "files_struct", "fdt"),
    (koff::FDT_MAX_FDS, "fdtable", "max_fds"),
    (koff::FDT_FD, "fdtable", "fd"),
    (koff::FILE_MNT, "file", "f_path.mnt"),
    (koff::FILE_DENTRY, "file", "f_path.dentry"),
    (koff::FILE_INODE, "file", "f_inode"),
    (koff::VFSMOUNT_ROOT, "vfsmount", "mnt_root"),
    (koff::VFSMOUNT_FLAGS, "vfsmount", "mnt_flags"),
    (koff::MOUNT_MNT, "mount", "mnt"),
    (koff::MOUNT_PARENT, "mount", "mnt_parent"),
    (koff::MOUNT_MOUNTPOINT, "mount", "mnt_mountpoint"),
    (koff::INODE_MODE, "inode", "i_mode"),
    (koff::INODE_UID, "inode", "i_uid"),
    (koff::INODE_GID, "inode", "i_gid"),
    (koff::INODE_SB, "inode", "i_sb"),
    (koff::SB_TYPE, "super_block", "s_type"),
    (koff::FS_TYPE_NAME, "file_system_type", "name"),
    (koff::DENTRY_NAME, "dentry", "d_name.name"),
    (koff::DENTRY_PARENT, "dentry", "d_parent"),
    (koff::TASK_FS, "task_struct", "fs"),
    (koff::FS_PWD_MNT, "fs_struct", "pwd.mnt"),
    (koff::FS_PWD_DENTRY, "fs_struct", "pwd.dentry"),
];

/// The offsets in the BTF at `path` (`/sys/kernel/btf/vmlinux`); none when it cannot be read.
pub fn read(path: &std::path::Path) -> KernelOffsets {
    // Mapped, not parsed whole: a handful of lookups cost a few ms instead of the ~120 ms a
    // full parse of vmlinux takes.
    match Btf::from_file_with_backend(path, Backend::Mmap) {
        Ok(btf) => from_btf(&btf),
        Err(_) => KernelOffsets::default(),
    }
}

fn from_btf(btf: &Btf) -> KernelOffsets {
    let mut k = KernelOffsets::default();
    for (bit, members) in [
        (facts::TASK, TASK),
        (facts::PIDS, PIDS),
        (facts::FILE, FILE),
    ] {
        let found: Option<Vec<(usize, u32)>> = members
            .iter()
            .map(|&(i, st, path)| Some((i, member_offset(btf, st, path)?)))
            .collect();
        if let Some(found) = found {
            for (i, off) in found {
                k.offsets[i] = off;
            }
            k.facts |= bit;
        }
    }
    // Array elements: the NPROC entries of the two limit arrays, the pids controller's css.
    k.offsets[koff::SIGNAL_RLIM_NPROC] += RLIMIT_NPROC * RLIMIT_SIZE;
    match enum_value(btf, "rlimit_type", "UCOUNT_RLIMIT_NPROC") {
        Some(v) => k.offsets[koff::UCOUNTS_NPROC] += v * WORD,
        None => k.facts &= !facts::TASK,
    }
    // The kernel reads a pids_cgroup through its css pointer: the css must be its first member.
    match (
        enum_value(btf, "cgroup_subsys_id", "pids_cgrp_id"),
        member_offset(btf, "pids_cgroup", "css"),
    ) {
        (Some(id), Some(0)) => k.offsets[koff::CSS_SET_PIDS] += id * WORD,
        _ => k.facts &= !facts::PIDS,
    }
    k
}

/// Byte offset of `path` (members separated by dots) in struct `name`, looking through
/// anonymous struct and union members as C does.
fn member_offset(btf: &Btf, name: &str, path: &str) -> Option<u32> {
    let mut ty = btf
        .resolve_types_by_name(name)
        .ok()?
        .into_iter()
        .find(|t| matches!(t, Type::Struct(s) if !s.members.is_empty()))?;
    let mut total = 0;
    for part in path.split('.') {
        let (off, member_ty) = find_member(btf, &ty, part)?;
        total += off;
        ty = strip_qualifiers(btf, member_ty)?;
    }
    Some(total)
}

fn find_member(btf: &Btf, ty: &Type, name: &str) -> Option<(u32, Type)> {
    let (Type::Struct(st) | Type::Union(st)) = ty else {
        return None;
    };
    st.members.iter().find_map(|m| {
        let member_name = btf.resolve_name(m).unwrap_or_default();
        let member_ty = btf.resolve_chained_type(m).ok()?;
        if member_name == name {
            return Some((m.bit_offset() / 8, member_ty));
        }
        if member_name.is_empty() {
            let (off, t) = find_member(btf, &strip_qualifiers(btf, member_ty)?, name)?;
            return Some((m.bit_offset() / 8 + off, t));
        }
        None
    })
}

/// Through typedefs, `const` and `volatile` to the type itself.
fn strip_qualifiers(btf: &Btf, mut ty: Type) -> Option<Type> {
    for _ in 0..16 {
        match &ty {
            Type::Typedef(_) | Type::Const(_) | Type::Volatile(_) | Type::TypeTag(_) => {
                ty = btf.resolve_chained_type(ty.as_btf_type()?).ok()?;
            }
            _ => return Some(ty),
        }
    }
    None
}

fn enum_value(btf: &Btf, name: &str, member: &str) -> Option<u32> {
    btf.resolve_types_by_name(name)
        .ok()?
        .into_iter()
        .find_map(|t| match t {
            Type::Enum(e) => e
                .members
                .iter()
                .find(|m| btf.resolve_name(*m).is_ok_and(|n| n == member))
                .map(|m| m.val()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This kernel's BTF names every member each group needs (a renamed member drops the group,
    /// which this test would then show).
    #[test]
    fn this_kernels_btf_gives_every_group() {
        let path = std::path::Path::new("/sys/kernel/btf/vmlinux");
        if !path.exists() {
            eprintln!("skipped: this kernel has no BTF at {}", path.display());
            return;
        }
        let k = read(path);
        assert_eq!(k.facts, facts::TASK | facts::PIDS | facts::FILE, "{k:?}");
        // Members at the start of their struct, as on every kernel since these structs exist.
        assert_eq!(k.offsets[koff::VFSMOUNT_ROOT], 0);
        assert_eq!(k.offsets[koff::PIDS_COUNTER] % 8, 0);
        assert!(k.offsets[koff::TASK_CRED] > 0 && k.offsets[koff::FILE_INODE] > 0);
    }

    #[test]
    fn unreadable_btf_reads_nothing() {
        let k = read(std::path::Path::new("/nonexistent/vmlinux"));
        assert_eq!(k.facts, 0);
    }
}
