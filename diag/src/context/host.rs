//! Facts about the host: kernel, LSMs, Landlock ABI, attached BPF-LSM programs.

use crate::capture::ebpf::tracefs;

#[derive(Clone, Debug, Default)]
pub struct HostFacts {
    pub kernel: String,
    pub lsms: Vec<String>,
    /// Landlock ABI version, when Landlock is enabled.
    pub landlock_abi: Option<i32>,
    /// Names of loaded BPF programs of type LSM (other than none), if they could be listed.
    pub bpf_lsm_programs: Option<Vec<String>>,
    /// This host's name (none for logs read after the fact: their host is not this one).
    pub hostname: Option<String>,
}

impl HostFacts {
    pub fn read() -> Self {
        HostFacts {
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            lsms: tracefs::active_lsms().unwrap_or_default(),
            landlock_abi: landlock_abi(),
            bpf_lsm_programs: bpf_lsm_programs(),
            hostname: nix::unistd::gethostname()
                .ok()
                .map(|h| h.to_string_lossy().into_owned()),
        }
    }

    pub fn has_lsm(&self, name: &str) -> bool {
        self.lsms.iter().any(|l| l == name)
    }
}

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`.
pub fn landlock_abi() -> Option<i32> {
    // SAFETY: the documented version query: no pointer is dereferenced.
    let v = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, 0usize, 0usize, 1u32) };
    (v > 0).then_some(v as i32)
}

fn bpf_lsm_programs() -> Option<Vec<String>> {
    let mut names = Vec::new();
    for info in aya::programs::loaded_programs() {
        let info = info.ok()?;
        // aya exposes the raw kernel enum; its variant name is stable.
        if format!("{:?}", info.program_type()) == "BPF_PROG_TYPE_LSM" {
            names.push(info.name_as_str().unwrap_or("?").to_string());
        }
    }
    Some(names)
}
