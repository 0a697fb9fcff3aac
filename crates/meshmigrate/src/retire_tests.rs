use super::*;
use crate::retire_owned::{OWNED, belongs, releases};
use meshkit::Exit;
use meshkit::istio::proxy_status::{IstiodReading, parse_syncz};
use meshkit::testing::{istiod, labels};
use serde_json::Value;

use meshkit::testing::tag_webhook as tag;

fn owned(kind_index: usize, name: &str) -> Owned {
    let namespaced = OWNED[kind_index].4;
    Owned {
        kind_index,
        kind: OWNED[kind_index].2.into(),
        namespace: namespaced.then(|| "istio-system".into()),
        name: name.into(),
        object: Value::Null,
    }
}

/// 1-30-3 is the default and has `prod-stable`; 1-31-1 is the canary with nothing left on it.
fn snapshot() -> Snapshot {
    Snapshot {
        mesh: Mesh::discover(
            &[istiod("1-30-3", "1.30.3"), istiod("1-31-1", "1.31.1")],
            &[tag("default", "1-30-3"), tag("prod-stable", "1-30-3")],
            &[],
        ),
        namespaces: vec![
            NamespaceView { name: "shop".into(), labels: labels(&[("istio.io/rev", "prod-stable")]) },
            NamespaceView { name: "legacy".into(), labels: labels(&[("istio-injection", "enabled")]) },
        ],
        owned: vec![
            owned(11, "istio-1-31-1"),
            owned(7, "istiod-1-31-1"),
            owned(3, "istiod-clusterrole-1-31-1"),
            owned(0, "istio-sidecar-injector-1-31-1"),
        ],
        ..Default::default()
    }
}

#[test]
fn an_unused_revision_is_deleted_webhooks_first_shared_things_last() {
    let Decision::Retire(order) = decide("1-31-1", &snapshot()).unwrap() else { panic!("expected a retirement") };
    let names: Vec<&str> = order.delete.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["istio-sidecar-injector-1-31-1", "istiod-clusterrole-1-31-1", "istiod-1-31-1", "istio-1-31-1"]);
}

#[test]
fn every_kind_of_user_refuses() {
    let refused = |snapshot: &Snapshot, revision: &str| {
        let err = decide(revision, snapshot).unwrap_err();
        assert_eq!(err.exit(), Exit::Failed, "{err}");
        err.to_string()
    };
    let message = refused(&snapshot(), "1-30-3");
    assert!(message.contains("tag/default") && message.contains("tag/prod-stable"), "{message}");
    assert!(message.contains("namespace/shop (istio.io/rev=prod-stable)"), "{message}");
    assert!(!message.contains("legacy"), "namespaces on the default follow the default tag: {message}");

    let mut pods = snapshot();
    pods.pods = vec![PodView { annotations: labels(&[("istio.io/rev", "1-31-1")]), ..Default::default() }];
    assert!(refused(&pods, "1-31-1").contains("1 pod(s) injected by 1-31-1"));
    // A finished pod (a completed Job's) keeps nothing in use.
    pods.pods[0].finished = true;
    assert!(decide("1-31-1", &pods).is_ok());

    let mut labelled = snapshot();
    labelled.namespaces.push(NamespaceView { name: "canary".into(), labels: labels(&[("istio.io/rev", "1-31-1")]) });
    assert!(refused(&labelled, "1-31-1").contains("namespace/canary"));

    let mut gateways = snapshot();
    gateways.gateways = vec![GatewayView {
        namespace: "ingress".into(),
        name: "gw".into(),
        template_labels: labels(&[("sidecar.istio.io/inject", "true"), ("istio.io/rev", "1-31-1")]),
        template_annotations: labels(&[("inject.istio.io/templates", "gateway")]),
        ..Default::default()
    }];
    assert!(refused(&gateways, "1-31-1").contains("gateway ingress/gw"));

    let mut tagged = snapshot();
    tagged.mesh = Mesh::discover(
        &[istiod("1-30-3", "1.30.3"), istiod("1-31-1", "1.31.1")],
        &[tag("default", "1-30-3"), tag("prod-canary", "1-31-1")],
        &[],
    );
    assert!(refused(&tagged, "1-31-1").contains("tag/prod-canary"));

    // A VM (WorkloadEntry) or another cluster's pod connected to the istiod: no pod here says so.
    let mut connected = snapshot();
    let syncz = br#"[{"proxy":"vm-1.legacy","resources":{"type.googleapis.com/envoy.config.cluster.v3.Cluster":{"sent":"x","acked":"x"}}}]"#;
    connected.live = LiveStatus::from_readings(
        vec![IstiodReading { pod: "istiod-1-31-1-x".into(), revision: "1-31-1".into(), outcome: parse_syncz(syncz) }],
        "2026-12-01T00:00:00Z".parse().unwrap(),
    );
    assert!(refused(&connected, "1-31-1").contains("1 proxy(ies) connected to its istiod now"));
}

#[test]
fn unknown_reruns_and_leftovers() {
    let mut gone = snapshot();
    gone.owned.clear();
    let err = decide("1-29-0", &gone).unwrap_err();
    assert_eq!(err.exit(), Exit::NotFound);
    assert!(err.hint().unwrap().contains("1-30-3, 1-31-1"), "{:?}", err.hint());
    gone.retired_before = true;
    assert_eq!(decide("1-29-0", &gone).unwrap(), Decision::AlreadyRetired);
    // An interrupted retirement left ClusterRoles behind: the rerun deletes them.
    let mut leftovers = snapshot();
    leftovers.mesh =
        Mesh::discover(&[istiod("1-30-3", "1.30.3")], &[tag("default", "1-30-3"), tag("prod-stable", "1-30-3")], &[]);
    leftovers.owned = vec![owned(3, "istiod-clusterrole-1-31-1")];
    assert!(matches!(decide("1-31-1", &leftovers).unwrap(), Decision::Retire(o) if o.delete.len() == 1));
}

#[test]
fn the_helm_release_brings_in_rbac_without_the_revision_label() {
    let object = |labels: Value| serde_json::json!({"metadata": {"labels": labels}});
    let objects = [
        object(
            serde_json::json!({"app": "istiod", "istio.io/rev": "1-31-1", "app.kubernetes.io/instance": "istiod-canary"}),
        ),
        object(serde_json::json!({"app": "istiod", "istio.io/rev": "1-30-3", "app.kubernetes.io/instance": "istiod"})),
        // The base chart's default validator can carry the revision label; its release is not istiod's.
        object(serde_json::json!({"istio.io/rev": "1-31-1", "app.kubernetes.io/instance": "istio-base"})),
    ];
    assert_eq!(releases("1-31-1", &objects).into_iter().collect::<Vec<_>>(), ["istiod-canary"]);
    assert!(belongs("1-31-1", &object(serde_json::json!({"app": "istiod"}))));
    assert!(!belongs("1-31-1", &object(serde_json::json!({"istio.io/rev": "1-30-3"}))));
    assert!(!belongs("1-31-1", &object(serde_json::json!({"istio.io/tag": "prod"}))));
}

fn helm_owned(mut object: Owned, release: &str) -> Owned {
    object.object = serde_json::json!({"metadata": {"name": object.name, "annotations": {
        "meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": "istio-system"}}});
    object
}

fn release(name: &str, revision: Option<&str>, documents: &[(&str, &str, bool)]) -> ReleaseView {
    ReleaseView {
        name: name.into(),
        namespace: "istio-system".into(),
        revision: revision.map(str::to_string),
        documents: documents
            .iter()
            .map(|(kind, name, keep)| (meshkit::install::helm::ObjectKey::new(kind, name, None), *keep))
            .collect(),
        records: vec![serde_json::json!({"metadata": {"name": format!("sh.helm.release.v1.{name}.v1")}})],
        ..Default::default()
    }
}

#[test]
fn a_helm_installed_revision_is_uninstalled_with_its_records_and_moved_objects_are_kept() {
    let mut snap = snapshot();
    snap.owned = vec![
        helm_owned(owned(7, "istiod-1-31-1"), "istiod-1-31-1"),
        helm_owned(owned(11, "istio-1-31-1"), "istiod-1-31-1"),
    ];
    snap.releases = vec![release(
        "istiod-1-31-1",
        Some("1-31-1"),
        &[("Deployment", "istiod-1-31-1", false), ("ConfigMap", "istio-1-31-1", true)],
    )];
    snap.protected = vec![owned(0, "istio-revision-tag-prod-stable")];
    let Decision::Retire(plan) = decide("1-31-1", &snap).unwrap() else { panic!() };
    let deleted: Vec<&str> = plan.delete.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(deleted, ["istiod-1-31-1"], "what helm uninstall keeps is kept");
    assert_eq!(plan.protect.len(), 1);
    assert_eq!(plan.releases[0].record_names(), ["sh.helm.release.v1.istiod-1-31-1.v1"]);
}

#[test]
fn objects_another_release_or_gitops_owns_refuse_with_the_owners_way() {
    let mut snap = snapshot();
    let validator = helm_owned(owned(1, "istiod-default-validator"), "istio-base");
    snap.owned = vec![validator];
    snap.releases =
        vec![release("istio-base", None, &[("ValidatingWebhookConfiguration", "istiod-default-validator", false)])];
    let Err(Error::Refused { message, hint }) = decide("1-31-1", &snap) else { panic!() };
    assert!(message.contains("istiod-default-validator is managed by helm:istio-system/istio-base"), "{message}");
    assert!(hint.contains("--set defaultRevision=REV"), "{hint}");

    let mut argo = snapshot();
    let mut object = owned(7, "istiod-1-31-1");
    object.object = serde_json::json!({"metadata": {"annotations": {"argocd.argoproj.io/tracking-id": "mesh:apps/Deployment:istio-system/istiod-1-31-1"}}});
    argo.owned = vec![object];
    let Err(Error::Refused { hint, .. }) = decide("1-31-1", &argo) else { panic!() };
    assert!(hint.starts_with("change it in Git: Argo CD application mesh"), "{hint}");
}

#[test]
fn a_release_with_hooks_or_kinds_retire_does_not_know_is_left_to_helm() {
    let mut snap = snapshot();
    snap.owned = vec![helm_owned(owned(7, "istiod-1-31-1"), "istiod-1-31-1")];
    snap.releases = vec![release("istiod-1-31-1", Some("1-31-1"), &[("NetworkPolicy", "istiod-1-31-1", false)])];
    let Err(Error::Refused { message, hint }) = decide("1-31-1", &snap) else { panic!() };
    assert!(message.contains("networkpolicy/istiod-1-31-1"), "{message}");
    assert_eq!(hint, "retire it with `helm uninstall istiod-1-31-1 -n istio-system`");
}
