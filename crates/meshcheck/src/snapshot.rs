//! Fetch: one paginated, label-selected list per kind, sent together; plus the review of the
//! permissions an upgrade needs (`crate::permissions`).

use std::collections::BTreeMap;

use futures::{StreamExt, stream};
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use meshkit::cluster::Cluster;
use meshkit::istio::injects::Injects;
use meshkit::istio::proxy_status::LiveStatus;
use meshkit::istio::{IstiodView, Mesh, NamespaceView, PodView, Requests, ServiceView, WebhookConfigView, keys};
use meshkit::quantity;
use meshkit::{Error, Result};

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub istio_namespace: String,
    /// `(major, minor)` of the apiserver.
    pub kubernetes: Option<(u64, u64)>,
    pub kubernetes_version: String,
    pub istiods: Vec<IstiodView>,
    /// What each revision injects now (its injector ConfigMap's values).
    pub injects: Vec<Injects>,
    pub mutating: Vec<WebhookConfigView>,
    pub validating: Vec<WebhookConfigView>,
    /// Every Service in the Istio namespace.
    pub services: Vec<ServiceView>,
    /// Ready endpoints per Service name in the Istio namespace.
    pub ready_endpoints: BTreeMap<String, usize>,
    /// Namespaces carrying `istio.io/rev` or `istio-injection`.
    pub namespaces: Vec<NamespaceView>,
    pub pods: Vec<PodView>,
    /// `None` when permissions were not asked for or the review API could not be used.
    pub permissions: Option<Vec<crate::permissions::Permission>>,
    /// Data only some checks need is `Err(reason)` when we may not read it: those checks are
    /// skipped with the reason instead of failing the whole run.
    pub nodes: Partial<Vec<NodeView>>,
    /// CustomResourceDefinitions of the Gateway API.
    pub gateway_crds: Partial<Vec<CrdView>>,
    /// CustomResourceDefinitions in Istio's API groups.
    pub istio_crds: Partial<Vec<CrdView>>,
    /// Helm releases in the Istio namespace (from their release Secrets' labels, not contents).
    pub helm_releases: Partial<Vec<String>>,
    /// `namespace/name` of IstioOperator resources.
    pub istio_operators: Partial<Vec<String>>,
    /// Every Istio custom resource, with the API versions it was written as.
    pub istio_objects: Partial<Vec<WrittenObject>>,
    /// What every istiod says about its connected proxies (`verify` reads it; `None` when not
    /// asked for).
    pub live: Option<LiveStatus>,
}

/// An Istio custom resource and the API versions its writers used: one per `managedFields` entry
/// (they survive `kubectl patch` and server-side apply) and the last-applied annotation's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WrittenObject {
    /// The CRD name, e.g. `virtualservices.networking.istio.io`.
    pub crd: String,
    pub namespace: String,
    pub name: String,
    /// `(apiVersion, writer)`: the field manager, or `last-applied`.
    pub written: Vec<(String, String)>,
}

/// Data that may be forbidden to us: the value, or why we could not read it.
pub type Partial<T> = std::result::Result<T, String>;

/// A forbidden read becomes a reason; anything else is still an error.
fn partial<T>(outcome: Result<T>) -> Result<Partial<T>> {
    match outcome {
        Ok(value) => Ok(Ok(value)),
        Err(Error::Forbidden { action, .. }) => Ok(Err(format!("not allowed to {action}"))),
        Err(e) => Err(e),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub allocatable: Requests,
    pub schedulable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrdView {
    /// The kind, e.g. `HTTPRoute`.
    pub kind: String,
    pub group: String,
    pub served: Vec<String>,
    /// The `gateway.networking.k8s.io/bundle-version` annotation.
    pub bundle_version: Option<String>,
    /// `status.storedVersions`: versions objects may still be stored in etcd as.
    pub stored: Vec<String>,
    pub name: String,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub permissions: bool,
    /// Every pod, not only injected ones (checks for missing sidecars need the others too).
    pub all_pods: bool,
    /// Nodes, CRDs, Helm releases and IstioOperators (the checks read them; `version` does not).
    pub inventory: bool,
    /// The live proxy status from every istiod.
    pub live: bool,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            istio_namespace: String::new(),
            kubernetes: None,
            kubernetes_version: String::new(),
            istiods: Vec::new(),
            injects: Vec::new(),
            mutating: Vec::new(),
            validating: Vec::new(),
            services: Vec::new(),
            ready_endpoints: BTreeMap::new(),
            namespaces: Vec::new(),
            pods: Vec::new(),
            permissions: None,
            nodes: Ok(Vec::new()),
            gateway_crds: Ok(Vec::new()),
            istio_crds: Ok(Vec::new()),
            helm_releases: Ok(Vec::new()),
            istio_operators: Ok(Vec::new()),
            istio_objects: Ok(Vec::new()),
            live: None,
        }
    }
}

impl Snapshot {
    pub async fn fetch(cluster: &Cluster, needs: Needs) -> Result<Snapshot> {
        let client = cluster.client();
        let ns = cluster.istio_namespace.clone();
        let services: Api<Service> = Api::namespaced(client.clone(), &ns);
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
        let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let what = |kind: &str| format!("list {kind} in namespace {ns}");
        let (list_services, list_slices) = (what("services"), what("endpointslices"));
        let permissions =
            async { if needs.permissions { Ok(Some(crate::permissions::review(cluster).await?)) } else { Ok(None) } };
        let nodes_api: Api<Node> = Api::all(client.clone());
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let iop_resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("install.istio.io", "v1alpha1", "IstioOperator"),
            "istiooperators",
        );
        let iops: Api<DynamicObject> = Api::all_with(client.clone(), &iop_resource);
        let list_secrets = what("secrets");
        let helm_secrets = ListParams::default().labels("owner=helm");
        let all_operators = ListParams::default();
        let extras = async {
            if !needs.inventory {
                return Ok((Ok(Vec::new()), Ok(Vec::new()), Ok(Vec::new()), Ok(Vec::new())));
            }
            let (nodes, crds, releases, operators) = tokio::join!(
                cluster.list(&nodes_api, None, "list nodes"),
                cluster.list(&crds, None, "list customresourcedefinitions"),
                cluster.call(&list_secrets, secrets.list_metadata(&helm_secrets)),
                cluster.call("list istiooperators", iops.list(&all_operators)),
            );
            // The IstioOperator kind only exists where its CRD is still installed.
            let operators = match operators {
                Err(Error::Api { code: 404, .. }) => Ok(Vec::new()),
                other => other.map(|list| list.items),
            };
            Ok::<_, Error>((partial(nodes)?, partial(crds)?, partial(releases.map(|r| r.items))?, partial(operators)?))
        };
        let live = async { Ok(if needs.live { Some(meshkit::fetch::live_status(cluster).await) } else { None }) };
        let (
            version,
            istiods,
            mutating,
            validating,
            services,
            slices,
            namespaces,
            pods,
            permissions,
            extras,
            injects,
            live,
        ) = tokio::try_join!(
            cluster.call("read the server version", client.apiserver_version()),
            meshkit::fetch::istiods(cluster),
            cluster.list(&mutating, Some(keys::REV), "list mutatingwebhookconfigurations"),
            cluster.list(&validating, Some(keys::REV), "list validatingwebhookconfigurations"),
            cluster.list(&services, None, &list_services),
            cluster.list(&slices, None, &list_slices),
            meshkit::fetch::labelled_namespaces(cluster),
            meshkit::kube::pods::list(
                cluster,
                None,
                (!needs.all_pods).then_some(keys::INJECTED_POD_LABEL),
                "list pods",
                |_| true
            ),
            permissions,
            extras,
            meshkit::fetch::injects(cluster),
            live,
        )?;
        let (nodes, crds, releases, operators) = extras;
        let istio_crds: Partial<Vec<CrdView>> = crds
            .as_ref()
            .map(|crds| {
                crds.iter().filter(|c| meshkit::istio::apis::is_istio_group(&c.spec.group)).map(crd_view).collect()
            })
            .map_err(Clone::clone);
        let istio_objects = match &istio_crds {
            Ok(crds) if needs.inventory => partial(written_objects(cluster, crds).await)?,
            Ok(_) => Ok(Vec::new()),
            Err(why) => Err(why.clone()),
        };
        let mut ready_endpoints: BTreeMap<String, usize> = BTreeMap::new();
        for slice in &slices {
            let Some(service) = slice.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name")) else {
                continue;
            };
            let ready = slice
                .endpoints
                .iter()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false) && !e.addresses.is_empty())
                .count();
            *ready_endpoints.entry(service.clone()).or_default() += ready;
        }
        let minor = version.minor.trim_end_matches('+').parse().ok();
        let major = version.major.parse().ok();
        Ok(Snapshot {
            istio_namespace: ns,
            kubernetes: major.zip(minor),
            kubernetes_version: version.git_version,
            istiods,
            injects,
            mutating: mutating.iter().map(WebhookConfigView::from).collect(),
            validating: validating.iter().map(WebhookConfigView::from).collect(),
            services: services.iter().map(ServiceView::from).collect(),
            ready_endpoints,
            namespaces,
            pods,
            permissions,
            nodes: nodes.map(|nodes| nodes.iter().map(node_view).collect()),
            gateway_crds: crds
                .as_ref()
                .map(|crds| crds.iter().filter(|c| c.spec.group == "gateway.networking.k8s.io").map(crd_view).collect())
                .map_err(Clone::clone),
            istio_crds,
            istio_objects,
            live,
            helm_releases: releases.map(|releases| {
                let mut names: Vec<String> =
                    releases.iter().filter_map(|s| s.metadata.labels.as_ref()?.get("name").cloned()).collect();
                names.sort();
                names.dedup();
                names
            }),
            istio_operators: operators.map(|operators| {
                operators
                    .iter()
                    .map(|o| {
                        format!(
                            "{}/{}",
                            o.metadata.namespace.clone().unwrap_or_default(),
                            o.metadata.name.clone().unwrap_or_default()
                        )
                    })
                    .collect()
            }),
        })
    }

    /// This control plane's mesh: injector configurations of another control plane in the
    /// cluster are left out of it (the overlap checks still see them in `mutating`).
    pub fn mesh(&self) -> Mesh {
        let ours: Vec<WebhookConfigView> =
            self.mutating.iter().filter(|w| w.belongs_to(&self.istio_namespace)).cloned().collect();
        Mesh::discover(&self.istiods, &ours, &self.services).with_injects(self.injects.iter().cloned())
    }
}

fn node_view(node: &Node) -> NodeView {
    let allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
    let get = |key: &str, parse: fn(&str) -> Option<u64>| {
        allocatable.and_then(|a| a.get(key)).and_then(|q| parse(&q.0)).unwrap_or(0)
    };
    NodeView {
        name: node.metadata.name.clone().unwrap_or_default(),
        allocatable: Requests {
            cpu_millis: get("cpu", quantity::cpu_millis),
            memory_bytes: get("memory", quantity::bytes),
        },
        schedulable: !node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false),
    }
}

fn crd_view(crd: &CustomResourceDefinition) -> CrdView {
    CrdView {
        kind: crd.spec.names.kind.clone(),
        group: crd.spec.group.clone(),
        served: crd.spec.versions.iter().filter(|v| v.served).map(|v| v.name.clone()).collect(),
        bundle_version: crd
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("gateway.networking.k8s.io/bundle-version"))
            .cloned(),
        stored: crd.status.as_ref().and_then(|s| s.stored_versions.clone()).unwrap_or_default(),
        name: crd.metadata.name.clone().unwrap_or_default(),
    }
}

/// Every object of each Istio CRD: one paginated metadata-only list per kind, four kinds at a time.
async fn written_objects(cluster: &Cluster, crds: &[CrdView]) -> Result<Vec<WrittenObject>> {
    let lists = stream::iter(crds.iter().filter(|c| !c.served.is_empty()).map(|crd| async move {
        let version = crd.served.first().cloned().unwrap_or_default();
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(&crd.group, &version, &crd.kind),
            crd.name.split('.').next().unwrap_or_default(),
        );
        let api: Api<DynamicObject> = Api::all_with(cluster.client(), &resource);
        let what = format!("list {}", crd.name);
        let mut params = ListParams::default().limit(500);
        let mut objects = Vec::new();
        loop {
            let page = cluster.call(&what, api.list_metadata(&params)).await?;
            objects.extend(page.items.iter().map(|o| written_object(&crd.name, &o.metadata)));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok::<_, Error>(objects),
            }
        }
    }))
    .buffer_unordered(4)
    .collect::<Vec<_>>()
    .await;
    Ok(lists.into_iter().collect::<Result<Vec<_>>>()?.into_iter().flatten().collect())
}

fn written_object(crd: &str, meta: &ObjectMeta) -> WrittenObject {
    let mut written: Vec<(String, String)> = meta
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| Some((f.api_version.clone()?, f.manager.clone().unwrap_or_else(|| "unknown".into()))))
        .collect();
    let last_applied =
        meta.annotations.as_ref().and_then(|a| a.get("kubectl.kubernetes.io/last-applied-configuration"));
    if let Some(api_version) = last_applied
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .and_then(|v| v["apiVersion"].as_str().map(String::from))
    {
        written.push((api_version, "last-applied".into()));
    }
    written.sort();
    written.dedup();
    WrittenObject {
        crd: crd.to_string(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        written,
    }
}
