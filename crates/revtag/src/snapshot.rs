//! Fetch: the cluster objects every revtag command decides on, in a fixed number of
//! label-selected, paginated list requests sent together (never one request per namespace).

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use meshkit::Result;
use meshkit::cluster::Cluster;
use meshkit::istio::{IstiodView, Mesh, NamespaceView, PodView, ServiceView, WebhookConfigView, keys};

#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub istio_namespace: String,
    pub istiods: Vec<IstiodView>,
    /// Mutating webhook configurations labelled `istio.io/rev`, as read (set copies from them).
    pub mutating: Vec<MutatingWebhookConfiguration>,
    /// Validating webhook configurations labelled `istio.io/rev`.
    pub validating: Vec<ValidatingWebhookConfiguration>,
    pub services: Vec<ServiceView>,
    /// Namespaces carrying `istio.io/rev` or `istio-injection`, sorted by name.
    pub namespaces: Vec<NamespaceView>,
    /// Injected pods and pods carrying injection labels (only when asked for).
    pub pods: Vec<PodView>,
}

/// What to fetch beyond the control plane and the namespaces.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub validating: bool,
    pub pods: bool,
}

impl Snapshot {
    pub async fn fetch(cluster: &Cluster, needs: Needs) -> Result<Snapshot> {
        let client = cluster.client();
        let ns = cluster.istio_namespace.clone();
        let services: Api<Service> = Api::namespaced(client.clone(), &ns);
        let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let list_services = format!("list services in namespace {ns}");
        let optional_validating = async {
            if needs.validating {
                cluster.list(&validating, Some(keys::REV), "list validatingwebhookconfigurations").await
            } else {
                Ok(Vec::new())
            }
        };
        let optional_pods = async {
            if !needs.pods {
                return Ok(Vec::new());
            }
            // Injected pods, and pods asking for a revision by label (which may not be injected yet).
            let opted_in_selector = format!("{}=true", keys::SIDECAR_INJECT);
            let (injected, labelled, opted_in) = tokio::try_join!(
                meshkit::kube::pods::list(cluster, None, Some(keys::INJECTED_POD_LABEL), "list pods", |_| true),
                meshkit::kube::pods::list(cluster, None, Some(keys::REV), "list pods", |_| true),
                meshkit::kube::pods::list(cluster, None, Some(&opted_in_selector), "list pods", |_| true),
            )?;
            let mut by_key = BTreeMap::new();
            for view in injected.into_iter().chain(labelled).chain(opted_in) {
                by_key.insert((view.namespace.clone(), view.name.clone()), view);
            }
            Ok(by_key.into_values().collect())
        };
        let (istiods, mutating, validating, services, namespaces, pods) = tokio::try_join!(
            meshkit::fetch::istiods(cluster),
            cluster.list(&mutating, Some(keys::REV), "list mutatingwebhookconfigurations"),
            optional_validating,
            cluster.list(&services, Some(keys::REV), &list_services),
            meshkit::fetch::labelled_namespaces(cluster),
            optional_pods,
        )?;
        Ok(Snapshot {
            istio_namespace: ns,
            istiods,
            mutating,
            validating,
            services: services.iter().map(ServiceView::from).collect(),
            namespaces,
            pods,
        })
    }

    /// Injector configurations of this control plane (see [`WebhookConfigView::belongs_to`]).
    pub fn webhooks(&self) -> Vec<WebhookConfigView> {
        self.mutating.iter().map(WebhookConfigView::from).filter(|w| w.belongs_to(&self.istio_namespace)).collect()
    }

    pub fn mesh(&self) -> Mesh {
        Mesh::discover(&self.istiods, &self.webhooks(), &self.services)
    }
}

/// Builders for unit tests: real API objects, written compactly.
#[cfg(test)]
pub mod testing {
    use super::*;
    use serde_json::json;

    pub use meshkit::testing::istiod;

    /// An injector configuration as Istio's chart renders it for a revision (`tag: None`) or a tag.
    pub fn mwc(name: &str, revision: &str, tag: Option<&str>, service_namespace: &str) -> MutatingWebhookConfiguration {
        let selector_value = tag.unwrap_or(revision);
        let mut labels = json!({"istio.io/rev": revision, "app": "sidecar-injector"});
        if let Some(tag) = tag {
            labels["istio.io/tag"] = json!(tag);
        }
        let entry = |entry: &str, ns: serde_json::Value, obj: serde_json::Value| {
            json!({
                "name": entry,
                "clientConfig": {"service": {"name": format!("istiod-{revision}"), "namespace": service_namespace, "path": "/inject", "port": 443}, "caBundle": "Y2E="},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "reinvocationPolicy": "Never",
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
                "namespaceSelector": {"matchExpressions": ns},
                "objectSelector": {"matchExpressions": obj},
            })
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "webhooks": [
                entry("rev.namespace.sidecar-injector.istio.io",
                    json!([{"key": "istio.io/rev", "operator": "In", "values": [selector_value]}, {"key": "istio-injection", "operator": "DoesNotExist"}]),
                    json!([{"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}])),
                entry("rev.object.sidecar-injector.istio.io",
                    json!([{"key": "istio.io/rev", "operator": "DoesNotExist"}, {"key": "istio-injection", "operator": "DoesNotExist"}]),
                    json!([{"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}, {"key": "istio.io/rev", "operator": "In", "values": [selector_value]}])),
            ],
        }))
        .expect("valid MutatingWebhookConfiguration")
    }

    /// Two installed revisions with their injectors, and the `default` tag on the first.
    pub fn two_revisions() -> Snapshot {
        Snapshot {
            istio_namespace: "istio-system".into(),
            istiods: vec![istiod("1-30-3", "1.30.3"), istiod("1-31-1", "1.31.1")],
            mutating: vec![
                mwc("istio-sidecar-injector-1-30-3", "1-30-3", None, "istio-system"),
                mwc("istio-sidecar-injector-1-31-1", "1-31-1", None, "istio-system"),
                mwc("istio-revision-tag-default", "1-30-3", Some("default"), "istio-system"),
            ],
            ..Default::default()
        }
    }

    pub fn ns(name: &str, pairs: &[(&str, &str)]) -> NamespaceView {
        NamespaceView { name: name.into(), labels: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }
}
