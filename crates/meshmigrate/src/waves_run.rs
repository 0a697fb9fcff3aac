//! Drives `waves` on watches: the workloads and PodDisruptionBudgets of the namespaces involved
//! are watched (one watcher per kind and namespace, or per kind for the cluster), and `Waves`
//! decides again after each burst of events; the restarts it starts are sent from here.

use std::time::Instant;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use meshkit::cluster::Cluster;
use meshkit::kube::watch::{Change, Mirror, watch};
use meshkit::{Error, Result};

use crate::progress::Progress;
use crate::restart::Restart;
use crate::rollout::WorkloadView;
use crate::scope::PER_NAMESPACE_LISTS;
use crate::waves::{Budget, Event, Waves};

pub struct Pace {
    pub max_concurrent: usize,
    pub deadline: Instant,
    /// Follow the last wave to its end (`--wait`), not only until everything has started.
    pub follow_to_the_end: bool,
}

enum Seen {
    Workload(Change<WorkloadView>),
    Budget(Change<Budget>),
    /// The budgets may not be read (RBAC).
    BudgetsForbidden(Error),
}

/// Everything the waves watch, as it is now.
struct Watched {
    workloads: Mirror<WorkloadView>,
    budgets: Mirror<Budget>,
    /// The budgets' stream numbers.
    budget_streams: std::ops::Range<usize>,
    warned: bool,
}

impl Watched {
    fn ready(&self) -> bool {
        self.workloads.ready() && self.budgets.ready()
    }

    fn take(&mut self, seen: Result<Seen>) -> Result<()> {
        match seen {
            Ok(Seen::Workload(change)) => self.workloads.apply(change),
            Ok(Seen::Budget(change)) => self.budgets.apply(change),
            // Without the right to read budgets the restarts go on unheld, and stderr says so once.
            Ok(Seen::BudgetsForbidden(e)) => {
                if !self.warned {
                    crate::spec::SPEC.warn(format_args!("{e}; restarts are not held for PodDisruptionBudgets"));
                    self.warned = true;
                }
                for stream in self.budget_streams.clone() {
                    self.budgets.give_up(stream);
                }
            }
            // As a failed request would: the run stops (an unreachable apiserver is exit 3) and
            // a rerun continues from the journal.
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// The watches of the workloads and budgets of `namespaces`, merged into one stream.
fn watch_all(
    cluster: &Cluster,
    namespaces: &[String],
) -> (futures::stream::SelectAll<futures::stream::BoxStream<'static, Result<Seen>>>, Watched) {
    let per = PER_NAMESPACE_LISTS;
    let mut workload_streams = watch(cluster, namespaces, per, 0, "watch deployments", |d: &Deployment| d.into());
    let next = workload_streams.len();
    workload_streams.extend(watch(cluster, namespaces, per, next, "watch statefulsets", |s: &StatefulSet| s.into()));
    let next = workload_streams.len();
    workload_streams.extend(watch(cluster, namespaces, per, next, "watch daemonsets", |d: &DaemonSet| d.into()));
    let budget_streams =
        watch(cluster, namespaces, per, 0, "watch poddisruptionbudgets", |p: &PodDisruptionBudget| Budget::from(p));
    let watched = Watched {
        workloads: Mirror::new(workload_streams.len()),
        budgets: Mirror::new(budget_streams.len()),
        budget_streams: 0..budget_streams.len(),
        warned: false,
    };
    let all = workload_streams.into_iter().map(|s| s.map(|c| c.map(Seen::Workload)).boxed()).chain(
        budget_streams.into_iter().map(|s| {
            // A forbidden budget watch is said once and then ends, not retried.
            s.scan(false, |refused, c| {
                let item = match c {
                    _ if *refused => None,
                    Err(e @ Error::Forbidden { .. }) => {
                        *refused = true;
                        Some(Ok(Seen::BudgetsForbidden(e)))
                    }
                    other => Some(other.map(Seen::Budget)),
                };
                futures::future::ready(item)
            })
            .boxed()
        }),
    );
    (futures::stream::select_all(all), watched)
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
    let (mut events, mut watched) = watch_all(cluster, namespaces);
    let deadline = tokio::time::Instant::from_std(pace.deadline);
    // At most one decision a second: the waves then start restarts together, and the journal
    // is written once per wave rather than once per finished rollout.
    let (mut changed, mut next_decision) = (false, tokio::time::Instant::now());
    loop {
        let wake = if changed { next_decision.min(deadline) } else { deadline };
        match tokio::time::timeout_at(wake, events.next()).await {
            Ok(None) => break,
            Ok(Some(seen)) => {
                watched.take(seen)?;
                while let Some(Some(seen)) = events.next().now_or_never() {
                    watched.take(seen)?;
                }
                changed = true;
            }
            Err(_) => {}
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        if !changed || now < next_decision || !watched.ready() {
            continue;
        }
        changed = false;
        next_decision = now + std::time::Duration::from_secs(1);
        let workloads = watched.workloads.views();
        let mut happened = waves.observe(&workloads);
        let wave = waves.next_wave(pace.max_concurrent, &workloads, &watched.budgets.views());
        let restarts = waves.started(&wave);
        if !restarts.is_empty() {
            start(&restarts).await?;
        }
        happened.extend(wave);
        for event in happened {
            match event {
                Event::Held { workload, why } => progress.note(&format!("waiting to restart {workload}: {why}")),
                Event::Started { workload } => progress.note(&format!("restarted {workload}")),
                Event::RolledOut { workload } => progress.done(&format!("{workload} rolled out")),
                Event::Failed { workload, reason } => {
                    progress.done(&format!("{workload} failed: {reason}; no new restarts start"))
                }
            }
        }
        if waves.is_done(pace.follow_to_the_end) {
            break;
        }
    }
    progress.finish();
    waves.close();
    if let Some(failed) = &waves.stopped_by {
        crate::spec::SPEC.note(format_args!("stopped starting restarts: {failed}; fix it, then rerun to continue"));
    }
    Ok(())
}

/// Follows rollouts started elsewhere until each has settled or the deadline passed.
pub async fn follow(
    cluster: &Cluster,
    workloads: &[(String, String)],
    deadline: Instant,
) -> Result<std::collections::BTreeMap<(String, String), crate::rollout::Rollout>> {
    let mut waves = Waves::following(workloads);
    let namespaces = waves.namespaces();
    let pace = Pace { max_concurrent: workloads.len(), deadline, follow_to_the_end: true };
    drive(cluster, &namespaces, &mut waves, &pace, async |_: &[Restart]| Ok(())).await?;
    Ok(waves.rollouts())
}
