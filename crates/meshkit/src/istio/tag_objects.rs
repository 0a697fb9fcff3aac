//! The objects that make a revision tag, derived from the revision's own injector webhook exactly
//! as Istio's `revision-tags` chart templates and `istioctl tag` derive them: the tag's
//! MutatingWebhookConfiguration, its Service (Istio 1.28+ records tags as Services too) and, for
//! `default`, the `istiod-default-validator` ValidatingWebhookConfiguration.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhook,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::keys;

pub const DEFAULT_VALIDATOR: &str = "istiod-default-validator";
pub const DEFAULT_ISTIO_NAMESPACE: &str = "istio-system";
/// Who we are in `managedFields` and in the `app.kubernetes.io/managed-by` label.
pub const MANAGER: &str = "kubectl-revtag";

#[derive(Debug, Clone, PartialEq)]
pub struct TagObjects {
    pub webhook: MutatingWebhookConfiguration,
    pub service: Service,
    /// Only for the `default` tag.
    pub validator: Option<ValidatingWebhookConfiguration>,
}

/// What to build a tag from.
#[derive(Debug, Clone, Copy)]
pub struct TagSpec<'a> {
    pub tag: &'a str,
    pub revision: &'a str,
    pub istio_namespace: &'a str,
    /// Inject pods in unlabelled namespaces too (`default` only; Istio's `enableNamespacesByDefault`).
    pub auto_inject: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook configuration {0} has no sidecar-injector entry to copy the injector's address from")]
pub struct NoInjectorEntry(pub String);

/// Why a revision's own injector configuration, the one its tags copy, cannot be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalInjectorError {
    #[error(
        "revision {revision} has no injector webhook (a MutatingWebhookConfiguration labelled istio.io/rev={revision} without istio.io/tag)"
    )]
    Missing { revision: String },
    #[error("revision {revision} has {} injector webhooks ({}); cannot tell which to copy", names.len(), names.join(", "))]
    Several { revision: String, names: Vec<String> },
}

/// The injector configuration of `revision` that a tag copies, as `istioctl tag` chooses it: the
/// one labelled `istio.io/rev=REVISION` and no `istio.io/tag`, of the control plane in
/// `istio_namespace` (see [`super::WebhookConfigView::belongs_to`]).
pub fn canonical_injector<'a>(
    configs: &'a [MutatingWebhookConfiguration],
    revision: &str,
    istio_namespace: &str,
) -> Result<&'a MutatingWebhookConfiguration, CanonicalInjectorError> {
    let found: Vec<&MutatingWebhookConfiguration> = configs
        .iter()
        .filter(|m| {
            let labels = m.metadata.labels.as_ref();
            labels.and_then(|l| l.get(keys::REV)).map(String::as_str) == Some(revision)
                && !labels.is_some_and(|l| l.contains_key(keys::TAG))
                && super::WebhookConfigView::from(*m).belongs_to(istio_namespace)
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(CanonicalInjectorError::Missing { revision: revision.to_string() }),
        several => Err(CanonicalInjectorError::Several {
            revision: revision.to_string(),
            names: several.iter().filter_map(|m| m.metadata.name.clone()).collect(),
        }),
    }
}

pub fn tag_webhook_name(tag: &str, istio_namespace: &str) -> String {
    if istio_namespace == DEFAULT_ISTIO_NAMESPACE {
        format!("istio-revision-tag-{tag}")
    } else {
        format!("istio-revision-tag-{tag}-{istio_namespace}")
    }
}

pub fn tag_service_name(tag: &str) -> String {
    format!("istiod-revision-tag-{tag}")
}

fn requirement(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.to_string(),
        operator: operator.to_string(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

fn selector(requirements: Vec<LabelSelectorRequirement>) -> Option<LabelSelector> {
    Some(LabelSelector { match_expressions: Some(requirements), match_labels: None })
}

/// Labels copied from the revision's injector, minus those that would make an installer prune
/// the tag (`operator.istio.io`), or claim it for Helm.
fn copied_labels(canonical: &ObjectMeta) -> BTreeMap<String, String> {
    canonical
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| {
            k.as_str() != keys::APP
                && !k.contains("operator.istio.io")
                && !matches!(
                    k.as_str(),
                    "app.kubernetes.io/managed-by" | "app.kubernetes.io/instance" | "helm.sh/chart" | "release"
                )
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub fn build(
    spec: TagSpec<'_>,
    canonical: &MutatingWebhookConfiguration,
    live_validator: Option<&ValidatingWebhookConfiguration>,
) -> Result<TagObjects, NoInjectorEntry> {
    let name = canonical.metadata.name.clone().unwrap_or_default();
    let template = canonical
        .webhooks
        .iter()
        .flatten()
        .find(|w| w.name.ends_with(keys::INJECTOR_SUFFIX))
        .ok_or_else(|| NoInjectorEntry(name.clone()))?;
    let client_config = template.client_config.clone();

    let mut labels = copied_labels(&canonical.metadata);
    labels.insert(keys::TAG.into(), spec.tag.into());
    labels.insert(keys::REV.into(), spec.revision.into());
    labels.insert(keys::APP.into(), "sidecar-injector".into());
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());

    let entry = |entry: &str, namespace_selector, object_selector| MutatingWebhook {
        name: entry.to_string(),
        admission_review_versions: vec!["v1".into()],
        client_config: client_config.clone(),
        failure_policy: Some("Fail".into()),
        reinvocation_policy: template.reinvocation_policy.clone(),
        rules: Some(vec![RuleWithOperations {
            operations: Some(vec!["CREATE".into()]),
            api_groups: Some(vec![String::new()]),
            api_versions: Some(vec!["v1".into()]),
            resources: Some(vec!["pods".into()]),
            scope: None,
        }]),
        side_effects: "None".into(),
        namespace_selector,
        object_selector,
        ..Default::default()
    };
    let tag = spec.tag;
    let not_opted_out = || requirement(keys::SIDECAR_INJECT, "NotIn", &["false"]);
    let mut webhooks = vec![
        entry(
            "rev.namespace.sidecar-injector.istio.io",
            selector(vec![requirement(keys::REV, "In", &[tag]), requirement(keys::INJECTION, "DoesNotExist", &[])]),
            selector(vec![not_opted_out()]),
        ),
        entry(
            "rev.object.sidecar-injector.istio.io",
            selector(vec![
                requirement(keys::REV, "DoesNotExist", &[]),
                requirement(keys::INJECTION, "DoesNotExist", &[]),
            ]),
            selector(vec![not_opted_out(), requirement(keys::REV, "In", &[tag])]),
        ),
    ];
    if tag == keys::DEFAULT_TAG {
        webhooks.push(entry(
            "namespace.sidecar-injector.istio.io",
            selector(vec![requirement(keys::INJECTION, "In", &["enabled"])]),
            selector(vec![not_opted_out()]),
        ));
        webhooks.push(entry(
            "object.sidecar-injector.istio.io",
            selector(vec![
                requirement(keys::INJECTION, "DoesNotExist", &[]),
                requirement(keys::REV, "DoesNotExist", &[]),
            ]),
            selector(vec![
                requirement(keys::SIDECAR_INJECT, "In", &["true"]),
                requirement(keys::REV, "DoesNotExist", &[]),
            ]),
        ));
        if spec.auto_inject {
            webhooks.push(entry(
                "auto.sidecar-injector.istio.io",
                selector(vec![
                    requirement(keys::INJECTION, "DoesNotExist", &[]),
                    requirement(keys::REV, "DoesNotExist", &[]),
                    requirement("kubernetes.io/metadata.name", "NotIn", &keys::NEVER_INJECTED_NAMESPACES),
                ]),
                selector(vec![
                    requirement(keys::SIDECAR_INJECT, "DoesNotExist", &[]),
                    requirement(keys::REV, "DoesNotExist", &[]),
                ]),
            ));
        }
    }
    let webhook = MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(tag_webhook_name(tag, spec.istio_namespace)),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        webhooks: Some(webhooks),
    };

    let service = tag_service(spec);
    let validator = (tag == keys::DEFAULT_TAG).then(|| default_validator(spec, &client_config, live_validator));
    Ok(TagObjects { webhook, service, validator })
}

fn tag_service(spec: TagSpec<'_>) -> Service {
    let labels: BTreeMap<String, String> = [
        (keys::REV, spec.revision),
        (keys::TAG, spec.tag),
        (keys::APP, "istiod"),
        ("istio", "pilot"),
        ("app.kubernetes.io/managed-by", MANAGER),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut selector = BTreeMap::from([(keys::APP.to_string(), "istiod".to_string())]);
    if spec.revision == keys::DEFAULT_REVISION {
        selector.insert("istio".into(), "pilot".into());
    } else {
        selector.insert(keys::REV.into(), spec.revision.into());
    }
    let port = |name: &str, port: i32, target: Option<i32>| ServicePort {
        name: Some(name.into()),
        port,
        protocol: Some("TCP".into()),
        target_port: target.map(IntOrString::Int),
        ..Default::default()
    };
    Service {
        metadata: ObjectMeta {
            name: Some(tag_service_name(spec.tag)),
            namespace: Some(spec.istio_namespace.into()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(vec![
                port("grpc-xds", 15010, None),
                port("https-dns", 15012, None),
                port("https-webhook", 443, Some(15017)),
                port("http-monitoring", 15014, None),
            ]),
            selector: Some(selector),
            ..Default::default()
        }),
        status: None,
    }
}

/// Validation for objects without an `istio.io/rev` label goes to the default revision.
fn default_validator(
    spec: TagSpec<'_>,
    injector: &WebhookClientConfig,
    live: Option<&ValidatingWebhookConfiguration>,
) -> ValidatingWebhookConfiguration {
    let mut client_config = injector.clone();
    if let Some(service) = client_config.service.as_mut() {
        service.path = Some("/validate".into());
    }
    if let Some(url) = client_config.url.as_mut() {
        // Same host, the validation path.
        let base = url.split("://").nth(1).and_then(|rest| rest.find('/').map(|i| url.len() - rest.len() + i));
        if let Some(end) = base {
            url.truncate(end);
        }
        url.push_str("/validate");
    }
    // Until istiod has proven it can validate, Istio fails open; keep whatever the live object says
    // so that we never loosen a validator istiod already switched to Fail.
    let live_policy = live.and_then(|v| v.webhooks.as_ref()?.first()?.failure_policy.clone());
    let failure_policy = match live_policy.as_deref() {
        Some("Fail") => Some("Fail".to_string()),
        _ => Some("Ignore".to_string()),
    };
    let labels: BTreeMap<String, String> = [
        (keys::APP, "istiod"),
        ("istio", "istiod"),
        (keys::REV, spec.revision),
        (keys::TAG, keys::DEFAULT_TAG),
        ("app.kubernetes.io/managed-by", MANAGER),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta { name: Some(DEFAULT_VALIDATOR.into()), labels: Some(labels), ..Default::default() },
        webhooks: Some(vec![ValidatingWebhook {
            name: "validation.istio.io".into(),
            admission_review_versions: vec!["v1".into()],
            client_config,
            failure_policy,
            rules: Some(vec![RuleWithOperations {
                operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                api_groups: Some(
                    ["security.istio.io", "networking.istio.io", "telemetry.istio.io", "extensions.istio.io"]
                        .iter()
                        .map(|g| g.to_string())
                        .collect(),
                ),
                api_versions: Some(vec!["*".into()]),
                resources: Some(vec!["*".into()]),
                scope: None,
            }]),
            side_effects: "None".into(),
            object_selector: selector(vec![requirement(keys::REV, "DoesNotExist", &[])]),
            ..Default::default()
        }]),
    }
}

#[cfg(test)]
#[path = "tag_objects_tests.rs"]
mod tests;
