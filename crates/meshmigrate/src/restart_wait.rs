//! `restart --wait`: after the restarts, follow their rollouts, then wait until every new pod's
//! proxy is connected, live, to an istiod of the revision that injected it and in sync.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use meshkit::cluster::Cluster;
use meshkit::istio::{Mesh, NamespaceView, ProxyRow};
use meshkit::render::Renderer;
use meshkit::{Exit, Result};
use serde::Serialize;

use crate::proxies::ProxyCheck;
use crate::restart::Restart;
use crate::rollout::{Rollout, rollout};
use crate::status::Snapshot;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Followed {
    pub restarts: Vec<Restart>,
    /// `namespace/workload` → how its rollout ended.
    pub rollouts: BTreeMap<String, Rollout>,
    pub proxies: ProxyCheck,
}

impl Followed {
    /// 7 while a rollout is unfinished or stuck, 1 when a new proxy never got there, else 0.
    pub fn exit(&self) -> Exit {
        if self.rollouts.values().any(|r| *r != Rollout::Complete) { Exit::Incomplete } else { self.proxies.exit() }
    }

    pub fn render(&self, renderer: &Renderer, dry_run: bool) -> Result<()> {
        renderer.print_human(self, |_| {
            let mut text = renderer.table_text(&crate::restart::table(&self.restarts, dry_run));
            for (workload, state) in &self.rollouts {
                match state {
                    Rollout::Complete => {}
                    Rollout::Progressing { updated, desired } => text.push_str(&format!(
                        "\nIncomplete: {workload} not rolled out in time ({updated}/{desired} updated)\n"
                    )),
                    Rollout::Stuck { reason } => text.push_str(&format!("\nIncomplete: {workload} stuck: {reason}\n")),
                }
            }
            text.push('\n');
            text.push_str(&self.proxies.text(|t| renderer.table_text(t)));
            text
        })
    }
}

/// Follows the rollouts of `restarts` until each has settled or `timeout` passed, then waits
/// (in what is left of it) for their new pods' proxies.
pub async fn follow(
    cluster: &Cluster,
    snapshot: &Snapshot,
    restarts: Vec<Restart>,
    timeout: Duration,
) -> Result<Followed> {
    let deadline = Instant::now() + timeout;
    let names: Vec<String> =
        restarts.iter().map(|r| r.namespace.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let key = |namespace: &str, workload: &str| format!("{namespace}/{workload}");
    let mut rollouts: BTreeMap<String, Rollout> = BTreeMap::new();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let workloads = crate::rollout::fetch(cluster, &names).await?;
        for r in &restarts {
            let state = workloads
                .iter()
                .find(|w| w.namespace == r.namespace && w.workload == r.workload)
                .map_or(Rollout::Complete, rollout);
            rollouts.insert(key(&r.namespace, &r.workload), state);
        }
        let settled = rollouts.values().all(|s| !matches!(s, Rollout::Progressing { .. }));
        if settled || Instant::now() >= deadline {
            break;
        }
    }
    let mesh = Mesh::discover(&snapshot.istiods, &snapshot.webhooks, &snapshot.services)
        .with_injects(snapshot.injects.iter().cloned());
    let (pods, owners) = crate::scope::pods_and_owners(cluster, &names).await?;
    let restarted = restarts.iter().map(|r| (r.namespace.clone(), r.workload.clone())).collect();
    let own = crate::proxies::pods_of(&pods, &owners, &restarted);
    let counted = |r: &ProxyRow| own.contains(&(r.namespace.clone(), r.name.clone()));
    let namespaces: Vec<NamespaceView> =
        names.iter().map(|n| NamespaceView::find_in(&snapshot.namespaces, n)).collect();
    let proxies = crate::proxies::await_proxies(cluster, &namespaces, &mesh, &counted, deadline).await?;
    Ok(Followed { restarts, rollouts, proxies })
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
