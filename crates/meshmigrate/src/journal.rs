//! The upgrade journal: every change, recorded in the cluster before it is made, so that a
//! rollback works from any machine and `log` shows what happened. One ConfigMap in the Istio
//! namespace; each entry is one data key holding JSON; writes use the resourceVersion read
//! (a conflict is retried on a fresh read by the caller).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use meshkit::cluster::Cluster;
use meshkit::{Error, Result};
use serde::{Deserialize, Serialize};

pub const JOURNAL: &str = "meshmigrate-journal";

/// The injection labels of a namespace as they were or will be (`None` = absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectionLabels {
    pub istio_injection: Option<String>,
    pub istio_rev: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Relabel,
    Rollback,
    /// A workload restarted so that its pods are re-injected.
    Restart,
    /// A gateway Deployment's pod template moved to another revision (`istio.io/rev`).
    Gateway,
    /// A revision's control plane deleted (`workload` is `revision/REV`).
    Retire,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// Recorded; the change may or may not have been made (interrupted runs leave this).
    Pending,
    Done,
    /// Recorded by a run interrupted before it made the change; a later run found it not made.
    Abandoned,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Sortable: zero-padded sequence number.
    pub id: String,
    pub time: String,
    pub user: String,
    pub action: Action,
    pub namespace: String,
    pub from: InjectionLabels,
    pub to: InjectionLabels,
    pub state: State,
    /// For a rollback: the entry it undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
    /// For a restart: `deployment/web`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
}

/// The journal as read, with the version to write against.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    pub entries: Vec<Entry>,
    pub(crate) resource_version: Option<String>,
}

impl Journal {
    pub async fn read(cluster: &Cluster) -> Result<Journal> {
        let api: Api<ConfigMap> = Api::namespaced(cluster.client(), &cluster.istio_namespace);
        let what = format!("read the journal configmap {}/{JOURNAL}", cluster.istio_namespace);
        let Some(map) = cluster.call(&what, api.get_opt(JOURNAL)).await? else { return Ok(Journal::default()) };
        let mut entries = Vec::new();
        for (key, value) in map.data.iter().flatten() {
            let entry: Entry = serde_json::from_str(value).map_err(|e| {
                Error::refused(
                    format!("journal entry {key} in {JOURNAL} is not readable: {e}"),
                    "repair or remove that key by hand",
                )
            })?;
            entries.push(entry);
        }
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(Journal { entries, resource_version: map.metadata.resource_version })
    }

    pub fn next_id(&self) -> u64 {
        self.entries.iter().filter_map(|e| e.id.parse::<u64>().ok()).max().map_or(1, |n| n + 1)
    }

    /// Writes the whole journal with the resourceVersion it was read at: a concurrent writer
    /// makes this fail with a conflict instead of losing entries.
    pub async fn write(&mut self, cluster: &Cluster) -> Result<()> {
        let api: Api<ConfigMap> = Api::namespaced(cluster.client(), &cluster.istio_namespace);
        let data: BTreeMap<String, String> = self
            .entries
            .iter()
            .map(|e| Ok((e.id.clone(), serde_json::to_string(e).map_err(std::io::Error::other)?)))
            .collect::<Result<_>>()?;
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(JOURNAL.into()),
                namespace: Some(cluster.istio_namespace.clone()),
                labels: Some([("app.kubernetes.io/managed-by".to_string(), "kubectl-meshmigrate".to_string())].into()),
                resource_version: self.resource_version.clone(),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        let what = format!("write the journal configmap {}/{JOURNAL}", cluster.istio_namespace);
        let written = match &self.resource_version {
            Some(_) => cluster.call(&what, api.replace(JOURNAL, &PostParams::default(), &map)).await?,
            None => cluster.call(&what, api.create(&PostParams::default(), &map)).await?,
        };
        self.resource_version = written.metadata.resource_version;
        Ok(())
    }

    /// Every namespace with a move that can be rolled back, sorted.
    pub fn undoable_namespaces(&self) -> Vec<String> {
        let names: std::collections::BTreeSet<&str> = self.entries.iter().map(|e| e.namespace.as_str()).collect();
        names.into_iter().filter(|n| self.last_undoable(n).is_some()).map(str::to_string).collect()
    }

    /// The last relabel of `namespace` that is done and not yet rolled back.
    pub fn last_undoable(&self, namespace: &str) -> Option<&Entry> {
        let undone: Vec<&str> = self.entries.iter().filter_map(|e| e.undoes.as_deref()).collect();
        self.entries.iter().rev().find(|e| {
            e.namespace == namespace
                && e.action == Action::Relabel
                && e.state == State::Done
                && !undone.contains(&e.id.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, namespace: &str, action: Action, state: State, undoes: Option<&str>) -> Entry {
        Entry {
            id: id.into(),
            time: "t".into(),
            user: "u".into(),
            action,
            namespace: namespace.into(),
            from: InjectionLabels::default(),
            to: InjectionLabels::default(),
            state,
            undoes: undoes.map(str::to_string),
            workload: None,
        }
    }

    #[test]
    fn finds_what_can_be_rolled_back() {
        let journal = Journal {
            entries: vec![
                entry("000001", "a", Action::Relabel, State::Done, None),
                entry("000002", "a", Action::Relabel, State::Done, None),
                entry("000003", "a", Action::Rollback, State::Done, Some("000002")),
                entry("000004", "b", Action::Relabel, State::Pending, None),
            ],
            resource_version: None,
        };
        assert_eq!(journal.last_undoable("a").map(|e| e.id.as_str()), Some("000001"));
        assert_eq!(journal.last_undoable("b"), None, "a pending change may not have happened");
        assert_eq!(journal.undoable_namespaces(), ["a"]);
        assert_eq!(journal.next_id(), 5);
        assert_eq!(Journal::default().next_id(), 1);
    }

    #[test]
    fn entries_round_trip_as_json() {
        let e = entry("000001", "a", Action::Relabel, State::Done, None);
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"action\":\"relabel\"") && !text.contains("undoes"), "{text}");
        assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), e);
    }
}
