//! Fetches every plugin needs, written once.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use crate::cluster::Cluster;
use crate::error::Result;
use crate::istio::{IstiodView, NamespaceView, keys};

/// Namespaces carrying `istio.io/rev` or `istio-injection`, sorted by name: two label-selected
/// lists (a label selector cannot say "either"), never a list of every namespace.
pub async fn labelled_namespaces(cluster: &Cluster) -> Result<Vec<NamespaceView>> {
    let api: Api<Namespace> = Api::all(cluster.client());
    let (revisioned, legacy) = tokio::try_join!(
        cluster.list_map(&api, Some(keys::REV), "list namespaces", |n: &Namespace| NamespaceView::from(n)),
        cluster.list_map(&api, Some(keys::INJECTION), "list namespaces", |n: &Namespace| NamespaceView::from(n)),
    )?;
    let by_name: BTreeMap<String, NamespaceView> =
        revisioned.into_iter().chain(legacy).map(|ns| (ns.name.clone(), ns)).collect();
    Ok(by_name.into_values().collect())
}

/// The istiod Deployments of the Istio namespace.
pub async fn istiods(cluster: &Cluster) -> Result<Vec<IstiodView>> {
    let ns = &cluster.istio_namespace;
    let api: Api<Deployment> = Api::namespaced(cluster.client(), ns);
    let what = format!("list deployments in namespace {ns}");
    cluster.list_map(&api, Some(keys::ISTIOD_SELECTOR), &what, |d: &Deployment| IstiodView::from(d)).await
}
