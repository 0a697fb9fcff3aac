//! `restart --wait`: once the waves have rolled out (`waves_run`), wait until every new pod's
//! proxy is connected, live, to an istiod of the revision that injected it and in sync.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use meshkit::cluster::Cluster;
use meshkit::istio::{Mesh, NamespaceView, ProxyRow};
use meshkit::render::Renderer;
use meshkit::{Exit, Result};
use serde::Serialize;

use crate::proxies::ProxyCheck;
use crate::restart::RestartOutcome;
use crate::rollout::Rollout;
use crate::status::Snapshot;
use crate::waves::Waves;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Followed {
    pub restarts: Vec<RestartOutcome>,
    /// `namespace/workload` → how its rollout ended.
    pub rollouts: BTreeMap<String, Rollout>,
    pub proxies: ProxyCheck,
}

impl Followed {
    /// 7 while a rollout is unfinished or stuck, 1 when a new proxy never got there, else 0.
    pub fn exit(&self) -> Exit {
        if self.rollouts.values().any(|r| *r != Rollout::Complete) { Exit::Incomplete } else { self.proxies.exit() }
    }

    pub fn render(&self, renderer: &Renderer) -> Result<()> {
        renderer.print_human(self, |_| {
            let mut text = renderer.table_text(&crate::restart::outcome_table(&self.restarts));
            text.push('\n');
            text.push_str(&self.proxies.text(|t| renderer.table_text(t)));
            text
        })
    }
}

/// After the rollouts of `waves` ended, waits (until `deadline`) for their new pods' proxies.
pub async fn proxies(cluster: &Cluster, snapshot: &Snapshot, waves: Waves, deadline: Instant) -> Result<Followed> {
    let names = waves.namespaces();
    let rollouts = waves.rollouts().into_iter().map(|((ns, workload), r)| (format!("{ns}/{workload}"), r)).collect();
    let mesh = Mesh::discover(&snapshot.istiods, &snapshot.webhooks, &snapshot.services)
        .with_injects(snapshot.injects.iter().cloned());
    let (pods, owners) = crate::scope::pods_and_owners(cluster, &names).await?;
    let restarted: BTreeSet<(String, String)> =
        waves.outcomes.iter().map(|o| (o.restart.namespace.clone(), o.restart.workload.clone())).collect();
    let own = crate::proxies::pods_of(&pods, &owners, &restarted);
    let counted = |r: &ProxyRow| own.contains(&(r.namespace.clone(), r.name.clone()));
    let namespaces: Vec<NamespaceView> =
        names.iter().map(|n| NamespaceView::find_in(&snapshot.namespaces, n)).collect();
    let proxies = crate::proxies::await_proxies(cluster, &namespaces, &mesh, &counted, deadline).await?;
    Ok(Followed { restarts: waves.outcomes, rollouts, proxies })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxies::Waiting;

    #[test]
    fn unfinished_rollouts_are_incomplete_and_unproven_proxies_fail() {
        let waiting =
            Waiting { namespace: "shop".into(), pod: "web-1".into(), revision: "1-31-1".into(), state: "x".into() };
        let mut followed = Followed {
            restarts: Vec::new(),
            rollouts: [("shop/deployment/web".to_string(), Rollout::Complete)].into(),
            proxies: ProxyCheck { proven: 1, ..ProxyCheck::default() },
        };
        assert_eq!(followed.exit(), Exit::Ok);
        followed.proxies.waiting.push(waiting);
        assert_eq!(followed.exit(), Exit::Failed);
        followed.rollouts.insert("shop/deployment/api".into(), Rollout::Progressing { updated: 0, desired: 1 });
        assert_eq!(followed.exit(), Exit::Incomplete, "an unfinished rollout wins: rerun to continue");
    }
}
