//! One verdict per proxy: a pod's sidecar (or gateway) against the live status istiods report.
//! Pure, over plain views, so `meshcheck proxy-status`, `verify` and `meshmigrate`'s waits share
//! one reading of it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::proxy_status::{Connection, LiveStatus, SHOWN_TYPES, SyncState};
use super::{Injected, Mesh, NamespaceView, PodView, pod_injected, pod_intended};

/// What is wrong with a proxy, if anything, worst first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Verdict {
    /// Connected to its injecting revision and everything sent is ACKed.
    Synced,
    /// Connected, but nothing ACKed yet (it just connected).
    Syncing,
    /// Its pod has a sidecar, and no istiod that could be read lists it.
    NotConnected,
    /// Some istiod could not be read, and none that could lists it: we do not know.
    Unknown,
    /// Connected to another revision's istiod than the one that injected it.
    WrongRevision { connected: String, injected: String },
    /// It rejected istiod's last push.
    Rejected { message: String },
    /// Sent configuration it has not ACKed for this long.
    Stale { seconds: u64 },
    /// A proxy connected to istiod with no pod of that name here: a VM (WorkloadEntry) or
    /// another cluster's pod.
    External,
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        matches!(self, Verdict::Synced | Verdict::External)
    }

    /// A phrase for tables and findings.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Synced => "synced".into(),
            Verdict::Syncing => "connected, nothing ACKed yet".into(),
            Verdict::NotConnected => "not connected to any istiod".into(),
            Verdict::Unknown => "unknown (an istiod could not be read)".into(),
            Verdict::WrongRevision { connected, injected } => {
                format!("connected to {connected}, injected by {injected}")
            }
            Verdict::Rejected { message } => format!("rejected the last push: {message}"),
            Verdict::Stale { seconds } => format!("STALE for {}", super::proxy_status::age(*seconds)),
            Verdict::External => "no pod here (VM or another cluster)".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyRow {
    pub namespace: String,
    pub name: String,
    /// The istiod pod it is connected to (the first, if several).
    pub istiod: Option<String>,
    /// That istiod's revision.
    pub revision: Option<String>,
    /// The revision that injected its pod.
    pub injected: Option<String>,
    /// The revision its labels resolve to now (`meshmigrate status`' INTENDED).
    pub intended: Option<String>,
    /// As the proxy reports it.
    pub version: Option<String>,
    /// CDS, LDS, EDS, RDS and ECDS → state (NOT SENT for a type never subscribed to).
    pub sync: BTreeMap<String, SyncState>,
    /// Other istiods it is connected to at the same time (a reconnect in progress).
    pub also: Vec<String>,
    pub verdict: Verdict,
}

impl ProxyRow {
    /// Connected to an istiod of `revision` and synced: the proof a move waits for.
    pub fn serves(&self, revision: &str) -> bool {
        self.verdict == Verdict::Synced && self.revision.as_deref() == Some(revision)
    }
}

fn verdict(connection: Option<&Connection>, injected: Option<&str>, live: &LiveStatus) -> Verdict {
    let Some(c) = connection else {
        return if live.complete() { Verdict::NotConnected } else { Verdict::Unknown };
    };
    if let Some(injected) = injected
        && c.revision != injected
    {
        return Verdict::WrongRevision { connected: c.revision.clone(), injected: injected.to_string() };
    }
    if let Some(SyncState::Error { message }) = c.sync.values().find(|s| matches!(s, SyncState::Error { .. })) {
        return Verdict::Rejected { message: message.clone() };
    }
    if let Some(seconds) = c.stale_for() {
        return Verdict::Stale { seconds };
    }
    if c.synced() { Verdict::Synced } else { Verdict::Syncing }
}

/// A row per running pod with a proxy, then a row per connected proxy with no pod here.
/// `namespaces` gives each pod's namespace labels (a namespace missing is unlabelled).
pub fn proxy_rows<'a>(
    pods: impl IntoIterator<Item = &'a PodView>,
    namespaces: &[NamespaceView],
    mesh: &Mesh,
    live: &LiveStatus,
) -> Vec<ProxyRow> {
    let by_name: BTreeMap<&str, &NamespaceView> = namespaces.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut here: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut rows = Vec::new();
    for pod in pods {
        here.insert((pod.namespace.as_str(), pod.name.as_str()));
        if pod.finished || pod.terminating {
            continue;
        }
        let injected = match pod_injected(pod) {
            Injected::NotInjected => continue,
            Injected::Revision { revision } => Some(revision),
            Injected::Unknown => None,
        };
        let unlabelled = NamespaceView { name: pod.namespace.clone(), ..NamespaceView::default() };
        let namespace = by_name.get(pod.namespace.as_str()).copied().unwrap_or(&unlabelled);
        let intended = pod_intended(namespace, &pod.labels, mesh).revision().map(str::to_string);
        let connections = live.of(&pod.namespace, &pod.name);
        // Prefer the stream to the injecting revision when a proxy briefly holds two.
        let first = connections
            .iter()
            .find(|c| Some(c.revision.as_str()) == injected.as_deref())
            .or_else(|| connections.first());
        rows.push(row(pod.namespace.clone(), pod.name.clone(), first, connections, injected, intended, live));
    }
    for ((namespace, name), connections) in &live.connections {
        if here.contains(&(namespace.as_str(), name.as_str())) {
            continue;
        }
        let mut external = row(namespace.clone(), name.clone(), connections.first(), connections, None, None, live);
        external.verdict = Verdict::External;
        rows.push(external);
    }
    rows
}

fn row(
    namespace: String,
    name: String,
    first: Option<&Connection>,
    all: &[Connection],
    injected: Option<String>,
    intended: Option<String>,
    live: &LiveStatus,
) -> ProxyRow {
    ProxyRow {
        verdict: verdict(first, injected.as_deref(), live),
        namespace,
        name,
        istiod: first.map(|c| c.istiod.clone()),
        revision: first.map(|c| c.revision.clone()),
        injected,
        intended,
        version: first.map(|c| c.version.clone()).filter(|v| !v.is_empty()),
        sync: SHOWN_TYPES.iter().map(|t| (t.to_string(), first.map_or(SyncState::NotSent, |c| c.state(t)))).collect(),
        also: all.iter().filter(|c| Some(&c.istiod) != first.map(|f| &f.istiod)).map(|c| c.istiod.clone()).collect(),
    }
}
