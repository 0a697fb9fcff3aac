//! Verify checks on the live proxy status (every istiod's `/debug/syncz`, read through
//! port-forwards): which istiod each proxy really talks to, and whether it is in sync.

use std::time::Duration;

use meshkit::istio::proxy_status::LiveStatus;
use meshkit::istio::{Mesh, ProxyRow, Verdict, proxy_rows};

use super::Context;
use super::check::Check;
use crate::checks::report::Finding;
use crate::snapshot::Snapshot;

/// How long a proxy may leave a push unacknowledged before verify calls it stuck, unless
/// `--stale-after` says otherwise: a healthy proxy ACKs within seconds; a minute rides out a busy
/// istiod's push queue.
pub const STALE_LIMIT: Duration = Duration::from_secs(60);

/// What both checks read: the live status, and every pod's verdict against it (decided once).
pub struct Live<'a> {
    status: &'a LiveStatus,
    rows: Vec<ProxyRow>,
}

impl<'a> Live<'a> {
    pub fn read(snapshot: &'a Snapshot, mesh: &Mesh) -> Option<Live<'a>> {
        let status = snapshot.live.as_ref()?;
        Some(Live { status, rows: proxy_rows(&snapshot.pods, &snapshot.namespaces, mesh, status) })
    }
}

fn object(row: &ProxyRow) -> String {
    format!("pod/{}/{}: {}", row.namespace, row.name, row.verdict.describe())
}

/// MC0608: every proxy connected to an istiod of the revision that injected it.
pub fn connected_to_injector(check: &'static Check, cx: &Context) -> Finding {
    let Some(Live { status: live, rows }) = cx.live else {
        return Finding::skipped(check, "the live proxy status was not read");
    };
    if live.read.is_empty() && !live.complete() {
        let why = live.unreadable_summary().unwrap_or_default();
        return Finding::skipped(check, format!("{why}; pod specs are all that is known"));
    }
    let wrong: Vec<String> = rows
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::WrongRevision { .. } | Verdict::NotConnected))
        .map(object)
        .collect();
    let unknown = rows.iter().filter(|r| r.verdict == Verdict::Unknown).count();
    let external = rows.iter().filter(|r| r.verdict == Verdict::External).count();
    let mut message = if wrong.is_empty() {
        let connected = rows.iter().filter(|r| r.istiod.is_some() && r.verdict != Verdict::External).count();
        format!("{connected} proxy(ies) connected to the revision that injected them")
    } else {
        format!("{} proxy(ies) not connected to the revision that injected them", wrong.len())
    };
    if unknown > 0 {
        message.push_str(&format!("; {unknown} not known: {}", live.unreadable_summary().unwrap_or_default()));
    }
    if external > 0 {
        message.push_str(&format!("; {external} connected proxy(ies) have no pod here (VMs or other clusters)"));
    }
    if wrong.is_empty() { Finding::pass_with(check, message) } else { Finding::fail(check, message, wrong) }
}

/// MC0609: no proxy STALE past `limit` ([`STALE_LIMIT`] by default), none rejecting its
/// configuration.
pub fn in_sync(check: &'static Check, cx: &Context) -> Finding {
    let limit = cx.options.stale_after.unwrap_or(STALE_LIMIT).as_secs();
    let Some(Live { status: live, rows }) = cx.live else {
        return Finding::skipped(check, "the live proxy status was not read");
    };
    if live.read.is_empty() {
        return match live.unreadable_summary() {
            Some(why) => Finding::skipped(check, why),
            None => Finding::pass_with(check, "no istiod is running: no proxy holds configuration from one"),
        };
    }
    let stuck: Vec<String> = rows
        .iter()
        .filter(|r| match r.verdict {
            Verdict::Stale { seconds } => seconds >= limit,
            Verdict::Rejected { .. } => true,
            _ => false,
        })
        .map(object)
        .collect();
    if stuck.is_empty() {
        return Finding::pass(check);
    }
    Finding::fail(check, format!("{} proxy(ies) run configuration istiod cannot confirm", stuck.len()), stuck)
}
