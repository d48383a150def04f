//! File capabilities (`security.capability`), which make execve refuse a binary with EPERM when
//! the process could not receive them (capabilities(7), "capability-dumb binaries").

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x1;
const VFS_CAP_REVISION_MASK: u32 = 0xff00_0000;
const VFS_CAP_REVISION_1: u32 = 0x0100_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileCaps {
    pub permitted: u64,
    pub inheritable: u64,
    /// The effective bit: the binary expects its permitted set to be effective at once.
    pub effective: bool,
}

impl FileCaps {
    /// Parses `struct vfs_cap_data` (revisions 1, 2 and 3; little-endian).
    pub fn parse(b: &[u8]) -> Option<Self> {
        let word = |i: usize| -> Option<u64> {
            Some(u32::from_le_bytes(b.get(i * 4..i * 4 + 4)?.try_into().ok()?) as u64)
        };
        let magic = word(0)? as u32;
        let (permitted, inheritable) = if magic & VFS_CAP_REVISION_MASK == VFS_CAP_REVISION_1 {
            (word(1)?, word(2)?)
        } else {
            (word(1)? | word(3)? << 32, word(2)? | word(4)? << 32)
        };
        Some(FileCaps {
            permitted,
            inheritable,
            effective: magic & VFS_CAP_FLAGS_EFFECTIVE != 0,
        })
    }

    /// The capabilities execve could not grant a process with bounding set `bounding` and
    /// inheritable set `inheritable`; execve fails with EPERM when this is non-zero and the
    /// effective bit is set.
    pub fn unobtainable(&self, bounding: u64, inheritable: u64) -> u64 {
        let granted = (bounding & self.permitted) | (inheritable & self.inheritable);
        self.permitted & !granted
    }
}

/// Reads the file capabilities of `path` (following symlinks), if it has any.
pub fn read(path: &Path) -> Option<FileCaps> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = [0u8; 24];
    // SAFETY: both pointers are valid NUL-terminated/owned buffers of the given length.
    let n = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            c"security.capability".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n > 0)
        .then(|| FileCaps::parse(&buf[..n as usize]))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_with_cap_net_raw_is_unobtainable_without_it_in_the_bounding_set() {
        // `setcap cap_net_raw+ep`: revision 2, effective, permitted bit 13.
        let mut raw = vec![];
        for w in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
            raw.extend_from_slice(&w.to_le_bytes());
        }
        let caps = FileCaps::parse(&raw).unwrap();
        assert!(caps.effective);
        assert_eq!(caps.permitted, 1 << 13);
        assert_eq!(caps.unobtainable(0, 0), 1 << 13);
        assert_eq!(caps.unobtainable(u64::MAX, 0), 0);
    }
}
