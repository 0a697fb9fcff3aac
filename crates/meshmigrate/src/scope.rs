//! Which namespaces a command works on (named, or selected by labels in one list call), and the
//! fetches over a set of namespaces that choose between per-namespace and cluster-wide lists.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use meshkit::cluster::Cluster;
use meshkit::istio::{NamespaceView, PodView};
use meshkit::{Error, Result};

/// Up to this many namespaces, list their objects namespace by namespace; beyond, one list per
/// kind for the whole cluster, filtered here (requests grow with kinds, not namespaces).
pub const PER_NAMESPACE_LISTS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Named(Vec<String>),
    /// A label selector over namespaces (`-l team=shop`).
    Selector(String),
}

/// The selected namespaces; every missing named one is reported before anything changes, and a
/// selector that selects nothing is an error.
pub async fn namespaces(cluster: &Cluster, selection: &Selection) -> Result<Vec<NamespaceView>> {
    let api: Api<Namespace> = Api::all(cluster.client());
    match selection {
        Selection::Selector(selector) => {
            let found = cluster
                .list_map(&api, Some(selector), &format!("list namespaces -l {selector}"), |n: &Namespace| {
                    NamespaceView::from(n)
                })
                .await?;
            if found.is_empty() {
                return Err(Error::not_found(
                    format!("no namespace matches -l {selector}"),
                    "`kubectl get namespaces --show-labels` shows their labels",
                ));
            }
            Ok(found)
        }
        Selection::Named(names) => {
            let mut found = Vec::new();
            let mut missing = Vec::new();
            if names.len() > PER_NAMESPACE_LISTS {
                let all =
                    cluster.list_map(&api, None, "list namespaces", |n: &Namespace| NamespaceView::from(n)).await?;
                for name in names {
                    match all.iter().find(|n| &n.name == name) {
                        Some(ns) => found.push(ns.clone()),
                        None => missing.push(name.as_str()),
                    }
                }
            } else {
                for name in names {
                    match cluster.call(&format!("get namespace {name}"), api.get_opt(name)).await? {
                        Some(ns) => found.push(NamespaceView::from(&ns)),
                        None => missing.push(name.as_str()),
                    }
                }
            }
            if !missing.is_empty() {
                return Err(Error::not_found(
                    format!("namespace(s) {} do not exist", missing.join(", ")),
                    "`kubectl get namespaces` lists them",
                ));
            }
            Ok(found)
        }
    }
}

/// The names of every namespace: one list.
pub async fn existing(cluster: &Cluster) -> Result<std::collections::BTreeSet<String>> {
    let api: Api<Namespace> = Api::all(cluster.client());
    let names = cluster.list_map(&api, None, "list namespaces", |n: &Namespace| n.metadata.name.clone()).await?;
    Ok(names.into_iter().flatten().collect())
}

/// Pods of `namespaces` (as views) and the Deployment owning each ReplicaSet.
pub async fn pods_and_owners(
    cluster: &Cluster,
    namespaces: &[String],
) -> Result<(Vec<PodView>, BTreeMap<(String, String), String>)> {
    let client = cluster.client();
    if namespaces.len() <= PER_NAMESPACE_LISTS {
        let mut pods = Vec::new();
        let mut owners = BTreeMap::new();
        for ns in namespaces {
            let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
            let (list_pods, list_rs) = (format!("list pods in namespace {ns}"), format!("list replicasets in {ns}"));
            let (more_pods, more_owners) = tokio::try_join!(
                meshkit::kube::pods::list(cluster, Some(ns), None, &list_pods, |_| true),
                crate::status::list_replica_set_owners(cluster, &rs_api, &list_rs),
            )?;
            pods.extend(more_pods);
            owners.extend(more_owners);
        }
        return Ok((pods, owners));
    }
    // Only the selected namespaces' pods are kept, page by page.
    let wanted: std::collections::BTreeSet<&str> = namespaces.iter().map(String::as_str).collect();
    let keep = |p: &PodView| wanted.contains(p.namespace.as_str());
    let rs_api: Api<ReplicaSet> = Api::all(client);
    let (pods, owners) = tokio::try_join!(
        meshkit::kube::pods::list(cluster, None, None, "list pods", keep),
        crate::status::list_replica_set_owners(cluster, &rs_api, "list replicasets"),
    )?;
    let owners = owners.into_iter().filter(|((ns, _), _)| wanted.contains(ns.as_str())).collect();
    Ok((pods, owners))
}
