//! Reading a stopped tracee's memory: `process_vm_readv`, falling back to PTRACE_PEEKDATA where
//! the kernel refuses it (a tracee that made itself non-dumpable).

use nix::sys::ptrace;
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;
use std::io::IoSliceMut;

/// The kernel's limit on a path argument, with its NUL.
pub const PATH_MAX: usize = libc::PATH_MAX as usize;
/// Reads are split here so a fault on the second page still returns the first.
const PAGE: u64 = 4096;

/// Reads up to `buf.len()` bytes at `addr`; returns how many were read.
pub fn read(pid: Pid, addr: u64, buf: &mut [u8]) -> usize {
    if addr == 0 || buf.is_empty() {
        return 0;
    }
    let first = ((PAGE - addr % PAGE) as usize).min(buf.len());
    let remote = [
        RemoteIoVec {
            base: addr as usize,
            len: first,
        },
        RemoteIoVec {
            base: (addr + first as u64) as usize,
            len: buf.len() - first,
        },
    ];
    let parts = if first == buf.len() { 1 } else { 2 };
    match process_vm_readv(pid, &mut [IoSliceMut::new(buf)], &remote[..parts]) {
        Ok(n) => n,
        Err(_) => peek(pid, addr, buf),
    }
}

/// Reads a NUL-terminated string into `buf`; returns its length without the NUL (the whole
/// buffer when the string is longer). A page at a time, up to the NUL: a string near the end of
/// a mapping is read although the buffer's length would run past it.
pub fn read_cstr(pid: Pid, addr: u64, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let at = addr + done as u64;
        let end = (done + (PAGE - at % PAGE) as usize).min(buf.len());
        let n = read(pid, at, &mut buf[done..end]);
        if let Some(nul) = buf[done..done + n].iter().position(|&b| b == 0) {
            return done + nul;
        }
        done += n;
        if done < end {
            break;
        }
    }
    done
}

fn peek(pid: Pid, addr: u64, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        let Ok(word) = ptrace::read(pid, (addr + done as u64) as ptrace::AddressType) else {
            break;
        };
        let bytes = word.to_ne_bytes();
        let n = bytes.len().min(buf.len() - done);
        buf[done..done + n].copy_from_slice(&bytes[..n]);
        done += n;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory_across_a_page_boundary() {
        let me = nix::unistd::getpid();
        let data: Vec<u8> = (0..3 * PAGE as usize).map(|i| (i % 251) as u8).collect();
        // Start a few bytes before a page boundary.
        let base = data.as_ptr() as u64;
        let start = (base / PAGE + 1) * PAGE - 5;
        let off = (start - base) as usize;
        let mut buf = [0u8; 64];
        assert_eq!(read(me, start, &mut buf), 64);
        assert_eq!(&buf[..], &data[off..off + 64]);

        let s = b"/dev/ptmx\0tail";
        let mut out = [0u8; 32];
        let n = read_cstr(me, s.as_ptr() as u64, &mut out);
        assert_eq!(&out[..n], b"/dev/ptmx");
        assert_eq!(read(me, 0, &mut out), 0);

        // A string ending just before an unmapped page, read with a PATH_MAX buffer.
        let page = PAGE as usize;
        // SAFETY: a fresh private anonymous mapping of two pages; its second page is unmapped
        // before the read and the first after it; nothing else refers to them.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            let s = map.cast::<u8>().add(page - 6);
            std::ptr::copy_nonoverlapping(c"/tail".as_ptr().cast::<u8>(), s, 6);
            assert_eq!(libc::munmap(map.byte_add(page), page), 0);
            let mut path = vec![0u8; PATH_MAX];
            let n = read_cstr(me, s as u64, &mut path);
            assert_eq!(&path[..n], b"/tail");
            assert_eq!(libc::munmap(map, page), 0);
        }
    }
}
