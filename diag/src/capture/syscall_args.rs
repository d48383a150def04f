//! Decoding of syscall arguments shared by the live backends (eBPF, ptrace): what a successful
//! Landlock call or dup did. (Which argument holds the flags is `model::syscalls::flag_arg`.)

use crate::model::LandlockOp;

/// `landlock_create_ruleset` flags that query instead of creating a ruleset.
const LANDLOCK_CREATE_RULESET_QUERY: u64 = 0b11;
const LANDLOCK_RULE_PATH_BENEATH: u64 = 1;
const LANDLOCK_RULE_NET_PORT: u64 = 2;

/// Where a successful Landlock call keeps its attribute struct, and how many bytes of it matter.
pub fn landlock_attr(name: &str, args: &[u64; 6]) -> Option<(u64, usize)> {
    match name {
        // struct landlock_ruleset_attr: 3 x u64, its size in arg 1.
        "landlock_create_ruleset" => Some((args[0], args[1].min(24) as usize)),
        // struct landlock_path_beneath_attr (12 bytes, packed) or landlock_net_port_attr (16).
        "landlock_add_rule" => Some((args[2], 16)),
        _ => None,
    }
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()))
}

/// What a successful Landlock call did; `attr` holds the bytes of [`landlock_attr`].
pub fn landlock_op(name: &str, args: &[u64; 6], ret: i64, attr: &[u8]) -> Option<LandlockOp> {
    Some(match name {
        "landlock_create_ruleset" => {
            if args[2] & LANDLOCK_CREATE_RULESET_QUERY != 0 {
                return None; // an ABI-version query, not a ruleset
            }
            LandlockOp::CreateRuleset {
                fd: ret as i32,
                handled_fs: u64_at(attr, 0),
                handled_net: u64_at(attr, 8),
                scoped: u64_at(attr, 16),
            }
        }
        "landlock_add_rule" => match args[1] {
            LANDLOCK_RULE_PATH_BENEATH => LandlockOp::AddPathRule {
                ruleset_fd: args[0] as i32,
                allowed: u64_at(attr, 0),
                parent_fd: attr
                    .get(8..12)
                    .map_or(-1, |s| i32::from_le_bytes(s.try_into().unwrap())),
            },
            LANDLOCK_RULE_NET_PORT => LandlockOp::AddNetRule {
                ruleset_fd: args[0] as i32,
                allowed: u64_at(attr, 0),
                port: u64_at(attr, 8),
            },
            _ => return None,
        },
        "landlock_restrict_self" => LandlockOp::RestrictSelf {
            ruleset_fd: args[0] as i32,
            flags: args[1] as u32,
        },
        _ => return None,
    })
}

/// A successful dup's (old fd, new fd, new fd is close-on-exec); None for an fcntl that is no dup.
pub fn dup(name: &str, args: &[u64; 6], ret: i64) -> Option<(i32, i32, bool)> {
    let cloexec = match name {
        "dup" | "dup2" => false,
        "dup3" => args[2] & libc::O_CLOEXEC as u64 != 0,
        "fcntl" if args[1] == libc::F_DUPFD as u64 => false,
        "fcntl" if args[1] == libc::F_DUPFD_CLOEXEC as u64 => true,
        _ => return None,
    };
    Some((args[0] as i32, i32::try_from(ret).ok()?, cloexec))
}

/// `MAP_ANONYMOUS`: the mapping has no file, its fd argument is ignored.
const MAP_ANONYMOUS: u64 = 0x20;

/// The fd of the file an `mmap` maps (None for anonymous mappings and other calls).
pub fn mapped_fd(name: &str, args: &[u64; 6]) -> Option<i32> {
    let fd = args[4] as i32;
    (name == "mmap" && args[3] & MAP_ANONYMOUS == 0 && fd >= 0).then_some(fd)
}

/// Which argument of an fd-based call names the file it acts on: the file a failure of it is
/// about (a mapping refused by a noexec mount, a mode change refused on a read-only one).
pub fn fd_arg(name: &str) -> Option<u8> {
    Some(match name {
        "mmap" => 4,
        "fchmod" | "fchown" | "ftruncate" | "fallocate" | "fsetxattr" | "fremovexattr" => 0,
        _ => return None,
    })
}

/// The descriptor an fd-based call acted on (an anonymous mapping has none).
pub fn named_fd(name: &str, args: &[u64; 6]) -> Option<i32> {
    match name {
        "mmap" => mapped_fd(name, args),
        _ => Some(args[fd_arg(name)? as usize] as i32).filter(|fd| *fd >= 0),
    }
}
