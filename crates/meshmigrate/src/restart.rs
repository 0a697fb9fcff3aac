//! `restart [NS…|-A] [--dry-run]`: restart only the workloads whose pods are stale, as
//! `kubectl rollout restart` does (a new `restartedAt` annotation on the pod template), each
//! recorded in the journal first.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::Api;
use kube::api::{Patch, PatchParams};
use meshkit::cluster::Cluster;
use meshkit::render::{Cell, Table, Tone};
use meshkit::{Error, Result};
use serde::Serialize;

use crate::journal::{Action, Entry, InjectionLabels, Journal, State};
use crate::relabel::with_journal;
use crate::status::NamespaceStatus;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restart {
    pub namespace: String,
    /// `deployment/web`
    pub workload: String,
    pub stale_pods: usize,
}

/// Decide: the controllers to restart (bare pods cannot be restarted; they are reported apart).
pub fn plan(statuses: &[NamespaceStatus]) -> (Vec<Restart>, Vec<String>) {
    let mut restarts = Vec::new();
    let mut bare = Vec::new();
    for status in statuses {
        for workload in &status.restart {
            if workload.starts_with("deployment/")
                || workload.starts_with("statefulset/")
                || workload.starts_with("daemonset/")
            {
                restarts.push(Restart {
                    namespace: status.namespace.clone(),
                    workload: workload.clone(),
                    stale_pods: status.stale_pods.len(),
                });
            } else {
                bare.push(format!("{}/{workload}", status.namespace));
            }
        }
    }
    (restarts, bare)
}

/// The rollout-restart patches of `restarts` (as `kubectl rollout restart`), sent with `params`.
async fn send_restarts(cluster: &Cluster, restarts: &[Restart], time: &str, params: &PatchParams) -> Result<()> {
    let patch = serde_json::json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": time}}}}});
    for r in restarts {
        let (kind, name) = r.workload.split_once('/').unwrap_or_default();
        let what = format!("restart {} in namespace {}", r.workload, r.namespace);
        let client = cluster.client();
        match kind {
            "deployment" => {
                let api: Api<Deployment> = Api::namespaced(client, &r.namespace);
                cluster.call(&what, api.patch(name, params, &Patch::Merge(&patch))).await?;
            }
            "statefulset" => {
                let api: Api<StatefulSet> = Api::namespaced(client, &r.namespace);
                cluster.call(&what, api.patch(name, params, &Patch::Merge(&patch))).await?;
            }
            "daemonset" => {
                let api: Api<DaemonSet> = Api::namespaced(client, &r.namespace);
                cluster.call(&what, api.patch(name, params, &Patch::Merge(&patch))).await?;
            }
            other => return Err(Error::refused(format!("cannot restart a {other}"), "")),
        }
    }
    Ok(())
}

/// `--dry-run=server`: the apiserver validates every restart and persists nothing.
pub async fn check_on_server(cluster: &Cluster, restarts: &[Restart]) -> Result<()> {
    let time = k8s_openapi::jiff::Timestamp::now().to_string();
    send_restarts(cluster, restarts, &time, &PatchParams { dry_run: true, ..PatchParams::default() }).await
}

pub async fn apply(cluster: &Cluster, user: &str, restarts: &[Restart]) -> Result<()> {
    let time = k8s_openapi::jiff::Timestamp::now().to_string();
    let ids = with_journal(cluster, |journal| {
        let mut ids = Vec::new();
        for (next, r) in (journal.next_id()..).zip(restarts) {
            let id = format!("{next:06}");
            journal.entries.push(Entry {
                id: id.clone(),
                time: time.clone(),
                user: user.to_string(),
                action: Action::Restart,
                namespace: r.namespace.clone(),
                from: InjectionLabels::default(),
                to: InjectionLabels::default(),
                state: State::Pending,
                undoes: None,
                workload: Some(r.workload.clone()),
            });
            ids.push(id);
        }
        ids
    })
    .await?;
    send_restarts(cluster, restarts, &time, &PatchParams::default()).await?;
    with_journal(cluster, |journal| {
        for entry in journal.entries.iter_mut().filter(|e| ids.contains(&e.id)) {
            entry.state = State::Done;
        }
    })
    .await
}

/// Restarts left pending by an interrupted run: done if the workload's template carries their
/// stamp, abandoned if it carries none or another (the patch never landed, or a later restart
/// superseded it). Returns whether anything changed.
pub fn settle_pending(journal: &mut Journal, workloads: &[crate::rollout::WorkloadView]) -> bool {
    let mut changed = false;
    for entry in journal.entries.iter_mut().filter(|e| e.state == State::Pending && e.action == Action::Restart) {
        let Some(workload) =
            workloads.iter().find(|w| w.namespace == entry.namespace && Some(&w.workload) == entry.workload.as_ref())
        else {
            continue;
        };
        entry.state = if workload.restarted_at.as_ref() == Some(&entry.time) { State::Done } else { State::Abandoned };
        changed = true;
    }
    changed
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RestartResult {
    WouldRestart,
    Restarted,
    /// Restarted by an earlier run since the namespace moved: only followed.
    AlreadyRestarted,
    /// Not started: the deadline came first, a PodDisruptionBudget held it, or an earlier
    /// rollout failed (`reason` says which).
    NotStarted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartOutcome {
    #[serde(flatten)]
    pub restart: Restart,
    pub result: RestartResult,
    /// Why it was not started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollout::Rollout>,
}

impl RestartOutcome {
    pub fn planned(restart: Restart, result: RestartResult) -> RestartOutcome {
        RestartOutcome { restart, result, reason: None, rollout: None }
    }
}

/// What happened to each restart of a run.
pub fn outcome_table(outcomes: &[RestartOutcome]) -> Table {
    use crate::rollout::Rollout;
    let mut table = Table::new(&["NAMESPACE", "WORKLOAD", "STALE PODS", "RESTART", "ROLLOUT"]);
    for o in outcomes {
        let restart = match o.result {
            RestartResult::WouldRestart => Cell::new("would restart (dry run)", Tone::Warn),
            RestartResult::Restarted => Cell::new("restarted", Tone::Good),
            RestartResult::AlreadyRestarted => Cell::new("already restarted", Tone::Dim),
            RestartResult::NotStarted => {
                Cell::new(format!("not started: {}", o.reason.as_deref().unwrap_or("timeout")), Tone::Bad)
            }
        };
        let rollout = match &o.rollout {
            None => Cell::new("-", Tone::Dim),
            Some(Rollout::Complete) => Cell::new("complete", Tone::Good),
            Some(Rollout::Progressing { updated, desired }) => {
                Cell::new(format!("in progress ({updated}/{desired} updated)"), Tone::Warn)
            }
            Some(Rollout::Stuck { reason }) => Cell::new(format!("stuck: {reason}"), Tone::Bad),
        };
        table.push(vec![
            Cell::from(o.restart.namespace.as_str()),
            Cell::from(o.restart.workload.as_str()),
            Cell::from(o.restart.stale_pods.to_string()),
            restart,
            rollout,
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_controllers_and_reports_bare_pods() {
        let status = NamespaceStatus {
            namespace: "shop".into(),
            labels: Default::default(),
            requested: Some("1-31-1".into()),
            intended_revision: Some("1-31-1".into()),
            pods: 3,
            injected: vec![],
            uninjected: 3,
            stale_pods: vec!["a".into(), "b".into(), "c".into()],
            stale_reasons: Default::default(),
            proxies: None,
            restart: vec![
                "deployment/web".into(),
                "pod/job-x (no controller: delete it to recreate it)".into(),
                "statefulset/db".into(),
            ],
        };
        let (restarts, bare) = plan(std::slice::from_ref(&status));
        let workloads: Vec<&str> = restarts.iter().map(|r| r.workload.as_str()).collect();
        assert_eq!(workloads, ["deployment/web", "statefulset/db"]);
        assert_eq!(bare, ["shop/pod/job-x (no controller: delete it to recreate it)"]);
    }

    #[test]
    fn interrupted_restarts_settle() {
        let pending = |id: &str, workload: &str, time: &str| Entry {
            id: id.into(),
            time: time.into(),
            user: "u".into(),
            action: Action::Restart,
            namespace: "shop".into(),
            from: InjectionLabels::default(),
            to: InjectionLabels::default(),
            state: State::Pending,
            undoes: None,
            workload: Some(workload.into()),
        };
        let mut journal = Journal {
            entries: vec![
                pending("000001", "deployment/web", "t1"),
                pending("000002", "deployment/api", "t1"),
                pending("000003", "deployment/gone", "t1"),
            ],
            ..Default::default()
        };
        let workload = |name: &str, stamp: Option<&str>| crate::rollout::WorkloadView {
            namespace: "shop".into(),
            workload: name.into(),
            restarted_at: stamp.map(str::to_string),
            ..Default::default()
        };
        assert!(settle_pending(
            &mut journal,
            &[workload("deployment/web", Some("t1")), workload("deployment/api", None)]
        ));
        let states: Vec<State> = journal.entries.iter().map(|e| e.state).collect();
        assert_eq!(states, [State::Done, State::Abandoned, State::Pending], "an unknown workload stays as it was");
    }
}
