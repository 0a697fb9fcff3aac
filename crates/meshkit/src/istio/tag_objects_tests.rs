//! Tests of the tag objects built from a revision's injector.

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

#[test]
fn the_canonical_injector_is_the_revisions_own_of_this_control_plane() {
    let own = canonical("1-31-1");
    let tag = build(spec("prod"), &own, None).unwrap().webhook;
    let mut elsewhere = canonical("1-31-1");
    elsewhere.metadata.name = Some("istio-sidecar-injector-1-31-1-other".into());
    for entry in elsewhere.webhooks.iter_mut().flatten() {
        entry.client_config.service.as_mut().unwrap().namespace = "other-mesh".into();
    }
    let configs = [tag.clone(), elsewhere.clone(), canonical("1-30-3"), own.clone()];
    assert_eq!(canonical_injector(&configs, "1-31-1", "istio-system"), Ok(&own), "not the tag, not the other mesh's");
    assert_eq!(canonical_injector(&configs, "1-31-1", "other-mesh"), Ok(&elsewhere));
    assert_eq!(
        canonical_injector(&[tag], "1-31-1", "istio-system").unwrap_err().to_string(),
        "revision 1-31-1 has no injector webhook (a MutatingWebhookConfiguration labelled istio.io/rev=1-31-1 without istio.io/tag)"
    );
    let mut copy = own.clone();
    copy.metadata.name = Some("stray".into());
    assert_eq!(
        canonical_injector(&[own, copy], "1-31-1", "istio-system").unwrap_err(),
        CanonicalInjectorError::Several {
            revision: "1-31-1".into(),
            names: vec!["istio-sidecar-injector-1-31-1".into(), "stray".into()]
        }
    );
}
