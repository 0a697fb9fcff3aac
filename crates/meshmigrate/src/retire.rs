//! `retire REV`: the old control plane removed safely. Refused while anything still uses REV
//! (a tag, the default, a namespace's labels, an injected pod, a gateway); otherwise everything it
//! will delete is written to a backup archive (meshbackup's format) first, then the objects labelled
//! `istio.io/rev=REV` are deleted as `istioctl uninstall --revision` does: webhooks first, so no
//! new pod is sent to the istiod that is going away. CRDs, the Istio namespace and every other
//! revision's objects are left alone. A rerun after an interruption deletes what is left.

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use meshkit::cluster::Cluster;
use meshkit::istio::{Injected, Intended, Mesh, NamespaceView, PodView, keys, pod_injected, pod_intended};
use meshkit::{Error, Result};
use serde::Serialize;
use serde_json::Value;

use crate::gateway::GatewayView;
use crate::journal::{Action, State};
pub use crate::retire_helm::ReleaseView;

/// What an install of one revision owns, in the order it is deleted: webhooks first (no new pod
/// goes to the istiod that is leaving), then its identity and RBAC while the Deployment that names
/// its Helm release still exists (a rerun after an interruption can still find them), then the rest.
pub const OWNED: &[(&str, &str, &str, &str, bool)] = &[
    ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", false),
    ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", false),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    ("apps", "v1", "Deployment", "deployments", true),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "ConfigMap", "configmaps", true),
];

/// Istio's istiod chart labels its RBAC and ServiceAccount with the Helm release, not the revision.
const INSTANCE: &str = "app.kubernetes.io/instance";

/// The Helm releases of `revision`'s istiod objects (`app=istiod`, labelled with the revision).
pub fn releases(revision: &str, objects: &[Value]) -> std::collections::BTreeSet<String> {
    objects
        .iter()
        .map(|o| &o["metadata"]["labels"])
        .filter(|l| l["app"] == "istiod" && l[keys::REV] == revision)
        .filter_map(|l| l[INSTANCE].as_str().map(String::from))
        .collect()
}

/// Whether an object found through a release belongs to `revision`: not a tag's, not labelled with
/// another revision.
pub fn belongs(revision: &str, object: &Value) -> bool {
    let labels = &object["metadata"]["labels"];
    labels[keys::TAG].is_null() && labels[keys::REV].as_str().is_none_or(|r| r == revision)
}

/// One object the revision owns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Owned {
    /// Index into [`OWNED`].
    #[serde(skip)]
    pub kind_index: usize,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// The object as read, for the backup.
    #[serde(skip)]
    pub object: Value,
}

/// Everything the decision reads.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub mesh: Mesh,
    pub namespaces: Vec<NamespaceView>,
    pub pods: Vec<PodView>,
    pub gateways: Vec<GatewayView>,
    pub owned: Vec<Owned>,
    /// Whether the journal records a finished retirement of this revision.
    pub retired_before: bool,
    /// Helm releases the owned objects name (see [`crate::retire_helm`]).
    pub releases: Vec<ReleaseView>,
    /// Objects of the revision's release that belong to another revision now.
    pub protected: Vec<Owned>,
}

/// What a retirement does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Delete these, in this order.
    pub delete: Vec<Owned>,
    /// Objects of the revision's Helm release that moved to another revision: kept, and freed from
    /// the release's claim before its records go.
    pub protect: Vec<Owned>,
    /// The revision's Helm releases, whose records are deleted as `helm uninstall` deletes them.
    pub releases: Vec<ReleaseView>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Retire(Plan),
    /// Nothing of REV is left and the journal says it was retired: a rerun with nothing to do.
    AlreadyRetired,
}

/// Who still uses `revision`, each as `kind/name` with why.
pub fn users(revision: &str, snapshot: &Snapshot) -> Vec<String> {
    let mesh = &snapshot.mesh;
    let mut users = Vec::new();
    for tag in mesh.tags.values().filter(|t| t.revision == revision) {
        users.push(format!("tag/{}", tag.name));
    }
    if mesh.default_revision() == Some(revision) && !mesh.tags.contains_key(keys::DEFAULT_TAG) {
        users.push("the default revision".into());
    }
    for namespace in &snapshot.namespaces {
        if let Intended::Sidecar { via, revision: Some(target) } = pod_intended(namespace, &Default::default(), mesh)
            && target == revision
            && via != keys::DEFAULT_TAG
        {
            users.push(format!("namespace/{} (istio.io/rev={via})", namespace.name));
        }
    }
    let injected = snapshot
        .pods
        .iter()
        .filter(|p| matches!(pod_injected(p), Injected::Revision { revision: r } if r == revision))
        .count();
    if injected > 0 {
        users.push(format!("{injected} pod(s) injected by {revision}"));
    }
    for gateway in &snapshot.gateways {
        let namespace = snapshot
            .namespaces
            .iter()
            .find(|n| n.name == gateway.namespace)
            .cloned()
            .unwrap_or_else(|| NamespaceView { name: gateway.namespace.clone(), labels: Default::default() });
        if let Intended::Sidecar { revision: Some(target), .. } =
            pod_intended(&namespace, &gateway.template_labels, mesh)
            && target == revision
        {
            users.push(format!("gateway {}/{}", gateway.namespace, gateway.name));
        }
    }
    users
}

/// Decide: refuse an unknown revision or one still in use; otherwise what to delete, in order.
pub fn decide(revision: &str, snapshot: &Snapshot) -> Result<Decision> {
    let installed = snapshot.mesh.revisions.get(revision).is_some_and(|r| r.installed());
    if !installed && snapshot.owned.is_empty() {
        if snapshot.retired_before {
            return Ok(Decision::AlreadyRetired);
        }
        let known: Vec<&str> = snapshot.mesh.installed_revisions().map(|r| r.name.as_str()).collect();
        return Err(Error::not_found(
            format!("revision {revision:?} is not installed and owns nothing"),
            format!("installed revisions: {}", if known.is_empty() { "none".into() } else { known.join(", ") }),
        ));
    }
    let users = users(revision, snapshot);
    if !users.is_empty() {
        let shown: Vec<&str> = users.iter().take(5).map(String::as_str).collect();
        let more =
            if users.len() > shown.len() { format!(" and {} more", users.len() - shown.len()) } else { String::new() };
        return Err(Error::refused(
            format!("revision {revision} is still in use: {}{more}", shown.join(", ")),
            "move them to another revision first (kubectl revtag set TAG --revision REV --overwrite; \
             kubectl meshmigrate namespace NS --to REV --restart --wait); `kubectl meshmigrate status` shows who uses what",
        ));
    }
    crate::retire_helm::check_owners(revision, &snapshot.owned, &snapshot.releases)?;
    let mut delete: Vec<Owned> =
        snapshot.owned.iter().filter(|o| !crate::retire_helm::kept(revision, o, &snapshot.releases)).cloned().collect();
    delete.sort_by(|a, b| (a.kind_index, &a.namespace, &a.name).cmp(&(b.kind_index, &b.namespace, &b.name)));
    let releases = snapshot.releases.iter().filter(|r| r.revision.as_deref() == Some(revision)).cloned().collect();
    Ok(Decision::Retire(Plan { delete, protect: snapshot.protected.clone(), releases }))
}

fn resource(index: usize) -> ApiResource {
    let (group, version, kind, plural, _) = OWNED[index];
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

pub fn api(cluster: &Cluster, index: usize) -> Api<DynamicObject> {
    if OWNED[index].4 {
        Api::namespaced_with(cluster.client(), &cluster.istio_namespace, &resource(index))
    } else {
        Api::all_with(cluster.client(), &resource(index))
    }
}

fn owned_of(index: usize, item: DynamicObject) -> Owned {
    let mut object = serde_json::to_value(&item).unwrap_or_default();
    object["apiVersion"] = Value::from(resource(index).api_version);
    object["kind"] = Value::from(OWNED[index].2);
    Owned {
        kind_index: index,
        kind: OWNED[index].2.to_string(),
        namespace: item.metadata.namespace.clone(),
        name: item.metadata.name.clone().unwrap_or_default(),
        object,
    }
}

/// One object of an owned kind by name, if it exists.
pub async fn get_owned(cluster: &Cluster, index: usize, name: &str) -> Result<Option<Owned>> {
    let what = format!("get {} {name}", OWNED[index].3);
    Ok(cluster.call(&what, api(cluster, index).get_opt(name)).await?.map(|item| owned_of(index, item)))
}

/// The objects of every owned kind `selector` selects: one label-selected list per kind.
async fn list_owned(cluster: &Cluster, selector: &str) -> Result<Vec<Owned>> {
    let lists = futures::future::try_join_all((0..OWNED.len()).map(|index| async move {
        let what = format!("list {}", OWNED[index].3);
        let items = cluster.list(&api(cluster, index), Some(selector), &what).await?;
        Ok::<_, Error>(items.into_iter().map(|item| owned_of(index, item)).collect::<Vec<_>>())
    }))
    .await?;
    Ok(lists.into_iter().flatten().collect())
}

/// What the revision owns: everything labelled with it (tags aside: a tag in use refuses anyway),
/// and the RBAC and ServiceAccount of its istiod's Helm release.
async fn owned(cluster: &Cluster, revision: &str) -> Result<Vec<Owned>> {
    let mut owned = list_owned(cluster, &format!("{}={revision},!{}", keys::REV, keys::TAG)).await?;
    let objects: Vec<Value> = owned.iter().map(|o| o.object.clone()).collect();
    for release in releases(revision, &objects) {
        for found in list_owned(cluster, &format!("{},{INSTANCE}={release}", keys::ISTIOD_SELECTOR)).await? {
            let seen = owned
                .iter()
                .any(|o| (o.kind_index, &o.namespace, &o.name) == (found.kind_index, &found.namespace, &found.name));
            if !seen && belongs(revision, &found.object) {
                owned.push(found);
            }
        }
    }
    Ok(owned)
}

pub async fn fetch(cluster: &Cluster, revision: &str) -> Result<Snapshot> {
    let pods: Api<Pod> = Api::all(cluster.client());
    let (control_plane, mut owned, pods, (gateways, namespaces), journal) = tokio::try_join!(
        meshkit::fetch::control_plane(cluster),
        owned(cluster, revision),
        cluster.list_map(&pods, Some(keys::INJECTED_POD_LABEL), "list pods", |p: &Pod| PodView::from(p)),
        crate::gateway::fetch_all(cluster),
        crate::journal::Journal::read(cluster),
    )?;
    let retired_before = journal.entries.iter().any(|e| {
        e.action == Action::Retire
            && e.state == State::Done
            && e.workload.as_deref() == Some(&format!("revision/{revision}"))
    });
    let (releases, protected) = crate::retire_helm::fetch(cluster, revision, &mut owned).await?;
    Ok(Snapshot { mesh: control_plane.mesh(), namespaces, pods, gateways, owned, retired_before, releases, protected })
}

#[cfg(test)]
#[path = "retire_tests.rs"]
mod tests;
