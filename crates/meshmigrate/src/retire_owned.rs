//! What an install of one revision owns: the kinds, how they are found (by the revision's label
//! and by its istiod's Helm release), and how each is read.

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use meshkit::cluster::Cluster;
use meshkit::istio::keys;
use meshkit::{Error, Result};
use serde::Serialize;
use serde_json::Value;

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
pub async fn owned(cluster: &Cluster, revision: &str) -> Result<Vec<Owned>> {
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
