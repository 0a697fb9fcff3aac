use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use meshkit::Error;
use meshkit::istio::tag_objects::DEFAULT_VALIDATOR;

use crate::common::validate_tag;
use crate::legacy_injector::DEACTIVATED_ANNOTATION;
use crate::remove::plan_remove;
use crate::set::{SetRequest, plan_set};
use crate::snapshot::Snapshot;
use crate::snapshot::testing::{istiod, mwc, ns, two_revisions};
use meshkit::Exit;
use meshkit::istio::PodView;

fn snapshot() -> Snapshot {
    let mut snapshot = two_revisions();
    snapshot.istiods.push(istiod("bare", "1.31.1"));
    snapshot.mutating.push(mwc("istio-revision-tag-prod", "1-30-3", Some("prod"), "istio-system"));
    snapshot.namespaces = vec![
        ns("legacy", &[("istio-injection", "enabled")]),
        ns("shadowed", &[("istio-injection", "enabled"), ("istio.io/rev", "canary")]),
        ns("on-prod", &[("istio.io/rev", "prod")]),
    ];
    snapshot
}

fn request(tag: &str, revision: &str, overwrite: bool) -> SetRequest {
    SetRequest { tag: tag.into(), revision: revision.into(), overwrite, auto_inject: false, take_ownership: false }
}

#[test]
fn creates_a_new_tag_without_asking() {
    let plan = plan_set(&snapshot(), &request("canary", "1-31-1", false), false).unwrap();
    assert_eq!(plan.previous, None);
    assert_eq!(plan.question, None);
    assert_eq!(plan.objects.webhook.metadata.name.as_deref(), Some("istio-revision-tag-canary"));
    assert!(plan.warnings.iter().any(|w| {
        w.contains("namespace shadowed is labelled istio.io/rev=canary but istio-injection=enabled wins")
    }));
}

#[test]
fn refuses_a_tag_named_like_a_revision_even_with_overwrite() {
    for overwrite in [false, true] {
        let err = plan_set(&snapshot(), &request("1-30-3", "1-31-1", overwrite), false).unwrap_err();
        assert_eq!(err.exit(), Exit::Failed);
        assert!(err.to_string().contains("a revision of that name is installed"), "{err}");
    }
}

#[test]
fn unknown_revisions_list_the_installed_ones() {
    let err = plan_set(&snapshot(), &request("x", "1-29-0", false), false).unwrap_err();
    assert_eq!(err.exit(), Exit::NotFound);
    assert_eq!(err.hint().as_deref(), Some("installed revisions: 1-30-3, 1-31-1, bare"));
    let err = plan_set(&snapshot(), &request("x", "prod", false), false).unwrap_err();
    assert_eq!(err.hint().as_deref(), Some("prod is a tag (pointing at 1-30-3); --revision takes a revision"));
}

#[test]
fn revision_needs_exactly_one_injector() {
    let err = plan_set(&snapshot(), &request("x", "bare", false), false).unwrap_err();
    assert!(err.to_string().starts_with("revision bare has no injector webhook"), "{err}");
    let mut twice = snapshot();
    twice.mutating.push(mwc("istio-sidecar-injector-1-31-1-copy", "1-31-1", None, "istio-system"));
    let err = plan_set(&twice, &request("x", "1-31-1", false), false).unwrap_err();
    assert!(err.to_string().contains("has 2 injector webhooks"), "{err}");
}

#[test]
fn moving_a_tag_needs_overwrite() {
    let err = plan_set(&snapshot(), &request("prod", "1-31-1", false), false).unwrap_err();
    assert_eq!(err.to_string(), "tag prod already points at revision 1-30-3");
    assert_eq!(err.hint().as_deref(), Some("pass --overwrite to point it at 1-31-1"));
    let plan = plan_set(&snapshot(), &request("prod", "1-31-1", true), false).unwrap();
    assert_eq!(plan.previous.as_deref(), Some("1-30-3"));
    assert_eq!(plan.question, None, "moving an ordinary tag is what --overwrite asked for");
    let same = plan_set(&snapshot(), &request("prod", "1-30-3", false), false).unwrap();
    assert_eq!(same.previous.as_deref(), Some("1-30-3"), "re-applying is idempotent and needs no flag");
}

#[test]
fn moving_default_asks_and_names_the_namespaces() {
    let plan = plan_set(&snapshot(), &request("default", "1-31-1", true), false).unwrap();
    assert_eq!(
        plan.question.as_deref(),
        Some("Move the default revision from 1-30-3 to 1-31-1 (namespaces using it: legacy, shadowed)?")
    );
    assert!(plan.objects.validator.is_some());
    assert_eq!(plan.deactivate, None);
}

#[test]
fn a_legacy_injector_is_switched_off_for_a_new_default() {
    let mut snap = snapshot();
    snap.mutating.retain(|m| m.metadata.name.as_deref() != Some("istio-revision-tag-default"));
    let mut legacy = mwc("istio-sidecar-injector", "default", None, "istio-system");
    legacy.metadata.labels.as_mut().unwrap().remove("istio.io/rev");
    legacy.metadata.labels.as_mut().unwrap().insert("istio.io/rev".into(), "default".into());
    snap.mutating.push(legacy);
    let plan = plan_set(&snap, &request("default", "1-31-1", false), false).unwrap();
    assert_eq!(plan.deactivate.as_deref(), Some("istio-sidecar-injector"));
    assert_eq!(
        plan.question.as_deref(),
        Some(
            "Switch off the legacy injector istio-sidecar-injector, which would otherwise inject alongside the new default?"
        )
    );
    let generated = plan_set(&snap, &request("default", "1-31-1", false), true).unwrap();
    assert_eq!(generated.deactivate, None, "generate changes nothing");
}

#[test]
fn refuses_double_injection_and_names_both_webhooks() {
    let mut snap = snapshot();
    // A leftover webhook that still selects `canary`.
    snap.mutating.push(mwc("istio-revision-tag-leftover", "1-30-3", Some("canary"), "istio-system"));
    snap.mutating
        .last_mut()
        .unwrap()
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("istio.io/tag".into(), "leftover".into());
    let err = plan_set(&snap, &request("canary", "1-31-1", false), false).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("setting tag canary would inject some pods twice: a pod with istio.io/rev=canary"),
        "{message}"
    );
    assert!(
        message.contains("istio-revision-tag-leftover/") && message.contains("istio-revision-tag-canary/"),
        "{message}"
    );
    let generated = plan_set(&snap, &request("canary", "1-31-1", false), true).unwrap();
    assert!(generated.warnings.iter().any(|w| w.contains("inject some pods twice")));
}

#[test]
fn remove_lists_users_and_the_objects_to_delete() {
    let mut snap = snapshot();
    snap.services.push(meshkit::istio::ServiceView {
        namespace: "istio-system".into(),
        name: "istiod-revision-tag-prod".into(),
        labels: [("istio.io/tag".to_string(), "prod".to_string()), ("istio.io/rev".to_string(), "1-30-3".to_string())]
            .into(),
        ..Default::default()
    });
    snap.pods = vec![
        PodView {
            namespace: "plain".into(),
            name: "p1".into(),
            labels: [("istio.io/rev".to_string(), "prod".to_string())].into(),
            ..Default::default()
        },
        PodView {
            namespace: "on-prod".into(),
            name: "p2".into(),
            labels: [("istio.io/rev".to_string(), "prod".to_string())].into(),
            ..Default::default()
        },
    ];
    let plan = plan_remove(&snap, "prod", false).unwrap();
    assert_eq!(plan.webhooks, ["istio-revision-tag-prod"]);
    assert_eq!(plan.services, ["istiod-revision-tag-prod"]);
    assert_eq!(plan.users, ["namespace on-prod", "pod plain/p1"], "a pod label counts only in an unlabelled namespace");
    let err = plan_remove(&snap, "nope", false).unwrap_err();
    assert_eq!(err.exit(), Exit::NotFound);
    assert_eq!(err.hint().as_deref(), Some("existing tags: default, prod"));
}

#[test]
fn remove_default_takes_the_validator_and_restores_a_switched_off_injector() {
    let mut snap = snapshot();
    snap.validating.push(
        serde_json::from_value(
            serde_json::json!({"metadata": {"name": "istiod-default-validator", "labels": {"istio.io/rev": "1-30-3"}}}),
        )
        .unwrap(),
    );
    let mut legacy = mwc("istio-sidecar-injector", "default", None, "istio-system");
    legacy.metadata.annotations = Some([(DEACTIVATED_ANNOTATION.to_string(), "[]".to_string())].into());
    snap.mutating.push(legacy);
    let plan = plan_remove(&snap, "default", false).unwrap();
    assert_eq!(plan.validators, ["istiod-default-validator"]);
    assert_eq!(plan.reactivate.as_deref(), Some("istio-sidecar-injector"));
    assert_eq!(
        plan.users,
        ["namespace legacy (istio-injection=enabled)", "namespace shadowed (istio-injection=enabled)"]
    );
}

#[test]
fn tag_names_are_dns_labels() {
    for good in ["prod", "prod-canary", "a", "1-31", &"a".repeat(63)] {
        assert!(validate_tag(good).is_ok(), "{good}");
    }
    for bad in ["", "Prod", "prod_1", "-prod", "prod-", "prod.canary", &"a".repeat(64)] {
        assert_eq!(validate_tag(bad).unwrap_err().exit(), Exit::Usage, "{bad}");
    }
}

/// Marks an object as Helm renders it into a release.
fn helm_owned(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, release: &str) {
    let annotations = meta.annotations.get_or_insert_with(Default::default);
    annotations.insert("meta.helm.sh/release-name".into(), release.into());
    annotations.insert("meta.helm.sh/release-namespace".into(), "istio-system".into());
}

fn with_helm_owned_prod() -> Snapshot {
    let mut snap = snapshot();
    let prod = snap.mutating.iter_mut().find(|m| m.metadata.name.as_deref() == Some("istio-revision-tag-prod"));
    helm_owned(&mut prod.unwrap().metadata, "istiod-1-30-3");
    snap
}

#[test]
fn a_tag_helm_renders_is_refused_naming_the_release_and_the_helm_way() {
    let snap = with_helm_owned_prod();
    for tag_change in [
        plan_set(&snap, &request("prod", "1-31-1", true), false).map(drop),
        plan_remove(&snap, "prod", false).map(drop),
    ] {
        let Err(Error::Refused { message, hint }) = tag_change else { panic!("not refused") };
        assert!(message.contains("tag prod is managed by helm:istio-system/istiod-1-30-3"), "{message}");
        assert!(hint.contains("helm upgrade istiod-1-30-3 istio/istiod -n istio-system --reuse-values"), "{hint}");
        assert!(hint.contains("--take-ownership"), "{hint}");
    }
    // Printing manifests changes nothing, so it is not refused.
    assert!(plan_set(&snap, &request("prod", "1-31-1", true), true).is_ok());
}

#[test]
fn take_ownership_hands_the_tag_over_from_its_release_and_says_what_remains() {
    let mut asked = request("prod", "1-31-1", true);
    asked.take_ownership = true;
    let plan = plan_set(&with_helm_owned_prod(), &asked, false).unwrap();
    let [handover] = plan.handovers.as_slice() else { panic!("{:?}", plan.handovers) };
    assert_eq!(handover.describe_objects(), "mutatingwebhookconfiguration/istio-revision-tag-prod");
    assert_eq!(handover.tags, ["prod"]);
    assert!(plan.warnings.iter().any(|w| w.contains("helm rollback istiod-1-30-3")), "{:?}", plan.warnings);
    let removal = plan_remove(&with_helm_owned_prod(), "prod", true).unwrap();
    assert_eq!(removal.handovers.len(), 1);
}

#[test]
fn a_gitops_owned_tag_is_refused_with_change_it_in_git() {
    let mut snap = snapshot();
    let prod =
        snap.mutating.iter_mut().find(|m| m.metadata.name.as_deref() == Some("istio-revision-tag-prod")).unwrap();
    prod.metadata.labels.as_mut().unwrap().insert("kustomize.toolkit.fluxcd.io/name".into(), "mesh".into());
    let Err(Error::Refused { hint, .. }) = plan_set(&snap, &request("prod", "1-31-1", true), false) else { panic!() };
    assert!(hint.starts_with("change it in Git: Flux Kustomization mesh"), "{hint}");
}

#[test]
fn a_helm_rendered_default_validator_is_left_to_istio_base_with_its_command() {
    let mut snap = snapshot();
    let mut validator: ValidatingWebhookConfiguration = serde_json::from_value(serde_json::json!({
        "metadata": {"name": DEFAULT_VALIDATOR, "labels": {"istio.io/rev": "1-30-3"}},
    }))
    .unwrap();
    helm_owned(&mut validator.metadata, "istio-base");
    snap.validating.push(validator);
    let plan = plan_set(&snap, &request("default", "1-31-1", true), false).unwrap();
    assert_eq!(plan.objects.validator, None);
    assert!(plan.handovers.is_empty());
    assert!(
        plan.warnings.iter().any(|w| w.contains(
            "helm upgrade istio-base istio/base -n istio-system --reuse-values --set defaultRevision=1-31-1"
        )),
        "{:?}",
        plan.warnings
    );
    let removal = plan_remove(&snap, "default", false).unwrap();
    assert!(!removal.validators.contains(&DEFAULT_VALIDATOR.to_string()));
}
