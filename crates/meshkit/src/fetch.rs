//! Fetches every plugin needs, written once.

use std::collections::BTreeMap;

use futures::{StreamExt, stream};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::Api;

use crate::cluster::Cluster;
use crate::error::Result;
use crate::istio::injects::{Injects, RevisionConfig};
use crate::istio::proxy_status::{IstiodReading, LiveStatus, parse_syncz};
use crate::istio::{IstiodView, Mesh, NamespaceView, ServiceView, WebhookConfigView, keys};
use crate::kube::portforward;

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

/// What [`Mesh::discover`] reads, as views: istiod Deployments, revision webhooks and the
/// revision Services of the Istio namespace, in three lists sent together.
#[derive(Debug, Clone, Default)]
pub struct ControlPlane {
    pub istiods: Vec<IstiodView>,
    /// Injector configurations of this control plane (see [`WebhookConfigView::belongs_to`]).
    pub webhooks: Vec<WebhookConfigView>,
    /// Revision-labelled injector configurations of another control plane in the cluster: not
    /// part of this mesh, but the apiserver calls them too.
    pub foreign_webhooks: Vec<WebhookConfigView>,
    pub services: Vec<ServiceView>,
    /// What each revision injects now; empty when the injector ConfigMaps may not be read.
    pub injects: Vec<Injects>,
}

impl ControlPlane {
    pub fn mesh(&self) -> Mesh {
        Mesh::discover(&self.istiods, &self.webhooks, &self.services).with_injects(self.injects.iter().cloned())
    }
}

/// Each revision's injector values, from the revision-labelled ConfigMaps of the Istio namespace
/// (one list). Without permission to read ConfigMaps there, staleness by image is not known and
/// only staleness by revision is reported.
pub async fn injects(cluster: &Cluster) -> Result<Vec<Injects>> {
    let ns = &cluster.istio_namespace;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), ns);
    let what = format!("list configmaps in namespace {ns}");
    match cluster.list_map(&api, Some(keys::REV), &what, RevisionConfig::from_config_map).await {
        Ok(found) => Ok(RevisionConfig::merge(found.into_iter().flatten())),
        Err(crate::Error::Forbidden { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

pub async fn control_plane(cluster: &Cluster) -> Result<ControlPlane> {
    let ns = &cluster.istio_namespace;
    let services: Api<Service> = Api::namespaced(cluster.client(), ns);
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(cluster.client());
    let list_services = format!("list services in namespace {ns}");
    let (istiods, webhooks, services, injects) = tokio::try_join!(
        istiods(cluster),
        cluster.list_map(
            &webhooks,
            Some(keys::REV),
            "list mutatingwebhookconfigurations",
            |w: &MutatingWebhookConfiguration| { WebhookConfigView::from(w) }
        ),
        cluster.list_map(&services, Some(keys::REV), &list_services, |s: &Service| ServiceView::from(s)),
        injects(cluster),
    )?;
    let (webhooks, foreign_webhooks) = webhooks.into_iter().partition(|w| w.belongs_to(ns));
    Ok(ControlPlane { istiods, webhooks, foreign_webhooks, services, injects })
}

/// istiod's debug port: `/debug/syncz` there answers requests that arrive on the pod's loopback,
/// which is where a port-forward lands.
pub const ISTIOD_DEBUG_PORT: u16 = 8080;
/// How many istiods are read at once.
const CONCURRENT_ISTIOD_READS: usize = 4;

/// The live proxy status: one port-forwarded `GET /debug/syncz` per running istiod pod of the
/// Istio namespace (never one per proxy), read together. An istiod that cannot be read, or a
/// refused list of istiod pods, becomes a reason in [`LiveStatus::unreadable`], never an error:
/// the commands fall back to what pod specs say.
pub async fn live_status(cluster: &Cluster) -> LiveStatus {
    let ns = &cluster.istio_namespace;
    let api: Api<Pod> = Api::namespaced(cluster.client(), ns);
    let what = format!("list pods in namespace {ns}");
    let pods = match cluster.list(&api, Some(keys::ISTIOD_SELECTOR), &what).await {
        Ok(pods) => pods,
        Err(e) => {
            return LiveStatus {
                unreadable: vec![(format!("the istiod pods of {ns}"), e.to_string())],
                ..LiveStatus::default()
            };
        }
    };
    let running = pods.into_iter().filter(|p| {
        p.metadata.deletion_timestamp.is_none() && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    });
    let readings: Vec<IstiodReading> = stream::iter(running.map(|pod| async move {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let revision = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(keys::REV))
            .cloned()
            .unwrap_or_else(|| keys::DEFAULT_REVISION.to_string());
        let outcome = match portforward::get(cluster, ns, &name, ISTIOD_DEBUG_PORT, "/debug/syncz").await {
            Ok(body) => parse_syncz(&body),
            Err(e) if e.is_forbidden() => Err(format!("not allowed to create pods/portforward in namespace {ns}")),
            Err(e) => Err(e.to_string()),
        };
        IstiodReading { pod: name, revision, outcome }
    }))
    .buffer_unordered(CONCURRENT_ISTIOD_READS)
    .collect()
    .await;
    LiveStatus::from_readings(readings, k8s_openapi::jiff::Timestamp::now())
}
