//! What a backup holds, and reading it from the cluster: used by `create` to write an archive and
//! by `diff` to compare with one, so that both see exactly the same set of objects.
//!
//! - Istio's CRDs (and Gateway API's, whose resources are backed up too);
//! - every custom resource of every Istio or Gateway API group the server serves, discovered at
//!   run time, in every namespace;
//! - the control plane in the Istio namespace;
//! - cluster-scoped objects an install owns (webhooks, ClusterRoles and bindings), label-selected;
//! - namespaces with their injection labels: those labelled, the Istio namespace, and any that
//!   holds a backed-up object (a restore must create it first);
//! - Secrets of the Istio namespace, only when asked for.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::discovery::{Discovery, verbs};
use meshkit::archive::{ObjectKey, strip};
use meshkit::cluster::Cluster;
use meshkit::istio::keys;
use meshkit::{Error, Result};
use serde_json::{Value, json};

/// Gateway API groups: not Istio's, but Istio serves them and they are part of a mesh's config.
const GATEWAY_API_GROUPS: &[&str] = &["gateway.networking.k8s.io", "gateway.networking.x-k8s.io"];

/// Whether custom resources of this API group belong in a backup.
pub fn is_mesh_group(group: &str) -> bool {
    meshkit::istio::apis::is_istio_group(group) || GATEWAY_API_GROUPS.contains(&group)
}

/// One list request (or one per selector) feeding the backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub resource: ApiResource,
    /// `Some`: only this namespace; `None`: cluster-scoped, or every namespace.
    pub namespace: Option<String>,
    /// Objects matching any of these selectors; empty: all of them.
    pub selectors: Vec<&'static str>,
}

fn erased<K: kube::Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// The sources of a backup, given the custom resources the server serves in mesh groups.
pub fn plan(istio_namespace: &str, custom: Vec<ApiResource>, include_secrets: bool) -> Vec<Source> {
    let everywhere = |resource| Source { resource, namespace: None, selectors: vec![] };
    let in_istio = |resource| Source { resource, namespace: Some(istio_namespace.to_string()), selectors: vec![] };
    let owned = |resource| Source { resource, namespace: None, selectors: keys::INSTALL_SELECTORS.to_vec() };
    let mut sources = vec![everywhere(erased::<CustomResourceDefinition>())];
    sources.extend(
        [
            erased::<ServiceAccount>(),
            erased::<ConfigMap>(),
            erased::<Role>(),
            erased::<RoleBinding>(),
            erased::<Service>(),
            erased::<Deployment>(),
            erased::<PodDisruptionBudget>(),
            erased::<HorizontalPodAutoscaler>(),
        ]
        .into_iter()
        .map(in_istio),
    );
    if include_secrets {
        sources.push(in_istio(erased::<Secret>()));
    }
    sources.extend(
        [
            erased::<ClusterRole>(),
            erased::<ClusterRoleBinding>(),
            erased::<MutatingWebhookConfiguration>(),
            erased::<ValidatingWebhookConfiguration>(),
        ]
        .into_iter()
        .map(owned),
    );
    sources.extend(custom.into_iter().map(everywhere));
    sources
}

/// Objects a source returns that still do not belong: CRDs of other groups, ConfigMaps that
/// istiod or Kubernetes derive in every namespace, and service-account tokens Kubernetes mints.
pub fn wanted(object: &Value) -> bool {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match kind {
        "CustomResourceDefinition" => is_mesh_group(object["spec"]["group"].as_str().unwrap_or_default()),
        "ConfigMap" => !keys::DERIVED_CONFIGMAPS.contains(&name),
        "Secret" => object["type"].as_str() != Some("kubernetes.io/service-account-token"),
        _ => true,
    }
}

/// A namespace as a backup keeps it: its name and injection labels, nothing the cluster adds.
pub fn namespace_record(name: &str, labels: &BTreeMap<String, String>) -> Value {
    let injection: BTreeMap<&String, &String> =
        labels.iter().filter(|(k, _)| *k == keys::REV || *k == keys::INJECTION).collect();
    let mut metadata = json!({ "name": name });
    if !injection.is_empty() {
        metadata["labels"] = json!(injection);
    }
    json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": metadata })
}

/// Which namespaces a backup records: the labelled ones, the Istio namespace, those holding a
/// backed-up object, and `also` (those an archive names, when comparing with one).
pub fn namespaces_to_record(
    all: &BTreeMap<String, BTreeMap<String, String>>,
    istio_namespace: &str,
    holding_objects: &BTreeSet<String>,
    also: &BTreeSet<String>,
) -> Vec<Value> {
    all.iter()
        .filter(|(name, labels)| {
            labels.contains_key(keys::REV)
                || labels.contains_key(keys::INJECTION)
                || *name == istio_namespace
                || holding_objects.contains(*name)
                || also.contains(*name)
        })
        .map(|(name, labels)| namespace_record(name, labels))
        .collect()
}

/// The custom resources the server serves in mesh groups, at each group's preferred version.
pub async fn discover(cluster: &Cluster) -> Result<Vec<ApiResource>> {
    let client = cluster.client();
    let groups = cluster.call("list API groups", client.list_api_groups()).await?;
    let names: Vec<&str> = groups.groups.iter().map(|g| g.name.as_str()).filter(|g| is_mesh_group(g)).collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let discovery = cluster.call("discover the Istio API groups", Discovery::new(client).filter(&names).run()).await?;
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            if capabilities.supports_operation(verbs::LIST) {
                found.push(resource);
            }
        }
    }
    found.sort_by(|a, b| (&a.group, &a.plural).cmp(&(&b.group, &b.plural)));
    Ok(found)
}

/// Reads every source, strips each wanted object and hands it to `visit` with its resource name;
/// then the namespaces ([`namespaces_to_record`]). Objects stream page by page; `progress` hears
/// how many each source gave.
pub async fn collect(
    cluster: &Cluster,
    sources: &[Source],
    also_namespaces: &BTreeSet<String>,
    mut visit: impl FnMut(&str, Value) -> Result<()>,
    mut progress: impl FnMut(&Source, usize),
) -> Result<()> {
    let mut holding = BTreeSet::new();
    for source in sources {
        let resource = &source.resource;
        let api: Api<DynamicObject> = match &source.namespace {
            Some(ns) => Api::namespaced_with(cluster.client(), ns, resource),
            None => Api::all_with(cluster.client(), resource),
        };
        let what = format!("list {}", describe(resource));
        let selectors: Vec<Option<&str>> =
            if source.selectors.is_empty() { vec![None] } else { source.selectors.iter().map(|s| Some(*s)).collect() };
        // Several selectors can match one object; each is stored once.
        let mut seen = BTreeSet::new();
        let mut count = 0;
        for selector in selectors {
            cluster
                .list_each(&api, selector, &what, |object: DynamicObject| {
                    let mut value = serde_json::to_value(&object).map_err(|e| Error::Output(e.into()))?;
                    value["apiVersion"] = json!(resource.api_version);
                    value["kind"] = json!(resource.kind);
                    if !wanted(&value) {
                        return Ok(());
                    }
                    let key = ObjectKey::of(&value);
                    if !source.selectors.is_empty() && !seen.insert(key.name.clone()) {
                        return Ok(());
                    }
                    if !key.namespace.is_empty() {
                        holding.insert(key.namespace);
                    }
                    strip(&mut value);
                    count += 1;
                    visit(&resource.plural, value)
                })
                .await?;
        }
        progress(source, count);
    }
    let api: Api<Namespace> = Api::all(cluster.client());
    let all: BTreeMap<String, BTreeMap<String, String>> = cluster
        .list_map(&api, None, "list namespaces", |ns: &Namespace| {
            (ns.metadata.name.clone().unwrap_or_default(), ns.metadata.labels.clone().unwrap_or_default())
        })
        .await?
        .into_iter()
        .collect();
    let namespaces = namespaces_to_record(&all, &cluster.istio_namespace, &holding, also_namespaces);
    let count = namespaces.len();
    for namespace in namespaces {
        visit("namespaces", namespace)?;
    }
    progress(&Source { resource: erased::<Namespace>(), namespace: None, selectors: vec![] }, count);
    Ok(())
}

/// `virtualservices.networking.istio.io`, as kubectl names a resource.
pub fn describe(resource: &ApiResource) -> String {
    if resource.group.is_empty() { resource.plural.clone() } else { format!("{}.{}", resource.plural, resource.group) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_groups_are_istio_and_gateway_api() {
        for group in ["networking.istio.io", "security.istio.io", "extensions.istio.io", "gateway.networking.k8s.io"] {
            assert!(is_mesh_group(group), "{group}");
        }
        for group in ["", "apps", "networking.k8s.io", "evilistio.io", "istio.io.example.com"] {
            assert!(!is_mesh_group(group), "{group}");
        }
    }

    #[test]
    fn secrets_only_when_asked_and_webhooks_by_label() {
        let plan_of = |secrets| plan("mesh", vec![], secrets);
        let kinds = |sources: &[Source]| sources.iter().map(|s| s.resource.kind.clone()).collect::<Vec<_>>();
        assert!(!kinds(&plan_of(false)).contains(&"Secret".to_string()));
        let with = plan_of(true);
        let secret = with.iter().find(|s| s.resource.kind == "Secret").unwrap();
        assert_eq!(secret.namespace.as_deref(), Some("mesh"));
        let webhook = with.iter().find(|s| s.resource.kind == "ValidatingWebhookConfiguration").unwrap();
        assert_eq!((webhook.namespace.as_deref(), webhook.selectors.len()), (None, 4));
        let custom = ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
            "virtualservices",
        );
        let last = plan("mesh", vec![custom], false).pop().unwrap();
        assert_eq!((last.resource.kind.as_str(), last.namespace, last.selectors.len()), ("VirtualService", None, 0));
    }

    #[test]
    fn derived_objects_and_foreign_crds_are_left_out() {
        let crd = |group: &str| json!({"kind": "CustomResourceDefinition", "spec": {"group": group}});
        assert!(wanted(&crd("networking.istio.io")) && !wanted(&crd("cert-manager.io")));
        let config_map = |name: &str| json!({"kind": "ConfigMap", "metadata": {"name": name}});
        assert!(wanted(&config_map("istio-1-30-3")));
        assert!(!wanted(&config_map("istio-ca-root-cert")) && !wanted(&config_map("kube-root-ca.crt")));
        assert!(wanted(&json!({"kind": "Secret", "type": "Opaque"})));
        assert!(!wanted(&json!({"kind": "Secret", "type": "kubernetes.io/service-account-token"})));
    }

    #[test]
    fn namespaces_keep_only_injection_labels_and_only_the_ones_that_matter() {
        let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let all: BTreeMap<String, BTreeMap<String, String>> = [
            ("istio-system", labels(&[("kubernetes.io/metadata.name", "istio-system")])),
            ("shop", labels(&[("istio.io/rev", "1-30-3"), ("team", "a")])),
            ("legacy", labels(&[("istio-injection", "enabled")])),
            ("routes", labels(&[])),
            ("archived", labels(&[])),
            ("unrelated", labels(&[("team", "b")])),
        ]
        .into_iter()
        .map(|(n, l)| (n.to_string(), l))
        .collect();
        let holding = BTreeSet::from(["routes".to_string()]);
        let also = BTreeSet::from(["archived".to_string()]);
        let records = namespaces_to_record(&all, "istio-system", &holding, &also);
        let names: Vec<&str> = records.iter().map(|r| r["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["archived", "istio-system", "legacy", "routes", "shop"]);
        assert_eq!(
            records[4],
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"istio.io/rev": "1-30-3"}}})
        );
        assert_eq!(records[1], json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}));
    }
}
