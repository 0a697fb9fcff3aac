//! Live proxy status: what each istiod says about the proxies connected to it (its
//! `/debug/syncz`), and the rules that turn that into "connected to which revision" and "in sync".
//!
//! A type is SYNCED when istiod's last sent nonce is the proxy's last ACK, NOT SENT when istiod
//! never sent it (the proxy did not ask), STALE when a sent nonce is not ACKed yet (for as long as
//! the send is old), ERROR when the proxy rejected it. The same rules as `istioctl proxy-status`.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One entry of istiod's `/debug/syncz` answer (only the fields we use).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SynczEntry {
    /// `POD.NAMESPACE` for a Kubernetes proxy, `NAME.NAMESPACE` for a VM's WorkloadEntry.
    #[serde(rename = "proxy", default)]
    pub proxy_id: String,
    #[serde(default)]
    pub proxy_type: String,
    #[serde(default)]
    pub cluster_id: String,
    /// The version the proxy reports itself.
    #[serde(default)]
    pub istio_version: String,
    #[serde(default)]
    pub resources: BTreeMap<String, SynczResource>,
}

impl SynczEntry {
    /// A debug client (istioctl's proxy-status, version, internal-debug) holds a stream too, but
    /// watches no config type (debug requests are answered, not watched) or only `istio.io/debug/…`
    /// ones. A proxy's first request already subscribes to one. istiod's xDS view of syncz skips
    /// such clients (no proxy metadata); its HTTP `/debug/syncz` lists them, as `test-1.default`.
    pub fn is_debug_client(&self) -> bool {
        self.resources.keys().all(|t| t.starts_with("istio.io/debug"))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SynczResource {
    #[serde(default)]
    pub sent: String,
    #[serde(default)]
    pub acked: String,
    #[serde(rename = "sentTime", default)]
    pub sent_time: Option<String>,
    #[serde(rename = "lastError", default)]
    pub last_error: String,
}

/// Decodes a `/debug/syncz` body.
pub fn parse_syncz(body: &[u8]) -> Result<Vec<SynczEntry>, String> {
    serde_json::from_slice(body).map_err(|e| format!("not a /debug/syncz answer: {e}"))
}

/// The xDS types users read, by their short names; others keep their type URL's last part.
pub fn short_type(type_url: &str) -> String {
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    match name {
        "envoy.config.cluster.v3.Cluster" => "CDS".into(),
        "envoy.config.listener.v3.Listener" => "LDS".into(),
        "envoy.config.endpoint.v3.ClusterLoadAssignment" => "EDS".into(),
        "envoy.config.route.v3.RouteConfiguration" => "RDS".into(),
        "envoy.config.core.v3.TypedExtensionConfig" => "ECDS".into(),
        other => other.rsplit('.').next().unwrap_or(other).to_string(),
    }
}

/// The types every proxy view shows, in this order, whether or not they were sent.
pub const SHOWN_TYPES: [&str; 5] = ["CDS", "LDS", "EDS", "RDS", "ECDS"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", tag = "state")]
pub enum SyncState {
    Synced,
    NotSent,
    /// Sent and not ACKed; `seconds` since the send, when istiod says when it sent.
    Stale {
        seconds: Option<u64>,
    },
    /// The proxy rejected the last push (NACK).
    Error {
        message: String,
    },
}

impl SyncState {
    fn of(resource: &SynczResource, now: Timestamp) -> SyncState {
        if !resource.last_error.is_empty() {
            return SyncState::Error { message: resource.last_error.clone() };
        }
        if resource.sent.is_empty() {
            return SyncState::NotSent;
        }
        if resource.sent == resource.acked {
            return SyncState::Synced;
        }
        let sent = resource.sent_time.as_deref().and_then(|t| t.parse::<Timestamp>().ok());
        let seconds = sent.filter(|t| t.as_second() > 0).map(|t| u64::try_from((now - t).get_seconds()).unwrap_or(0));
        SyncState::Stale { seconds }
    }

    /// `SYNCED`, `NOT SENT`, `STALE (2m)`, `ERROR`: what a table shows.
    pub fn label(&self) -> String {
        match self {
            SyncState::Synced => "SYNCED".into(),
            SyncState::NotSent => "NOT SENT".into(),
            SyncState::Stale { seconds: Some(s) } => format!("STALE ({})", age(*s)),
            SyncState::Stale { seconds: None } => "STALE".into(),
            SyncState::Error { .. } => "ERROR".into(),
        }
    }
}

/// `45s`, `12m`, `3h`, `2d`: how long, in the unit a person reads.
pub fn age(seconds: u64) -> String {
    match seconds {
        0..120 => format!("{seconds}s"),
        120..7200 => format!("{}m", seconds / 60),
        7200..172_800 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// One proxy's stream to one istiod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// The istiod pod.
    pub istiod: String,
    /// The revision of that istiod (its pod's `istio.io/rev` label).
    pub revision: String,
    pub proxy_type: String,
    pub cluster_id: String,
    /// As the proxy reports it.
    pub version: String,
    /// Short type name → state, for every type the proxy subscribed to.
    pub sync: BTreeMap<String, SyncState>,
}

impl Connection {
    /// Everything istiod sent is ACKed, and it did send something.
    pub fn synced(&self) -> bool {
        self.sync.values().any(|s| *s == SyncState::Synced)
            && self.sync.values().all(|s| matches!(s, SyncState::Synced | SyncState::NotSent))
    }

    /// The longest a type has been STALE, in seconds (`Some(0)` when istiod gave no send time).
    pub fn stale_for(&self) -> Option<u64> {
        self.sync
            .values()
            .filter_map(|s| match s {
                SyncState::Stale { seconds } => Some(seconds.unwrap_or(0)),
                _ => None,
            })
            .max()
    }

    /// The state of a type, `NOT SENT` when the proxy never subscribed to it.
    pub fn state(&self, short: &str) -> SyncState {
        self.sync.get(short).cloned().unwrap_or(SyncState::NotSent)
    }
}

/// What reading one istiod gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IstiodReading {
    pub pod: String,
    pub revision: String,
    /// Its syncz entries, or why they could not be read.
    pub outcome: Result<Vec<SynczEntry>, String>,
}

/// Every connected proxy, by `(namespace, name)`, from every istiod that could be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveStatus {
    pub connections: BTreeMap<(String, String), Vec<Connection>>,
    /// The istiod pods that answered.
    pub read: Vec<String>,
    /// `(istiod pod, why)` for those that did not: no proxy may be called disconnected then.
    pub unreadable: Vec<(String, String)>,
}

impl LiveStatus {
    pub fn from_readings(readings: Vec<IstiodReading>, now: Timestamp) -> LiveStatus {
        let mut live = LiveStatus::default();
        for reading in readings {
            let entries = match reading.outcome {
                Ok(entries) => entries,
                Err(why) => {
                    live.unreadable.push((reading.pod, why));
                    continue;
                }
            };
            live.read.push(reading.pod.clone());
            for entry in entries.into_iter().filter(|e| !e.is_debug_client()) {
                let (name, namespace) = entry.proxy_id.rsplit_once('.').unwrap_or((entry.proxy_id.as_str(), ""));
                let sync = entry.resources.iter().map(|(url, r)| (short_type(url), SyncState::of(r, now))).collect();
                live.connections.entry((namespace.to_string(), name.to_string())).or_default().push(Connection {
                    istiod: reading.pod.clone(),
                    revision: reading.revision.clone(),
                    proxy_type: entry.proxy_type,
                    cluster_id: entry.cluster_id,
                    version: entry.istio_version,
                    sync,
                });
            }
        }
        live
    }

    /// Whether every istiod answered: only then is a proxy missing from every answer disconnected.
    pub fn complete(&self) -> bool {
        self.unreadable.is_empty()
    }

    pub fn of(&self, namespace: &str, name: &str) -> &[Connection] {
        self.connections.get(&(namespace.to_string(), name.to_string())).map_or(&[], Vec::as_slice)
    }

    /// How many proxies hold a connection to an istiod of `revision`.
    pub fn connected_to(&self, revision: &str) -> usize {
        self.connections.values().filter(|c| c.iter().any(|c| c.revision == revision)).count()
    }

    /// One line for a partial answer: which istiods could not be read and why.
    pub fn unreadable_summary(&self) -> Option<String> {
        let (first, why) = self.unreadable.first()?;
        let more = match self.unreadable.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        Some(format!("cannot read the live proxy status of {first}{more}: {why}"))
    }
}

#[cfg(test)]
#[path = "proxy_status_tests.rs"]
mod tests;
