//! The layer vocabulary (design.md §4): who said no.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layer {
    Dac,
    Landlock,
    Selinux,
    Apparmor,
    BpfLsm,
    Lsm,
    Seccomp,
    RlimitNproc,
    Rlimit,
    CgroupPids,
    CgroupDevices,
    ThreadsMax,
    MountNoexec,
    MountRo,
    MountNosuid,
    NoNewPrivs,
    Userns,
    Sysctl,
    Capability,
    Unknown,
}

impl Layer {
    pub const ALL: [Layer; 20] = [
        Layer::Dac,
        Layer::Landlock,
        Layer::Selinux,
        Layer::Apparmor,
        Layer::BpfLsm,
        Layer::Lsm,
        Layer::Seccomp,
        Layer::RlimitNproc,
        Layer::Rlimit,
        Layer::CgroupPids,
        Layer::CgroupDevices,
        Layer::ThreadsMax,
        Layer::MountNoexec,
        Layer::MountRo,
        Layer::MountNosuid,
        Layer::NoNewPrivs,
        Layer::Userns,
        Layer::Sysctl,
        Layer::Capability,
        Layer::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Dac => "dac",
            Layer::Landlock => "landlock",
            Layer::Selinux => "selinux",
            Layer::Apparmor => "apparmor",
            Layer::BpfLsm => "bpf-lsm",
            Layer::Lsm => "lsm",
            Layer::Seccomp => "seccomp",
            Layer::RlimitNproc => "rlimit-nproc",
            Layer::Rlimit => "rlimit",
            Layer::CgroupDevices => "cgroup-devices",
            Layer::MountNosuid => "mount-nosuid",
            Layer::NoNewPrivs => "no-new-privs",
            Layer::Sysctl => "sysctl",
            Layer::CgroupPids => "cgroup-pids",
            Layer::ThreadsMax => "threads-max",
            Layer::MountNoexec => "mount-noexec",
            Layer::MountRo => "mount-ro",
            Layer::Userns => "userns",
            Layer::Capability => "capability",
            Layer::Unknown => "unknown",
        }
    }

    /// How an operator would name it in a sentence.
    pub fn title(self) -> &'static str {
        match self {
            Layer::Dac => "file permissions (DAC)",
            Layer::Landlock => "Landlock",
            Layer::Selinux => "SELinux",
            Layer::Apparmor => "AppArmor",
            Layer::BpfLsm => "a BPF LSM program",
            Layer::Lsm => "an LSM",
            Layer::Seccomp => "a seccomp filter",
            Layer::RlimitNproc => "RLIMIT_NPROC",
            Layer::Rlimit => "a resource limit (rlimit)",
            Layer::CgroupDevices => "the devices cgroup",
            Layer::MountNosuid => "a nosuid mount",
            Layer::NoNewPrivs => "no_new_privs",
            Layer::Sysctl => "a sysctl limit",
            Layer::CgroupPids => "the pids cgroup limit",
            Layer::ThreadsMax => "kernel.threads-max",
            Layer::MountNoexec => "a noexec mount",
            Layer::MountRo => "a read-only mount",
            Layer::Userns => "the user-namespace restrictions",
            Layer::Capability => "a missing capability",
            Layer::Unknown => "an unidentified layer",
        }
    }

    pub fn parse(s: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How sure diag is of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    /// A kernel event or record says so.
    Direct,
    /// Context plus elimination of every other layer able to return that errno.
    Inferred,
    Unknown,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Direct => "direct",
            Confidence::Inferred => "inferred",
            Confidence::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names_round_trip_and_match_serde() {
        for l in Layer::ALL {
            assert_eq!(Layer::parse(l.as_str()), Some(l));
            assert_eq!(
                serde_json::to_string(&l).unwrap(),
                format!("\"{}\"", l.as_str())
            );
        }
    }
}
