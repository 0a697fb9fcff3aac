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
mod tests {
    use super::*;
    use crate::istio::{WebhookConfigView, injection_overlaps};
    use serde_json::json;

    fn canonical(revision: &str) -> MutatingWebhookConfiguration {
        serde_json::from_value(json!({
            "metadata": {"name": format!("istio-sidecar-injector-{revision}"), "labels": {
                "istio.io/rev": revision, "app": "sidecar-injector", "operator.istio.io/component": "Pilot",
                "app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/name": "istiod"}},
            "webhooks": [{
                "name": "rev.namespace.sidecar-injector.istio.io",
                "clientConfig": {"service": {"name": format!("istiod-{revision}"), "namespace": "istio-system", "path": "/inject", "port": 443}, "caBundle": "Y2E="},
                "sideEffects": "None", "admissionReviewVersions": ["v1"], "reinvocationPolicy": "IfNeeded",
            }]
        }))
        .unwrap()
    }

    fn spec(tag: &'static str) -> TagSpec<'static> {
        TagSpec { tag, revision: "1-31-1", istio_namespace: "istio-system", auto_inject: false }
    }

    #[test]
    fn tag_webhook_copies_the_injector_and_selects_the_tag() {
        let objects = build(spec("prod"), &canonical("1-31-1"), None).unwrap();
        let webhook = &objects.webhook;
        assert_eq!(webhook.metadata.name.as_deref(), Some("istio-revision-tag-prod"));
        let labels = webhook.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["istio.io/tag"], "prod");
        assert_eq!(labels["istio.io/rev"], "1-31-1");
        assert_eq!(labels["app"], "sidecar-injector");
        assert_eq!(labels["app.kubernetes.io/name"], "istiod");
        assert!(!labels.contains_key("operator.istio.io/component"), "installers must not prune a tag");
        let entries = webhook.webhooks.as_ref().unwrap();
        assert_eq!(entries.len(), 2);
        for e in entries {
            assert_eq!(e.client_config.service.as_ref().unwrap().name, "istiod-1-31-1");
            assert_eq!(e.client_config.ca_bundle.as_ref().unwrap().0, b"ca");
            assert_eq!(e.reinvocation_policy.as_deref(), Some("IfNeeded"));
            assert_eq!(e.failure_policy.as_deref(), Some("Fail"));
        }
        assert!(objects.validator.is_none());
        assert_eq!(objects.service.metadata.name.as_deref(), Some("istiod-revision-tag-prod"));
        assert_eq!(objects.service.spec.as_ref().unwrap().selector.as_ref().unwrap()["istio.io/rev"], "1-31-1");
    }

    #[test]
    fn default_tag_adds_legacy_entries_and_the_validator() {
        let objects = build(spec("default"), &canonical("1-31-1"), None).unwrap();
        let names: Vec<_> = objects.webhook.webhooks.as_ref().unwrap().iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "rev.namespace.sidecar-injector.istio.io",
                "rev.object.sidecar-injector.istio.io",
                "namespace.sidecar-injector.istio.io",
                "object.sidecar-injector.istio.io"
            ]
        );
        let validator = objects.validator.unwrap();
        assert_eq!(validator.metadata.name.as_deref(), Some("istiod-default-validator"));
        let entry = &validator.webhooks.as_ref().unwrap()[0];
        assert_eq!(entry.client_config.service.as_ref().unwrap().path.as_deref(), Some("/validate"));
        assert_eq!(entry.failure_policy.as_deref(), Some("Ignore"));
        let auto = build(TagSpec { auto_inject: true, ..spec("default") }, &canonical("1-31-1"), None).unwrap();
        assert_eq!(auto.webhook.webhooks.unwrap().len(), 5);
    }

    #[test]
    fn validator_keeps_a_failure_policy_istiod_tightened() {
        let live = build(spec("default"), &canonical("1-30-3"), None).unwrap().validator.unwrap();
        let mut tightened = live.clone();
        tightened.webhooks.as_mut().unwrap()[0].failure_policy = Some("Fail".into());
        let again = build(spec("default"), &canonical("1-31-1"), Some(&tightened)).unwrap().validator.unwrap();
        assert_eq!(again.webhooks.unwrap()[0].failure_policy.as_deref(), Some("Fail"));
        let loose = build(spec("default"), &canonical("1-31-1"), Some(&live)).unwrap().validator.unwrap();
        assert_eq!(loose.webhooks.unwrap()[0].failure_policy.as_deref(), Some("Ignore"));
    }

    #[test]
    fn url_injectors_validate_on_the_same_host() {
        let mut remote = canonical("1-31-1");
        let entry = &mut remote.webhooks.as_mut().unwrap()[0];
        entry.client_config.service = None;
        entry.client_config.url = Some("https://istiod.example:15017/inject/cluster/c1/net/n1".into());
        let objects = build(spec("default"), &remote, None).unwrap();
        let url = objects.validator.unwrap().webhooks.unwrap()[0].client_config.url.clone();
        assert_eq!(url.as_deref(), Some("https://istiod.example:15017/validate"));
        assert_eq!(
            objects.webhook.webhooks.unwrap()[0].client_config.url.as_deref(),
            Some("https://istiod.example:15017/inject/cluster/c1/net/n1")
        );
    }

    #[test]
    fn names_outside_istio_system_carry_the_namespace() {
        assert_eq!(tag_webhook_name("prod", "istio-system"), "istio-revision-tag-prod");
        assert_eq!(tag_webhook_name("prod", "mesh"), "istio-revision-tag-prod-mesh");
    }

    #[test]
    fn an_injector_without_injector_entries_is_an_error() {
        let mut empty = canonical("x");
        empty.webhooks = Some(vec![]);
        assert_eq!(build(spec("prod"), &empty, None).unwrap_err(), NoInjectorEntry("istio-sidecar-injector-x".into()));
    }

    #[test]
    fn generated_tags_never_overlap_the_revisions_injector() {
        // A revision's own injector has the entries of a tag named after the revision.
        let canonical = build(spec("1-31-1"), &canonical("1-31-1"), None).unwrap().webhook;
        let mut views = vec![WebhookConfigView::from(&canonical)];
        for tag in ["default", "prod"] {
            views.push(WebhookConfigView::from(&build(spec(tag), &canonical, None).unwrap().webhook));
        }
        let names = ["1-31-1", "default", "prod"].iter().map(|s| s.to_string()).collect();
        assert_eq!(injection_overlaps(&views, &names), []);
    }
}
