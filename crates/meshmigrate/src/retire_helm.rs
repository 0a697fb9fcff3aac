//! Retiring a revision that Helm (or Sail, or GitOps) installed. For a Helm release of the
//! revision, `retire` does what `helm uninstall` does: it deletes the objects of the release's
//! manifest (those marked `helm.sh/resource-policy: keep` aside) and then the release's records,
//! so `helm list` stays true. Objects in the manifest that moved to another revision (a tag now
//! pointing elsewhere) are kept and lose the release's claim. Objects another release owns (the
//! base chart's default validator), or that Sail or GitOps manage, refuse: deleting them would
//! fight their owner.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use meshkit::cluster::Cluster;
use meshkit::install::helm::{self, ObjectKey, RELEASE_KEY, Release};
use meshkit::install::{Manager, detect_meta};
use meshkit::{Error, Result};
use serde_json::Value;

use crate::retire_owned::{OWNED, Owned, belongs, get_owned};

/// A Helm release named by the objects a revision owns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReleaseView {
    pub name: String,
    pub namespace: String,
    /// The `revision` value it was installed with (`None` for istio-base and other charts).
    pub revision: Option<String>,
    /// What its latest record's manifest renders, and whether each is kept on uninstall.
    pub documents: Vec<(ObjectKey, bool)>,
    pub has_hooks: bool,
    /// Its record Secrets, as read (for the backup, and to delete).
    pub records: Vec<Value>,
}

impl ReleaseView {
    pub fn uninstall_command(&self) -> String {
        format!("helm uninstall {} -n {}", self.name, self.namespace)
    }

    pub fn record_names(&self) -> Vec<String> {
        self.records.iter().filter_map(|r| r["metadata"]["name"].as_str().map(str::to_string)).collect()
    }
}

fn meta_of(object: &Value) -> ObjectMeta {
    serde_json::from_value(object["metadata"].clone()).unwrap_or_default()
}

/// `(namespace, release)` of every Helm release the owned objects name by Helm's own annotations.
/// The chart's instance label is no proof of Helm (istioctl renders the same charts), so a release
/// named only by it has no records to read.
fn release_names(owned: &[Owned]) -> BTreeSet<(String, String)> {
    owned
        .iter()
        .filter_map(|o| match detect_meta(&meta_of(&o.object)) {
            Manager::Helm { release, namespace } => Some((namespace, release)),
            _ => None,
        })
        .collect()
}

async fn read_release(cluster: &Cluster, namespace: &str, name: &str) -> Result<Option<ReleaseView>> {
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), namespace);
    let what = format!("list the records of Helm release {name} in namespace {namespace}");
    let records = cluster.list(&secrets, Some(&helm::release_selector(name)), &what).await?;
    let mut latest: Option<Release> = None;
    for secret in &records {
        let secret_name = secret.metadata.name.clone().unwrap_or_default();
        let Some(data) = secret.data.as_ref().and_then(|d| d.get(RELEASE_KEY)) else { continue };
        let release = Release::decode(&secret_name, &data.0).map_err(|e| {
            Error::refused(e.to_string(), format!("retire it with `helm uninstall {name} -n {namespace}`"))
        })?;
        if latest.as_ref().is_none_or(|l| release.version() > l.version()) {
            latest = Some(release);
        }
    }
    let Some(latest) = latest else { return Ok(None) };
    let documents = helm::documents(latest.manifest()).into_iter().map(|d| (d.key, d.keep)).collect();
    let mut raw: Vec<Value> = records.iter().map(|s| serde_json::to_value(s).unwrap_or_default()).collect();
    for record in &mut raw {
        record["apiVersion"] = "v1".into();
        record["kind"] = "Secret".into();
    }
    Ok(Some(ReleaseView {
        name: name.to_string(),
        namespace: namespace.to_string(),
        revision: latest.values().get("revision").and_then(Value::as_str).map(str::to_string),
        documents,
        has_hooks: latest.has_hooks(),
        records: raw,
    }))
}

/// The releases the owned objects name, with the manifest objects of the revision's own release
/// that no label found added to `owned` (or, when they moved to another revision, returned as
/// protected).
pub async fn fetch(
    cluster: &Cluster,
    revision: &str,
    owned: &mut Vec<Owned>,
) -> Result<(Vec<ReleaseView>, Vec<Owned>)> {
    let names = release_names(owned);
    let found = futures::future::try_join_all(names.iter().map(|(ns, name)| read_release(cluster, ns, name))).await?;
    let releases: Vec<ReleaseView> = found.into_iter().flatten().collect();
    let mut protected = Vec::new();
    for release in releases.iter().filter(|r| r.revision.as_deref() == Some(revision)) {
        for (key, _) in &release.documents {
            let Some(index) = OWNED.iter().position(|k| k.2 == key.kind) else { continue };
            let namespace = OWNED[index].4.then(|| key.namespace.clone().unwrap_or_else(|| release.namespace.clone()));
            let known = owned.iter().any(|o| o.kind_index == index && o.name == key.name && o.namespace == namespace);
            if known {
                continue;
            }
            if let Some(object) = get_owned(cluster, index, &key.name).await? {
                if belongs(revision, &object.object) {
                    owned.push(object);
                } else {
                    protected.push(object);
                }
            }
        }
    }
    Ok((releases, protected))
}

/// Refusals: owned objects another release, Sail or GitOps manages; a release of the revision
/// with hooks or kinds `retire` does not delete (only `helm uninstall` can do those right).
pub fn check_owners(revision: &str, owned: &[Owned], releases: &[ReleaseView]) -> Result<()> {
    let ours: Vec<&ReleaseView> = releases.iter().filter(|r| r.revision.as_deref() == Some(revision)).collect();
    for object in owned {
        let manager = detect_meta(&meta_of(&object.object));
        let foreign = match &manager {
            Manager::Helm { release, .. } => !ours.iter().any(|r| &r.name == release),
            other => other.is_foreign(),
        };
        if foreign {
            let what = format!("{} {}", object.kind.to_lowercase(), object.name);
            let validator = object.name == meshkit::istio::tag_objects::DEFAULT_VALIDATOR;
            let hint = match manager.move_default_revision("REV").filter(|_| validator) {
                Some(command) => format!("move the default revision first: {command}"),
                None => manager.the_owners_way(),
            };
            return Err(Error::refused(
                format!("revision {revision} cannot be retired here: {what} is managed by {manager}"),
                hint,
            ));
        }
    }
    for release in ours {
        let unknown: Vec<String> = release
            .documents
            .iter()
            .filter(|(key, _)| !OWNED.iter().any(|k| k.2 == key.kind))
            .map(|(key, _)| key.to_string())
            .collect();
        if release.has_hooks || !unknown.is_empty() {
            let why = if release.has_hooks { "uninstall hooks".to_string() } else { unknown.join(", ") };
            return Err(Error::refused(
                format!(
                    "Helm release {} of revision {revision} renders what only Helm removes right ({why})",
                    release.name
                ),
                format!("retire it with `{}`", release.uninstall_command()),
            ));
        }
    }
    Ok(())
}

/// Objects of the revision's releases that `helm uninstall` would keep.
pub fn kept(revision: &str, owned: &Owned, releases: &[ReleaseView]) -> bool {
    releases
        .iter()
        .filter(|r| r.revision.as_deref() == Some(revision))
        .any(|r| r.documents.iter().any(|(key, keep)| *keep && key.kind == owned.kind && key.name == owned.name))
}
