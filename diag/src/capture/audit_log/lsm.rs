//! What a denial record says in the terms of its own layer, as audit2why does: SELinux's
//! contexts, class and permissions with the `allow` rule and a relabel or boolean hint,
//! AppArmor's profile, operation and the rule line it lacks, Landlock's domain and blockers.
//! Everything comes from the record: nothing of this host is read.

use super::record::{Record, LANDLOCK_DOMAIN};

/// A denial explained: what was refused, and what would allow it.
pub struct Explained {
    pub why: String,
    pub remedy: String,
}

/// The type field of an SELinux context (`user:role:type:level`).
fn selinux_type(context: &str) -> Option<&str> {
    context.split(':').nth(2)
}

/// The MCS categories of a context (`s0:c1,c2` → `c1,c2`), empty when it has none.
fn categories(context: &str) -> &str {
    context.splitn(5, ':').nth(4).unwrap_or("")
}

/// Labels a file gets where the policy did not label it for the confined program: files
/// made outside the container or service (a home directory, /tmp, a default label). A
/// container volume gets its label from `:z`/`:Z`; a host file from `restorecon`.
const GENERIC_FILE_TYPES: &[&str] = &[
    "default_t",
    "unlabeled_t",
    "user_home_t",
    "user_home_dir_t",
    "admin_home_t",
    "home_root_t",
    "tmp_t",
    "user_tmp_t",
    "var_t",
    "var_lib_t",
    "usr_t",
    "etc_t",
    "mnt_t",
    "file_t",
];

/// Well-known booleans for a (source type, target class) pair: the policy ships the rule,
/// off until the boolean is set.
const BOOLEANS: &[(&str, &str, &str)] = &[
    ("httpd_t", "tcp_socket", "httpd_can_network_connect"),
    ("container_t", "chr_file", "container_use_devices"),
    ("container_t", "dir", "container_manage_cgroup"),
    ("svirt_lxc_net_t", "file", "virt_sandbox_use_all_caps"),
];

fn selinux(r: &Record) -> Option<Explained> {
    let scontext = r.text("scontext")?;
    let tcontext = r.text("tcontext")?;
    let tclass = r.text("tclass")?;
    let (stype, ttype) = (selinux_type(&scontext)?, selinux_type(&tcontext)?);
    let perms = r.perms.join(" ");
    let why =
        format!("SELinux denied {{ {perms} }} on {tclass}: source {scontext}, target {tcontext}");
    let rule = format!("allow {stype} {ttype}:{tclass} {{ {perms} }};");
    let what = r
        .text("path")
        .or_else(|| r.text("name"))
        .unwrap_or_else(|| "the file".into());
    let file_class = matches!(
        tclass.as_str(),
        "file" | "dir" | "chr_file" | "blk_file" | "lnk_file" | "sock_file" | "fifo_file"
    );
    let (scat, tcat) = (categories(&scontext), categories(&tcontext));
    let remedy = if stype == "container_t" && ttype == "container_file_t" && scat != tcat {
        format!(
            "{what} carries another container's MCS categories ({tcat}, the process has {scat}): relabel the volume for this container with :Z (private) or :z (shared) on its mount"
        )
    } else if file_class && stype.starts_with("container") && GENERIC_FILE_TYPES.contains(&ttype) {
        format!(
            "{what} is labelled {ttype}, which containers may not use: mount it with :z (shared) or :Z (private) so the engine relabels it container_file_t"
        )
    } else if file_class && GENERIC_FILE_TYPES.contains(&ttype) {
        format!(
            "{what} is labelled {ttype}, not a type the policy gives {stype}: if it was created or moved there by hand, `restorecon -v {what}` restores its default label; else the policy needs `{rule}` (audit2allow -M makes a module)"
        )
    } else if let Some((_, _, boolean)) = BOOLEANS
        .iter()
        .find(|(s, c, _)| *s == stype && *c == tclass)
    {
        format!(
            "the policy may allow this under a boolean: `setsebool -P {boolean} 1`; otherwise it needs `{rule}`"
        )
    } else {
        format!("the policy needs `{rule}` (audit2allow -M makes a module from this record)")
    };
    Some(Explained {
        why,
        remedy: format!("SELinux: {remedy}"),
    })
}

/// AppArmor's file permission letters for a denied mask: create and delete are writes in
/// profile syntax, `x` needs an exec mode.
fn apparmor_file_perms(mask: &str) -> String {
    let mut perms = String::new();
    for (letters, perm) in [
        ("r", "r"),
        ("wcda", "w"),
        ("m", "m"),
        ("k", "k"),
        ("l", "l"),
        ("x", "ix"),
    ] {
        if mask.chars().any(|c| letters.contains(c)) && !perms.contains(perm) {
            perms.push_str(perm);
        }
    }
    perms
}

fn apparmor(r: &Record) -> Option<Explained> {
    let profile = r.text("profile")?;
    let operation = r.text("operation").unwrap_or_default();
    let denied = r.text("denied_mask").unwrap_or_default();
    let name = r.text("name");
    let rule = match operation.as_str() {
        "capable" => format!("capability {},", r.text("capname")?),
        "create" | "connect" | "bind" | "listen" | "accept" | "sendmsg" | "recvmsg"
            if r.get("family").is_some() =>
        {
            format!(
                "network {} {},",
                r.text("family")?,
                r.text("sock_type").unwrap_or_default()
            )
        }
        "signal" => format!(
            "signal ({}) set=({}) peer={},",
            denied,
            r.text("signal").unwrap_or_default(),
            r.text("peer").unwrap_or_default()
        ),
        "ptrace" => format!(
            "ptrace ({denied}) peer={},",
            r.text("peer").unwrap_or_default()
        ),
        "mount" | "umount" | "remount" => format!("{operation},"),
        "userns_create" => "userns,".into(),
        _ => format!("{} {},", name.as_deref()?, apparmor_file_perms(&denied)),
    };
    let what = name.map(|n| format!(" of {n}")).unwrap_or_default();
    Some(Explained {
        why: format!("AppArmor profile {profile} denied {operation}{what} (denied_mask {denied})"),
        remedy: format!(
            "AppArmor: profile {profile} lacks the rule `{rule}`: add it to the profile (or run the program with a profile that has it) and reload it with apparmor_parser -r"
        ),
    })
}

fn landlock(group: &[Record], r: &Record) -> Option<Explained> {
    let domain = r.text("domain")?;
    let blockers = r.text("blockers")?;
    let creator = group.iter().find(|d| {
        d.kind == LANDLOCK_DOMAIN && d.text("domain").as_deref() == Some(domain.as_str())
    });
    let made_by = creator
        .and_then(|d| {
            Some(format!(
                " (created by pid {} {})",
                d.text("pid")?,
                d.text("exe").or_else(|| d.text("comm"))?
            ))
        })
        .unwrap_or_default();
    let target = r
        .text("path")
        .or_else(|| r.text("opid").map(|p| format!("process {p}")))
        .or_else(|| r.text("dest").map(|p| format!("port {p}")))
        .unwrap_or_default();
    let rights: Vec<&str> = blockers.split(',').collect();
    let remedy = if rights.iter().any(|b| b.starts_with("scope.")) {
        "the domain is scoped: no rule lets a process in it reach outside it this way; run the peer inside the same sandbox, or create the ruleset without that scope".into()
    } else if rights.iter().any(|b| b.starts_with("net.")) {
        format!(
            "the ruleset needs a LANDLOCK_RULE_NET_PORT rule granting {} for {target}",
            rights.join(", ")
        )
    } else {
        format!(
            "the ruleset needs a LANDLOCK_RULE_PATH_BENEATH rule granting {} on {target} or a directory above it",
            rights.join(", ")
        )
    };
    Some(Explained {
        why: format!("Landlock domain {domain}{made_by} blocked {blockers} on {target}"),
        remedy: format!("Landlock: {remedy}"),
    })
}

/// The denial `r` (of `layer`) explained, with the other records of its event.
pub fn explain(group: &[Record], r: &Record, layer: &str) -> Option<Explained> {
    match layer {
        "selinux" => selinux(r),
        "apparmor" => apparmor(r),
        "landlock" => landlock(group, r),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::parse;
    use super::*;

    fn explained(lines: &[&str], layer: &str) -> Explained {
        let group: Vec<Record> = lines.iter().map(|l| parse(l).unwrap()).collect();
        explain(&group, &group[0], layer).unwrap()
    }

    /// containers/container-selinux#169: a container reading the host's var_lib_t files.
    #[test]
    fn selinux_generic_label_in_a_container_asks_for_a_relabel() {
        let e = explained(
            &[
                r#"type=AVC msg=audit(1644242078.478:707): avc:  denied  { read } for  pid=3831 comm="date" path="/bin/busybox" dev="vda1" ino=265811 scontext=system_u:system_r:container_t:s0:c196,c287 tcontext=unconfined_u:object_r:var_lib_t:s0 tclass=file permissive=0"#,
            ],
            "selinux",
        );
        assert!(
            e.why.contains("{ read } on file") && e.why.contains("container_t"),
            "{}",
            e.why
        );
        assert!(
            e.remedy.contains(":Z") && e.remedy.contains("var_lib_t"),
            "{}",
            e.remedy
        );
    }

    /// fedora-selinux/selinux-policy#1659 (`ausearch -i`): no hint fits, the allow rule does.
    #[test]
    fn selinux_allow_rule() {
        let e = explained(&["type=AVC msg=audit(04/25/2023 21:22:49.431:10767) : avc:  denied  { open } for  pid=246920 comm=less path=/dev/pts/2 dev=\"devpts\" ino=5 scontext=sysadm_u:sysadm_r:journalctl_t:s0-s0:c0.c1023 tcontext=sysadm_u:object_r:user_devpts_t:s0 tclass=chr_file permissive=0"], "selinux");
        assert!(
            e.remedy
                .contains("allow journalctl_t user_devpts_t:chr_file { open };"),
            "{}",
            e.remedy
        );
    }

    /// A docker-default file denial in dmesg form, and the capability form.
    #[test]
    fn apparmor_rule_lines() {
        let e = explained(
            &[
                r#"[12345.678901] audit: type=1400 audit(1700000001.500:77): apparmor="DENIED" operation="open" class="file" profile="docker-default" name="/dev/ptmx" pid=4242 comm="tmux" requested_mask="wr" denied_mask="wr" fsuid=0 ouid=0"#,
            ],
            "apparmor",
        );
        assert!(e.remedy.contains("`/dev/ptmx rw,`"), "{}", e.remedy);
        assert!(
            e.why.contains("docker-default denied open of /dev/ptmx"),
            "{}",
            e.why
        );
        let e = explained(
            &[
                r#"audit: type=1400 audit(1700000001.500:78): apparmor="DENIED" operation="capable" class="cap" profile="/usr/sbin/cupsd" pid=1 comm="cupsd" capability=12 capname="net_admin""#,
            ],
            "apparmor",
        );
        assert!(e.remedy.contains("`capability net_admin,`"), "{}", e.remedy);
    }

    /// The access record of the kernel's documentation (Documentation/admin-guide/LSM/
    /// landlock.rst, a link request) and the domain record of tests/fixtures/landlock-ptmx.dmesg
    /// (recorded on Linux 6.18).
    #[test]
    fn landlock_domain_and_blockers() {
        let e = explained(
            &[
                r#"type=UNKNOWN[1423] msg=audit(1795899766.929:12): domain=195ba459b blockers=fs.make_reg,fs.refer path="/usr/local" dev="vda2" ino=365"#,
                r#"type=UNKNOWN[1424] msg=audit(1795899766.929:12): domain=195ba459b status=allocated mode=enforcing pid=25458 uid=0 exe="/usr/bin/python3.11" comm="python3""#,
            ],
            "landlock",
        );
        assert!(
            e.why.contains("domain 195ba459b (created by pid 25458 /usr/bin/python3.11) blocked fs.make_reg,fs.refer on /usr/local"),
            "{}",
            e.why
        );
        assert!(e.remedy.contains("PATH_BENEATH"), "{}", e.remedy);
        let e = explained(
            &[
                r#"type=UNKNOWN[1423] msg=audit(1729738800.268:31): domain=195ba459b blockers=scope.signal opid=1 ocomm="systemd""#,
            ],
            "landlock",
        );
        assert!(e.remedy.contains("scoped"), "{}", e.remedy);
    }
}
