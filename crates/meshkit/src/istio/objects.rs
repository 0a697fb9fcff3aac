//! Plain views of the cluster objects the model reads, and their conversions from the API types.
//!
//! The model works on these rather than on the API types so that tests can write a namespace or a
//! pod in one line, and so that fetch code decides once which fields matter.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::{LabelSelector, keys};
use crate::install::{Manager, detect_meta};

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NamespaceView {
    pub name: String,
    pub labels: Labels,
}

impl NamespaceView {
    /// Namespace `name` as found in `namespaces`; lists of labelled namespaces leave the others
    /// out, and a namespace not found there is unlabelled.
    pub fn find_in(namespaces: &[NamespaceView], name: &str) -> NamespaceView {
        namespaces
            .iter()
            .find(|n| n.name == name)
            .cloned()
            .unwrap_or_else(|| NamespaceView { name: name.to_string(), labels: Labels::new() })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// Istio's annotations only ([`keys::is_istio_key`]): what a pod holds besides (a
    /// `kubectl.kubernetes.io/last-applied-configuration` of kilobytes, other tools' notes) is
    /// dropped as the pod is decoded, so views grow with the pods' count, not their size.
    pub annotations: Labels,
    pub containers: Vec<ContainerView>,
    /// Init containers, where native sidecars (`restartPolicy: Always`) live.
    pub init_containers: Vec<ContainerView>,
    /// The node it is scheduled on.
    pub node: Option<String>,
    /// Summed container requests: CPU millicores and memory bytes.
    pub requests: Requests,
    /// Succeeded or Failed pods hold no resources.
    pub finished: bool,
    /// Being deleted (a rollout's old pods during their grace period).
    pub terminating: bool,
    /// The controller that owns it, as `(kind, name)` (a ReplicaSet for Deployment pods).
    pub owner: Option<(String, String)>,
}

/// Resource requests: CPU in millicores, memory in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Requests {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

impl Requests {
    fn of(containers: &[Container]) -> Requests {
        containers.iter().fold(Requests::default(), |sum, c| {
            let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            let get = |key: &str, parse: fn(&str) -> Option<u64>| {
                requests.and_then(|r| r.get(key)).and_then(|q| parse(&q.0)).unwrap_or(0)
            };
            Requests {
                cpu_millis: sum.cpu_millis + get("cpu", crate::quantity::cpu_millis),
                memory_bytes: sum.memory_bytes + get("memory", crate::quantity::bytes),
            }
        })
    }
}

/// An istiod Deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IstiodView {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// Image of the `discovery` container.
    pub image: Option<String>,
    pub replicas: i32,
    pub ready_replicas: i32,
    /// What one istiod pod requests.
    pub requests: Requests,
    pub manager: Manager,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookView {
    pub name: String,
    pub namespace_selector: LabelSelector,
    pub object_selector: LabelSelector,
    /// `namespace/name` of the Service it calls, if it calls a Service.
    pub service: Option<String>,
    pub url: Option<String>,
    /// istiod patches the CA in once it runs; an empty bundle means the webhook cannot be called.
    pub has_ca_bundle: bool,
    /// `failurePolicy: Fail` (the API's default): while it cannot be called, the requests it
    /// selects are refused.
    pub fails_closed: bool,
}

/// A MutatingWebhookConfiguration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookConfigView {
    pub name: String,
    pub labels: Labels,
    pub webhooks: Vec<WebhookView>,
    pub manager: Manager,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceView {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub manager: Manager,
}

impl WebhookView {
    /// Whether this entry belongs to the control plane in `istio_namespace`: it calls a Service
    /// there, or a URL (a remote or external istiod).
    pub fn served_from(&self, istio_namespace: &str) -> bool {
        self.url.is_some()
            || self.service.as_deref().and_then(|s| s.split_once('/')).is_some_and(|(ns, _)| ns == istio_namespace)
    }
}

impl WebhookConfigView {
    /// Configurations of the control plane in `istio_namespace` (see [`WebhookView::served_from`]);
    /// one without injector entries is kept, as nothing says it belongs elsewhere.
    pub fn belongs_to(&self, istio_namespace: &str) -> bool {
        let mut injectors = self.injectors().peekable();
        injectors.peek().is_none() || injectors.any(|w| w.served_from(istio_namespace))
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// The entries that inject sidecars (others, if any, are left alone).
    pub fn injectors(&self) -> impl Iterator<Item = &WebhookView> {
        self.webhooks.iter().filter(|w| w.name.ends_with(keys::INJECTOR_SUFFIX))
    }
}

fn labels_of(meta: &ObjectMeta) -> Labels {
    meta.labels.clone().unwrap_or_default()
}

fn name_of(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_default()
}

fn containers(list: Option<&Vec<Container>>) -> Vec<ContainerView> {
    list.into_iter()
        .flatten()
        .map(|c| ContainerView { name: c.name.clone(), image: c.image.clone().unwrap_or_default() })
        .collect()
}

impl From<&Namespace> for NamespaceView {
    fn from(ns: &Namespace) -> Self {
        NamespaceView { name: name_of(&ns.metadata), labels: labels_of(&ns.metadata) }
    }
}

impl From<&Pod> for PodView {
    fn from(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        PodView {
            namespace: namespace_of(&pod.metadata),
            name: name_of(&pod.metadata),
            labels: labels_of(&pod.metadata),
            annotations: pod
                .metadata
                .annotations
                .iter()
                .flatten()
                .filter(|(k, _)| keys::is_istio_key(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            containers: containers(spec.map(|s| &s.containers)),
            init_containers: containers(spec.and_then(|s| s.init_containers.as_ref())),
            node: spec.and_then(|s| s.node_name.clone()),
            requests: spec.map(|s| Requests::of(&s.containers)).unwrap_or_default(),
            owner: pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| (o.kind.clone(), o.name.clone())),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            finished: pod
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|p| p == "Succeeded" || p == "Failed"),
        }
    }
}

impl From<&Deployment> for IstiodView {
    fn from(d: &Deployment) -> Self {
        let spec = d.spec.as_ref();
        let pod_spec = spec.and_then(|s| s.template.spec.as_ref());
        let image = pod_spec
            .and_then(|p| p.containers.iter().find(|c| c.name == keys::DISCOVERY_CONTAINER))
            .and_then(|c| c.image.clone());
        IstiodView {
            namespace: namespace_of(&d.metadata),
            name: name_of(&d.metadata),
            labels: labels_of(&d.metadata),
            image,
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            ready_replicas: d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
            requests: pod_spec.map(|p| Requests::of(&p.containers)).unwrap_or_default(),
            manager: detect_meta(&d.metadata),
        }
    }
}

fn webhook_view(
    name: &str,
    namespace_selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    object_selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    client: &WebhookClientConfig,
    failure_policy: Option<&str>,
) -> WebhookView {
    WebhookView {
        fails_closed: failure_policy.is_none_or(|p| p == "Fail"),
        name: name.to_string(),
        namespace_selector: LabelSelector::from_api(namespace_selector),
        object_selector: LabelSelector::from_api(object_selector),
        service: client.service.as_ref().map(|s| format!("{}/{}", s.namespace, s.name)),
        url: client.url.clone(),
        has_ca_bundle: client.ca_bundle.as_ref().is_some_and(|b| !b.0.is_empty()),
    }
}

impl From<&MutatingWebhookConfiguration> for WebhookConfigView {
    fn from(m: &MutatingWebhookConfiguration) -> Self {
        let webhooks = m
            .webhooks
            .iter()
            .flatten()
            .map(|w| {
                let (namespaces, objects) = (w.namespace_selector.as_ref(), w.object_selector.as_ref());
                webhook_view(&w.name, namespaces, objects, &w.client_config, w.failure_policy.as_deref())
            })
            .collect();
        WebhookConfigView {
            name: name_of(&m.metadata),
            labels: labels_of(&m.metadata),
            webhooks,
            manager: detect_meta(&m.metadata),
        }
    }
}

impl From<&ValidatingWebhookConfiguration> for WebhookConfigView {
    fn from(v: &ValidatingWebhookConfiguration) -> Self {
        let webhooks = v
            .webhooks
            .iter()
            .flatten()
            .map(|w| {
                let (namespaces, objects) = (w.namespace_selector.as_ref(), w.object_selector.as_ref());
                webhook_view(&w.name, namespaces, objects, &w.client_config, w.failure_policy.as_deref())
            })
            .collect();
        WebhookConfigView {
            name: name_of(&v.metadata),
            labels: labels_of(&v.metadata),
            webhooks,
            manager: detect_meta(&v.metadata),
        }
    }
}

impl From<&Service> for ServiceView {
    fn from(s: &Service) -> Self {
        ServiceView {
            namespace: namespace_of(&s.metadata),
            name: name_of(&s.metadata),
            labels: labels_of(&s.metadata),
            manager: detect_meta(&s.metadata),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_keys_are_those_of_istio_domains() {
        for key in ["istio.io/rev", "sidecar.istio.io/status", "proxy.istio.io/config", "ambient.istio.io/redirection"]
        {
            assert!(keys::is_istio_key(key), "{key}");
        }
        for key in
            ["kubectl.kubernetes.io/last-applied-configuration", "prometheus.io/scrape", "istio-injection", "app"]
        {
            assert!(!keys::is_istio_key(key), "{key}");
        }
        assert!(!keys::is_istio_key("notistio.io/x"), "a domain that only ends in the letters");
        let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"annotations": {
            "sidecar.istio.io/inject": "false", "kubectl.kubernetes.io/last-applied-configuration": "{}"}}}))
        .unwrap();
        assert_eq!(PodView::from(&pod).annotations, Labels::from([("sidecar.istio.io/inject".into(), "false".into())]));
    }

    #[test]
    fn webhooks_belong_to_the_control_plane_they_call() {
        let entry = |service: Option<&str>, url: Option<&str>| WebhookView {
            name: "rev.namespace.sidecar-injector.istio.io".into(),
            service: service.map(str::to_string),
            url: url.map(str::to_string),
            ..Default::default()
        };
        assert!(entry(Some("istio-system/istiod"), None).served_from("istio-system"));
        assert!(!entry(Some("mesh-b/istiod"), None).served_from("istio-system"));
        assert!(entry(None, Some("https://istiod.remote:15017/inject")).served_from("istio-system"));
        let config = |entries| WebhookConfigView { name: "c".into(), webhooks: entries, ..Default::default() };
        assert!(config(vec![entry(Some("istio-system/istiod"), None)]).belongs_to("istio-system"));
        assert!(!config(vec![entry(Some("mesh-b/istiod"), None)]).belongs_to("istio-system"));
        assert!(config(vec![]).belongs_to("istio-system"), "nothing says it is someone else's");
    }
}
