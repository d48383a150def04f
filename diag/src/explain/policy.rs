//! Policy grants that would allow exactly what Landlock refused, with the host facts that
//! decide them (is /dev/ptmx a device node or a symlink into /dev/pts?).

use crate::attribute::Attribution;
use crate::context::path::FileKind;
use crate::correlate::{landlock as ll, Trace};
use crate::model::Layer;
use crate::report::model::Finding;
use crate::sandbox::patch::{Grant, List};

/// Grants for one finding (empty unless Landlock refused).
pub fn grants(finding: &Finding, trace: &Trace, attributions: &[Attribution]) -> Vec<Grant> {
    if finding.layer != Layer::Landlock {
        return vec![];
    }
    if finding.cause == "pty-denied" {
        return pty_grants(trace);
    }
    let mut out: Vec<Grant> = Vec::new();
    for &i in &finding.failures {
        let (g, a) = (&trace.failures[i], &attributions[i]);
        let Some(n) = &a.needed else { continue };
        let writes = n.landlock & !(ll::EXECUTE | ll::READ_FILE | ll::READ_DIR) != 0;
        let grant = Grant {
            path: n.path.display().to_string(),
            list: if writes {
                List::ReadWrite
            } else {
                List::ReadOnly
            },
            why: format!("diag: {} needs {} here", g.failure.syscall, n.what),
        };
        if !out
            .iter()
            .any(|o| o.path == grant.path && o.list == grant.list)
        {
            out.push(grant);
        }
    }
    out
}

/// /dev/pts always; /dev/ptmx too when it is a device node (a symlink to pts/ptmx is covered).
fn pty_grants(trace: &Trace) -> Vec<Grant> {
    let ptmx_is_node = matches!(super::ptmx_kind(trace), Some(FileKind::CharDevice));
    let mut out = vec![Grant {
        path: "/dev/pts".into(),
        list: List::ReadWrite,
        why: "diag: PTY allocation (forkpty/openpty); risk: grants every PTY of this sandbox"
            .into(),
    }];
    if ptmx_is_node {
        out.push(Grant {
            path: "/dev/ptmx".into(),
            list: List::ReadWrite,
            why: "diag: /dev/ptmx is a character device node on this host, not a symlink into /dev/pts, so /dev/pts does not cover it".into(),
        });
    }
    out
}
