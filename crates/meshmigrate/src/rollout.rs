//! Workloads and their rollouts: a plain view of Deployments, StatefulSets and DaemonSets, and
//! whether a rollout is done, still going, or stuck (the same tests `kubectl rollout status`
//! applies).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::Api;
use meshkit::Result;
use meshkit::cluster::Cluster;
use serde::Serialize;

/// The annotation `kubectl rollout restart` (and we) set on a pod template to roll it.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadView {
    pub namespace: String,
    /// `deployment/web`, as `status` names workloads.
    pub workload: String,
    pub generation: i64,
    pub observed_generation: i64,
    /// Desired pods.
    pub desired: i32,
    /// Pods from the current template.
    pub updated: i32,
    /// Pods that exist, from any template.
    pub current: i32,
    pub available: i32,
    /// The Deployment's progress deadline passed (`ProgressDeadlineExceeded`).
    pub deadline_exceeded: bool,
    /// The controller cannot create pods (a `ReplicaFailure` condition: quota, a webhook that
    /// refuses them): its message.
    pub replica_failure: Option<String>,
    /// StatefulSets: the template revision being rolled out differs from the one all pods run.
    pub revision_pending: bool,
    /// The pod template's restart stamp.
    pub restarted_at: Option<String>,
    /// The pod template's labels (which PodDisruptionBudgets cover its pods).
    pub pod_labels: meshkit::istio::Labels,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Rollout {
    Complete,
    Progressing {
        updated: i32,
        desired: i32,
    },
    /// The controller gave up (a Deployment's progress deadline passed).
    Stuck {
        reason: String,
    },
}

pub fn rollout(w: &WorkloadView) -> Rollout {
    if w.deadline_exceeded {
        return Rollout::Stuck { reason: "progress deadline exceeded".into() };
    }
    if let Some(message) = &w.replica_failure {
        return Rollout::Stuck { reason: format!("pods cannot be created: {message}") };
    }
    let done = w.observed_generation >= w.generation
        && w.updated >= w.desired
        && w.current <= w.updated
        && w.available >= w.updated
        && !w.revision_pending;
    if done { Rollout::Complete } else { Rollout::Progressing { updated: w.updated, desired: w.desired } }
}

fn restarted_at(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> Option<String> {
    template.metadata.as_ref()?.annotations.as_ref()?.get(RESTARTED_AT).cloned()
}

/// The first line of a true `ReplicaFailure` condition's message, kept short.
fn replica_failure<'a>(
    conditions: impl Iterator<Item = (&'a String, &'a String, &'a Option<String>)>,
) -> Option<String> {
    conditions
        .filter(|(kind, status, _)| *kind == "ReplicaFailure" && *status == "True")
        .map(|(_, _, message)| {
            let line = message.as_deref().unwrap_or("no message").lines().next().unwrap_or_default();
            line.chars().take(200).collect()
        })
        .next()
}

fn pod_labels(template: Option<&k8s_openapi::api::core::v1::PodTemplateSpec>) -> meshkit::istio::Labels {
    template.and_then(|t| t.metadata.as_ref()?.labels.clone()).unwrap_or_default()
}

fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_default()
}

fn named(kind: &str, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!("{kind}/{}", meta.name.as_deref().unwrap_or_default())
}

impl From<&Deployment> for WorkloadView {
    fn from(d: &Deployment) -> Self {
        let status = d.status.clone().unwrap_or_default();
        let spec = d.spec.as_ref();
        WorkloadView {
            namespace: namespace_of(&d.metadata),
            workload: named("deployment", &d.metadata),
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            desired: spec.and_then(|s| s.replicas).unwrap_or(1),
            updated: status.updated_replicas.unwrap_or(0),
            current: status.replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            deadline_exceeded: status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")),
            replica_failure: replica_failure(
                status.conditions.iter().flatten().map(|c| (&c.type_, &c.status, &c.message)),
            ),
            revision_pending: false,
            restarted_at: spec.and_then(|s| restarted_at(&s.template)),
            pod_labels: pod_labels(spec.map(|s| &s.template)),
        }
    }
}

impl From<&StatefulSet> for WorkloadView {
    fn from(s: &StatefulSet) -> Self {
        let status = s.status.clone().unwrap_or_default();
        let spec = s.spec.as_ref();
        let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
        WorkloadView {
            namespace: namespace_of(&s.metadata),
            workload: named("statefulset", &s.metadata),
            generation: s.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            desired,
            updated: status.updated_replicas.unwrap_or(0),
            current: status.replicas,
            available: status.available_replicas.unwrap_or(0),
            deadline_exceeded: false,
            replica_failure: None,
            revision_pending: status.update_revision.is_some() && status.update_revision != status.current_revision,
            restarted_at: spec.and_then(|s| restarted_at(&s.template)),
            pod_labels: pod_labels(spec.map(|s| &s.template)),
        }
    }
}

impl From<&DaemonSet> for WorkloadView {
    fn from(d: &DaemonSet) -> Self {
        let status = d.status.clone().unwrap_or_default();
        WorkloadView {
            namespace: namespace_of(&d.metadata),
            workload: named("daemonset", &d.metadata),
            generation: d.metadata.generation.unwrap_or(0),
            observed_generation: status.observed_generation.unwrap_or(0),
            desired: status.desired_number_scheduled,
            updated: status.updated_number_scheduled.unwrap_or(0),
            current: status.current_number_scheduled,
            available: status.number_available.unwrap_or(0),
            deadline_exceeded: false,
            replica_failure: None,
            revision_pending: false,
            restarted_at: d.spec.as_ref().and_then(|s| restarted_at(&s.template)),
            pod_labels: pod_labels(d.spec.as_ref().map(|s| &s.template)),
        }
    }
}

/// The workloads of `namespaces`: per namespace for a few, else one list per kind for the whole
/// cluster (requests grow with kinds, not namespaces).
pub async fn fetch(cluster: &Cluster, namespaces: &[String]) -> Result<Vec<WorkloadView>> {
    let mut all = Vec::new();
    let wanted = |w: &WorkloadView| namespaces.contains(&w.namespace);
    let client = cluster.client();
    if namespaces.len() <= crate::scope::PER_NAMESPACE_LISTS {
        for ns in namespaces {
            let (deployments, statefulsets, daemonsets) = (
                Api::<Deployment>::namespaced(client.clone(), ns),
                Api::<StatefulSet>::namespaced(client.clone(), ns),
                Api::<DaemonSet>::namespaced(client.clone(), ns),
            );
            let (what_deployments, what_statefulsets, what_daemonsets) = (
                format!("list deployments in {ns}"),
                format!("list statefulsets in {ns}"),
                format!("list daemonsets in {ns}"),
            );
            let (a, b, c) = tokio::try_join!(
                cluster.list_map(&deployments, None, &what_deployments, |d: &Deployment| { WorkloadView::from(d) }),
                cluster.list_map(&statefulsets, None, &what_statefulsets, |s: &StatefulSet| { WorkloadView::from(s) }),
                cluster.list_map(&daemonsets, None, &what_daemonsets, |d: &DaemonSet| { WorkloadView::from(d) }),
            )?;
            all.extend(a.into_iter().chain(b).chain(c));
        }
        return Ok(all);
    }
    let (deployments, statefulsets, daemonsets) = (
        Api::<Deployment>::all(client.clone()),
        Api::<StatefulSet>::all(client.clone()),
        Api::<DaemonSet>::all(client),
    );
    let (a, b, c) = tokio::try_join!(
        cluster.list_map(&deployments, None, "list deployments", |d: &Deployment| WorkloadView::from(d)),
        cluster.list_map(&statefulsets, None, "list statefulsets", |s: &StatefulSet| WorkloadView::from(s)),
        cluster.list_map(&daemonsets, None, "list daemonsets", |d: &DaemonSet| WorkloadView::from(d)),
    )?;
    all.extend(a.into_iter().chain(b).chain(c).filter(wanted));
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(
        generation: i64,
        observed: i64,
        desired: i32,
        updated: i32,
        current: i32,
        available: i32,
    ) -> WorkloadView {
        WorkloadView {
            workload: "deployment/web".into(),
            generation,
            observed_generation: observed,
            desired,
            updated,
            current,
            available,
            ..Default::default()
        }
    }

    #[test]
    fn rollout_states() {
        assert_eq!(rollout(&deployment(2, 2, 2, 2, 2, 2)), Rollout::Complete);
        assert_eq!(rollout(&deployment(3, 2, 2, 2, 2, 2)), Rollout::Progressing { updated: 2, desired: 2 }, "not seen");
        assert_eq!(rollout(&deployment(2, 2, 2, 1, 3, 2)), Rollout::Progressing { updated: 1, desired: 2 });
        assert_eq!(rollout(&deployment(2, 2, 2, 2, 3, 2)), Rollout::Progressing { updated: 2, desired: 2 }, "old pod");
        assert_eq!(rollout(&deployment(2, 2, 2, 2, 2, 1)), Rollout::Progressing { updated: 2, desired: 2 }, "unready");
        let stuck = WorkloadView { deadline_exceeded: true, ..deployment(2, 2, 2, 1, 3, 2) };
        assert_eq!(rollout(&stuck), Rollout::Stuck { reason: "progress deadline exceeded".into() });
        let sts = WorkloadView { revision_pending: true, ..deployment(2, 2, 1, 1, 1, 1) };
        assert!(matches!(rollout(&sts), Rollout::Progressing { .. }));
    }
}
