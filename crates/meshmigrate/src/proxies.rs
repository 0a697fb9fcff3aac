//! The proof after a move: every new pod's proxy is connected, live, to an istiod of the
//! revision that injected it and has ACKed what that istiod sent. Read from every istiod's
//! `/debug/syncz` (one port-forward each), retried until `--timeout`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use meshkit::cluster::Cluster;
use meshkit::istio::proxy_status::LiveStatus;
use meshkit::istio::{Mesh, NamespaceView, PodView, ProxyRow, proxy_rows};
use meshkit::render::{Cell, Table, Tone};
use meshkit::{Exit, Result};
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyCheck {
    /// Proxies connected to their revision's istiod and synced.
    pub proven: usize,
    /// Those that were not when the wait ended: `namespace/pod` and why.
    pub waiting: Vec<Waiting>,
    /// Why the live status could not be read: nothing was proven then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    pub namespace: String,
    pub pod: String,
    /// The revision that injected it, which its proxy should be connected to.
    pub revision: String,
    pub state: String,
}

impl ProxyCheck {
    /// The exit a command reports for it: a proxy that never got there fails the move.
    pub fn exit(&self) -> Exit {
        if self.waiting.is_empty() { Exit::Ok } else { Exit::Failed }
    }

    /// One line, or a table of the proxies still waiting.
    pub fn text(&self, table_text: impl Fn(&Table) -> String) -> String {
        if let Some(why) = &self.unreadable {
            return format!("Proxies not checked live ({why}); the pod specs above are all that is known.\n");
        }
        if self.waiting.is_empty() {
            return format!(
                "Every proxy ({}) is connected to an istiod of the revision that injected it, and in sync.\n",
                self.proven
            );
        }
        let mut table = Table::new(&["NAMESPACE", "POD", "REVISION", "PROXY"]);
        for w in &self.waiting {
            table.push(vec![
                Cell::from(w.namespace.as_str()),
                Cell::from(w.pod.as_str()),
                Cell::from(w.revision.as_str()),
                Cell::new(w.state.as_str(), Tone::Bad),
            ]);
        }
        format!(
            "{} of {} proxies did not get there in time:\n{}",
            self.waiting.len(),
            self.waiting.len() + self.proven,
            table_text(&table)
        )
    }
}

/// `(namespace, pod)` of the pods `workloads` (`(namespace, deployment/web)`) own now: what a
/// wait after their restart counts.
pub fn pods_of(
    pods: &[PodView],
    replica_set_owners: &std::collections::BTreeMap<(String, String), String>,
    workloads: &BTreeSet<(String, String)>,
) -> BTreeSet<(String, String)> {
    pods.iter()
        .filter(|p| workloads.contains(&(p.namespace.clone(), crate::status::workload(p, replica_set_owners))))
        .map(|p| (p.namespace.clone(), p.name.clone()))
        .collect()
}

/// Decide: of the pods `counted` selects, which proxies serve the revision that injected them.
pub fn check(
    pods: &[PodView],
    namespaces: &[NamespaceView],
    mesh: &Mesh,
    live: &LiveStatus,
    counted: &dyn Fn(&ProxyRow) -> bool,
) -> ProxyCheck {
    if live.read.is_empty() && !live.complete() {
        return ProxyCheck { unreadable: live.unreadable_summary(), ..ProxyCheck::default() };
    }
    let mut outcome = ProxyCheck::default();
    for row in proxy_rows(pods, namespaces, mesh, live).iter().filter(|r| counted(r)) {
        let Some(revision) = &row.injected else { continue };
        if row.serves(revision) {
            outcome.proven += 1;
        } else {
            outcome.waiting.push(Waiting {
                namespace: row.namespace.clone(),
                pod: row.name.clone(),
                revision: revision.clone(),
                state: row.verdict.describe(),
            });
        }
    }
    outcome
}

/// Waits until [`check`] finds nothing waiting in `namespaces`, or `deadline` passes.
pub async fn await_proxies(
    cluster: &Cluster,
    namespaces: &[NamespaceView],
    mesh: &Mesh,
    counted: &dyn Fn(&ProxyRow) -> bool,
    deadline: Instant,
) -> Result<ProxyCheck> {
    let names: Vec<String> = namespaces.iter().map(|n| n.name.clone()).collect();
    loop {
        let (listed, live) =
            tokio::join!(crate::scope::pods_and_owners(cluster, &names), meshkit::fetch::live_status(cluster));
        let outcome = check(&listed?.0, namespaces, mesh, &live, counted);
        if outcome.waiting.is_empty() || outcome.unreadable.is_some() || Instant::now() >= deadline {
            return Ok(outcome);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshkit::istio::proxy_status::{IstiodReading, parse_syncz};

    fn pod(name: &str, revision: &str) -> PodView {
        let mut pod = PodView { namespace: "shop".into(), name: name.into(), ..PodView::default() };
        pod.annotations.insert("sidecar.istio.io/status".into(), format!("{{\"revision\":\"{revision}\"}}"));
        pod
    }

    fn live(syncz: &str) -> LiveStatus {
        LiveStatus::from_readings(
            vec![IstiodReading {
                pod: "istiod-1-31-1-x".into(),
                revision: "1-31-1".into(),
                outcome: parse_syncz(syncz.as_bytes()),
            }],
            "2026-12-01T00:00:00Z".parse().unwrap(),
        )
    }

    const SYNCED: &str = r#"{"sent":"a","acked":"a"}"#;

    #[test]
    fn proven_only_when_connected_to_the_injecting_revision_and_synced() {
        let syncz = format!(
            r#"[{{"proxy":"web-1.shop","resources":{{"type.googleapis.com/envoy.config.cluster.v3.Cluster":{SYNCED}}}}},
               {{"proxy":"web-2.shop","resources":{{"type.googleapis.com/envoy.config.cluster.v3.Cluster":{{"sent":"b"}}}}}}]"#
        );
        let pods = [pod("web-1", "1-31-1"), pod("web-2", "1-31-1"), pod("web-3", "1-31-1"), pod("old", "1-30-3")];
        let all = |_: &ProxyRow| true;
        let outcome = check(&pods, &[], &Mesh::default(), &live(&syncz), &all);
        assert_eq!(outcome.proven, 1);
        let waiting: Vec<(&str, &str)> = outcome.waiting.iter().map(|w| (w.pod.as_str(), w.state.as_str())).collect();
        assert_eq!(
            waiting,
            [
                ("web-2", "STALE for 0s"),
                ("web-3", "not connected to any istiod"),
                ("old", "not connected to any istiod")
            ]
        );
        assert_eq!(outcome.exit(), Exit::Failed);
        let only_web1 = |r: &ProxyRow| r.name == "web-1";
        assert_eq!(check(&pods, &[], &Mesh::default(), &live(&syncz), &only_web1).exit(), Exit::Ok);
    }

    #[test]
    fn an_unreadable_control_plane_proves_nothing() {
        let live = LiveStatus::from_readings(
            vec![IstiodReading { pod: "istiod-x".into(), revision: "1-31-1".into(), outcome: Err("refused".into()) }],
            "2026-12-01T00:00:00Z".parse().unwrap(),
        );
        let outcome = check(&[pod("web-1", "1-31-1")], &[], &Mesh::default(), &live, &|_| true);
        assert_eq!(outcome.proven, 0);
        assert!(outcome.text(|_| String::new()).starts_with("Proxies not checked live (cannot read"));
    }
}
