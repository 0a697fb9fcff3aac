//! Drives `waves`: each second, fetch the workloads and PodDisruptionBudgets of the namespaces
//! involved (one list per kind), let `Waves` decide, send the restarts it started.

use std::time::{Duration, Instant};

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use meshkit::cluster::Cluster;
use meshkit::{Error, Result};

use crate::progress::Progress;
use crate::restart::Restart;
use crate::waves::{Budget, Event, Waves};

pub struct Pace {
    pub max_concurrent: usize,
    pub deadline: Instant,
    /// Follow the last wave to its end (`--wait`), not only until everything has started.
    pub follow_to_the_end: bool,
}

/// The budgets of `namespaces`, as `rollout::fetch` lists workloads. Without the right to list
/// them the restarts go on unheld, and stderr says so once.
async fn budgets(cluster: &Cluster, namespaces: &[String], warned: &mut bool) -> Result<Vec<Budget>> {
    let client = cluster.client();
    let listed = if namespaces.len() <= crate::scope::PER_NAMESPACE_LISTS {
        let mut all = Vec::new();
        for ns in namespaces {
            let api = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns);
            match cluster
                .list_map(&api, None, &format!("list poddisruptionbudgets in {ns}"), |p: &PodDisruptionBudget| {
                    Budget::from(p)
                })
                .await
            {
                Ok(found) => all.extend(found),
                Err(e) => return forbidden_or(e, warned),
            }
        }
        Ok(all)
    } else {
        let api = Api::<PodDisruptionBudget>::all(client);
        cluster.list_map(&api, None, "list poddisruptionbudgets", |p: &PodDisruptionBudget| Budget::from(p)).await
    };
    match listed {
        Ok(all) => Ok(all.into_iter().filter(|b| namespaces.contains(&b.namespace)).collect()),
        Err(e) => forbidden_or(e, warned),
    }
}

fn forbidden_or(e: Error, warned: &mut bool) -> Result<Vec<Budget>> {
    if !matches!(e, Error::Forbidden { .. }) {
        return Err(e);
    }
    if !*warned {
        eprintln!(
            "kubectl-meshmigrate: warning: cannot list PodDisruptionBudgets ({e}); restarts are not held for them"
        );
        *warned = true;
    }
    Ok(Vec::new())
}

/// Runs the waves to their end or the deadline; `start` sends one wave's restarts.
pub async fn drive(
    cluster: &Cluster,
    namespaces: &[String],
    waves: &mut Waves,
    pace: &Pace,
    mut start: impl AsyncFnMut(&[Restart]) -> Result<()>,
) -> Result<()> {
    let mut progress = Progress::new("rollouts", waves.outcomes.len());
    let mut warned = false;
    loop {
        let (workloads, budgets) =
            tokio::try_join!(crate::rollout::fetch(cluster, namespaces), budgets(cluster, namespaces, &mut warned))?;
        let mut events = waves.observe(&workloads);
        let wave = waves.next_wave(pace.max_concurrent, &workloads, &budgets);
        let restarts = waves.started(&wave);
        if !restarts.is_empty() {
            start(&restarts).await?;
        }
        events.extend(wave);
        for event in events {
            match event {
                Event::Held { workload, why } => progress.note(&format!("waiting to restart {workload}: {why}")),
                Event::Started { workload } => progress.note(&format!("restarted {workload}")),
                Event::RolledOut { workload } => progress.done(&format!("{workload} rolled out")),
                Event::Failed { workload, reason } => {
                    progress.done(&format!("{workload} failed: {reason}; no new restarts start"))
                }
            }
        }
        if waves.is_done(pace.follow_to_the_end) || Instant::now() >= pace.deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    progress.finish();
    waves.close();
    Ok(())
}

/// Follows rollouts started elsewhere until each has settled or the deadline passed.
pub async fn follow(
    cluster: &Cluster,
    workloads: &[(String, String)],
    deadline: Instant,
) -> Result<std::collections::BTreeMap<(String, String), crate::rollout::Rollout>> {
    let namespaces: Vec<String> =
        workloads.iter().map(|(ns, _)| ns.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut waves = Waves::following(workloads);
    let pace = Pace { max_concurrent: workloads.len(), deadline, follow_to_the_end: true };
    drive(cluster, &namespaces, &mut waves, &pace, async |_: &[Restart]| Ok(())).await?;
    Ok(waves.rollouts())
}
