use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use meshkit::istio::tag_objects::{TagSpec, build};
use meshkit::istio::{ContainerView, IstiodView, PodView, ServiceView, WebhookConfigView};
use serde_json::json;

use super::*;
use crate::checks::report::Outcome;
use meshkit::istio::IstioVersion;
use meshkit::istio::proxy_status::{IstiodReading, LiveStatus, parse_syncz};

pub(super) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub(super) fn istiod(rev: &str, version: &str, ready: i32) -> IstiodView {
    IstiodView { ready_replicas: ready, ..meshkit::testing::istiod(rev, version) }
}

/// An injector as Istio renders it: for a revision (`tag == None`) or a tag of `revision`.
pub(super) fn injector(revision: &str, tag: Option<&str>) -> WebhookConfigView {
    let canonical: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": format!("istio-sidecar-injector-{revision}"), "labels": {"istio.io/rev": revision}},
        "webhooks": [{"name": "rev.namespace.sidecar-injector.istio.io", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"service": {"name": format!("istiod-{revision}"), "namespace": "istio-system", "path": "/inject"}, "caBundle": "Y2E="}}]
    }))
    .unwrap();
    let spec = TagSpec { tag: tag.unwrap_or(revision), revision, istio_namespace: "istio-system", auto_inject: false };
    let mut webhook = build(spec, &canonical, None).unwrap().webhook;
    if tag.is_none() {
        webhook.metadata.name = Some(format!("istio-sidecar-injector-{revision}"));
        webhook.metadata.labels.as_mut().unwrap().remove("istio.io/tag");
    }
    WebhookConfigView::from(&webhook)
}

pub(super) fn pod(namespace: &str, name: &str, injected: Option<(&str, &str)>) -> PodView {
    let mut pod = PodView {
        namespace: namespace.into(),
        name: name.into(),
        containers: vec![ContainerView { name: "app".into(), image: "nginx".into() }],
        ..Default::default()
    };
    if let Some((revision, version)) = injected {
        pod.annotations = labels(&[("istio.io/rev", revision)]);
        pod.containers
            .push(ContainerView { name: "istio-proxy".into(), image: format!("docker.io/istio/proxyv2:{version}") });
    }
    pod
}

pub(super) fn ns(name: &str, pairs: &[(&str, &str)]) -> NamespaceView {
    NamespaceView { name: name.into(), labels: labels(pairs) }
}

pub(super) fn healthy() -> Snapshot {
    Snapshot {
        istio_namespace: "istio-system".into(),
        kubernetes: Some((1, 35)),
        kubernetes_version: "v1.35.4".into(),
        istiods: vec![istiod("1-30-3", "1.30.3", 1), istiod("1-31-1", "1.31.1", 1)],
        mutating: vec![
            injector("1-30-3", None),
            injector("1-31-1", None),
            injector("1-30-3", Some("default")),
            injector("1-31-1", Some("canary")),
        ],
        services: ["istiod-1-30-3", "istiod-1-31-1"]
            .iter()
            .map(|n| ServiceView {
                namespace: "istio-system".into(),
                name: n.to_string(),
                labels: labels(&[("app", "istiod")]),
                ..Default::default()
            })
            .collect(),
        ready_endpoints: [("istiod-1-30-3".to_string(), 1), ("istiod-1-31-1".to_string(), 1)].into(),
        namespaces: vec![ns("legacy", &[("istio-injection", "enabled")]), ns("apps", &[("istio.io/rev", "canary")])],
        pods: vec![
            pod("legacy", "a", Some(("1-30-3", "1.30.3"))),
            pod("apps", "b", Some(("1-31-1", "1.31.1"))),
            pod("plain", "c", None),
        ],
        live: Some(live(&[
            ("istiod-1-30-3-x", "1-30-3", "a.legacy", true),
            ("istiod-1-31-1-x", "1-31-1", "b.apps", true),
        ])),
        ..Default::default()
    }
}

pub(super) fn outcome(report: &Report, code: &str) -> (Outcome, Vec<String>) {
    let finding = report.findings.iter().find(|f| f.check.code == code).unwrap_or_else(|| panic!("{code} did not run"));
    (finding.outcome, finding.objects.clone())
}

#[test]
fn a_healthy_mesh_passes_everything_it_can_check() {
    let report = precheck(&healthy(), &Options { to_version: IstioVersion::parse("1.30"), ..Default::default() });
    for f in &report.findings {
        assert!(matches!(f.outcome, Outcome::Pass | Outcome::Skipped), "{f:?}");
    }
    let report = verify(&healthy(), &Options::default());
    for f in &report.findings {
        assert_eq!(f.outcome, Outcome::Pass, "{f:?}");
    }
}

#[test]
fn kubernetes_version_has_both_bounds() {
    let to = |v: &str| Options { to_version: IstioVersion::parse(v), ..Default::default() };
    let mut snap = healthy();
    assert_eq!(outcome(&precheck(&snap, &to("1.30")), "MC0101").0, Outcome::Pass);
    snap.kubernetes = Some((1, 37));
    assert_eq!(outcome(&precheck(&snap, &to("1.30")), "MC0101").0, Outcome::Error);
    snap.kubernetes = Some((1, 30));
    assert_eq!(outcome(&precheck(&snap, &to("1.30")), "MC0101").0, Outcome::Warning, "tested only");
    snap.kubernetes = Some((1, 35));
    assert_eq!(outcome(&precheck(&snap, &to("1.31")), "MC0101").0, Outcome::Warning, "not in the table");
    assert_eq!(
        outcome(
            &precheck(&Snapshot { kubernetes: Some((1, 35)), ..Default::default() }, &Options::default()),
            "MC0101"
        )
        .0,
        Outcome::Skipped
    );
}

#[test]
fn installation_problems() {
    let mut snap = healthy();
    snap.mutating.push(injector("1-29-0", Some("old")));
    snap.namespaces.push(ns("lost", &[("istio.io/rev", "1-28-0")]));
    snap.namespaces.push(ns("both", &[("istio-injection", "enabled"), ("istio.io/rev", "canary")]));
    let report = precheck(&snap, &Options { revision: Some("1-31-1".into()), ..Default::default() });
    assert_eq!(outcome(&report, "MC0301"), (Outcome::Error, vec!["revision/1-31-1".to_string()]));
    assert_eq!(outcome(&report, "MC0302"), (Outcome::Error, vec!["tag/old → revision 1-29-0".to_string()]));
    assert_eq!(outcome(&report, "MC0303"), (Outcome::Error, vec!["namespace/lost → 1-28-0".to_string()]));
    assert_eq!(outcome(&report, "MC0401").0, Outcome::Warning);
    let free = precheck(&healthy(), &Options { revision: Some("1-32-0".into()), ..Default::default() });
    assert_eq!(outcome(&free, "MC0301").0, Outcome::Pass);
}

#[test]
fn overlapping_injectors_and_missing_services() {
    let mut snap = healthy();
    let mut twin = injector("1-31-1", Some("canary"));
    twin.name = "istio-revision-tag-canary-copy".into();
    snap.mutating.push(twin);
    snap.services.retain(|s| s.name != "istiod-1-31-1");
    let report = precheck(&snap, &Options::default());
    let (result, objects) = outcome(&report, "MC0402");
    assert_eq!(result, Outcome::Error);
    assert!(objects[0].contains("istio-revision-tag-canary-copy"), "{objects:?}");
    let (result, objects) = outcome(&report, "MC0403");
    assert_eq!(result, Outcome::Error);
    assert!(objects.iter().all(|o| o.ends_with("→ service istio-system/istiod-1-31-1")), "{objects:?}");
}

#[test]
fn data_plane_versions_and_orphans() {
    let mut snap = healthy();
    snap.pods = vec![
        pod("apps", "newer", Some(("1-30-3", "1.31.1"))),
        pod("apps", "ancient", Some(("1-31-1", "1.27.0"))),
        pod("apps", "orphan", Some(("1-28-0", "1.28.0"))),
        pod("apps", "bare", None),
    ];
    let report = precheck(&snap, &Options::default());
    assert_eq!(outcome(&report, "MC0501").1, ["pod/apps/newer (1-30-3): proxy 1.31.1, control plane 1.30.3"]);
    assert_eq!(
        outcome(&report, "MC0502"),
        (Outcome::Warning, vec!["pod/apps/ancient (1-31-1): proxy 1.27.0, control plane 1.31.1".to_string()])
    );
    assert_eq!(outcome(&report, "MC0503").1, ["pod/apps/orphan (injected by 1-28-0)"]);
    assert_eq!(outcome(&report, "MC0504"), (Outcome::Warning, vec!["pod/apps/bare".to_string()]));
}

#[test]
fn leftover_operators_and_the_installation_summary() {
    let mut snap = healthy();
    snap.istio_operators = Ok(vec!["istio-system/installed-state".into()]);
    snap.helm_releases = Ok(vec!["istio-base".into(), "istiod-1-30-3".into()]);
    let report = precheck(&snap, &Options::default());
    assert_eq!(
        outcome(&report, "MC0304"),
        (Outcome::Warning, vec!["istiooperator/istio-system/installed-state".to_string()])
    );
    let installation = report.installation.unwrap();
    assert_eq!(installation.revisions, ["1-30-3 (1.30.3, default)", "1-31-1 (1.31.1)"]);
    assert_eq!(
        installation.tags,
        ["canary → 1-31-1 (managed by kubectl-revtag)", "default → 1-30-3 (managed by kubectl-revtag)"]
    );
    assert_eq!(installation.helm_releases, ["istio-base", "istiod-1-30-3"]);
}

#[test]
fn gateway_api_served_versions() {
    use crate::snapshot::CrdView;
    let crd = |kind: &str, served: &[&str]| CrdView {
        kind: kind.into(),
        served: served.iter().map(|v| v.to_string()).collect(),
        bundle_version: Some("v1.2.0".into()),
        ..Default::default()
    };
    let mut snap = healthy();
    assert_eq!(outcome(&precheck(&snap, &Options::default()), "MC0404").0, Outcome::Pass, "not installed is fine");
    snap.gateway_crds =
        Ok(vec![crd("Gateway", &["v1", "v1beta1"]), crd("HTTPRoute", &["v1", "v1beta1"]), crd("GRPCRoute", &["v1"])]);
    assert_eq!(outcome(&precheck(&snap, &Options::default()), "MC0404").0, Outcome::Pass);
    snap.gateway_crds.as_mut().unwrap()[2] = crd("GRPCRoute", &["v1alpha2"]);
    assert_eq!(
        outcome(&precheck(&snap, &Options::default()), "MC0404"),
        (Outcome::Warning, vec!["crd/GRPCRoute does not serve v1 (serves v1alpha2)".to_string()])
    );
    snap.gateway_crds.as_mut().unwrap()[1] = crd("HTTPRoute", &["v1"]);
    assert_eq!(outcome(&precheck(&snap, &Options::default()), "MC0404").0, Outcome::Error);
    snap.gateway_crds = Err("not allowed to list customresourcedefinitions".into());
    assert_eq!(outcome(&precheck(&snap, &Options::default()), "MC0404").0, Outcome::Skipped);
}

#[test]
fn room_for_a_second_istiod() {
    use crate::snapshot::NodeView;
    use meshkit::istio::Requests;
    let gib = 1024 * 1024 * 1024;
    let node = |name: &str, cpu: u64, memory: u64| NodeView {
        name: name.into(),
        allocatable: Requests { cpu_millis: cpu, memory_bytes: memory },
        schedulable: true,
    };
    let mut snap = healthy();
    assert_eq!(outcome(&precheck(&snap, &Options::default()), "MC0505").0, Outcome::Skipped, "no nodes");
    snap.istiods[0].requests = Requests { cpu_millis: 500, memory_bytes: 2 * gib };
    snap.nodes = Ok(vec![node("small", 1000, 4 * gib), node("big", 8000, 32 * gib)]);
    let busy = |node: &str, cpu: u64| PodView {
        node: Some(node.into()),
        requests: Requests { cpu_millis: cpu, memory_bytes: gib },
        ..pod("apps", &format!("busy-{node}"), None)
    };
    snap.pods = vec![busy("small", 800), busy("big", 7800)];
    let (result, objects) = outcome(&precheck(&snap, &Options::default()), "MC0505");
    assert_eq!(result, Outcome::Warning);
    assert_eq!(objects, ["node/small: 200m CPU, 3072Mi free", "node/big: 200m CPU, 31744Mi free"]);
    snap.pods[1].finished = true;
    assert_eq!(outcome(&precheck(&snap, &Options::default()), "MC0505").0, Outcome::Pass, "finished pods hold nothing");
}

#[test]
fn stored_versions_must_still_be_served() {
    use crate::snapshot::CrdView;
    let crd = |served: &[&str], stored: &[&str]| CrdView {
        name: "virtualservices.networking.istio.io".into(),
        kind: "VirtualService".into(),
        served: served.iter().map(|v| v.to_string()).collect(),
        stored: stored.iter().map(|v| v.to_string()).collect(),
        group: "networking.istio.io".into(),
        bundle_version: None,
    };
    let mut snap = healthy();
    snap.istio_crds = Ok(vec![crd(&["v1", "v1beta1", "v1alpha3"], &["v1"])]);
    assert_eq!(outcome(&precheck(&snap, &Options::default()), "MC0405").0, Outcome::Pass);
    snap.istio_crds = Ok(vec![crd(&["v1"], &["v1alpha3", "v1"])]);
    assert_eq!(
        outcome(&precheck(&snap, &Options::default()), "MC0405"),
        (
            Outcome::Error,
            vec!["crd/virtualservices.networking.istio.io: stored as v1alpha3, which it no longer serves".to_string()]
        )
    );
    // What the target serves counts too: a hypothetical stored version no Istio release serves.
    snap.istio_crds = Ok(vec![crd(&["v1", "v2alpha1"], &["v2alpha1"])]);
    let to = Options { to_version: IstioVersion::parse("1.31.0"), ..Options::default() };
    assert_eq!(
        outcome(&precheck(&snap, &to), "MC0405").1,
        ["crd/virtualservices.networking.istio.io: stored as v2alpha1, which Istio 1.31 does not serve"]
    );
}

#[test]
fn gateway_api_bundles_meet_the_target_minimum() {
    use crate::snapshot::CrdView;
    let crd = |name: &str, bundle: Option<&str>| CrdView {
        name: format!("{name}.gateway.networking.k8s.io"),
        group: "gateway.networking.k8s.io".into(),
        served: vec!["v1alpha2".into()],
        bundle_version: bundle.map(String::from),
        ..Default::default()
    };
    let mut snap = healthy();
    snap.gateway_crds =
        Ok(vec![crd("tlsroutes", Some("v1.4.0")), crd("httproutes", Some("v1.0.0")), crd("tcproutes", None)]);
    let to = |v: &str| Options { to_version: IstioVersion::parse(v), ..Options::default() };
    assert_eq!(
        outcome(&precheck(&snap, &to("1.31.1")), "MC0407"),
        (
            Outcome::Warning,
            vec![
                "crd/tlsroutes.gateway.networking.k8s.io is bundle v1.4.0; Istio 1.31 needs v1.5.0".to_string(),
                "crd/tcproutes.gateway.networking.k8s.io has no readable bundle-version; Istio 1.31 ignores it".into(),
            ]
        )
    );
    assert_eq!(outcome(&precheck(&snap, &to("1.30.3")), "MC0407").0, Outcome::Pass, "no minimums recorded");
    snap.gateway_crds = Ok(vec![crd("tlsroutes", Some("v1.5.0-rc.1")), crd("tcproutes", Some("v1.6.0"))]);
    assert_eq!(outcome(&precheck(&snap, &to("1.31.1")), "MC0407").0, Outcome::Pass);
}

#[test]
fn objects_written_with_superseded_versions_or_removed_groups() {
    use crate::snapshot::{CrdView, WrittenObject};
    let crd = |name: &str, kind: &str, served: &[&str]| CrdView {
        name: name.into(),
        kind: kind.into(),
        group: name.split_once('.').unwrap().1.into(),
        served: served.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    };
    let written = |crd: &str, name: &str, pairs: &[(&str, &str)]| WrittenObject {
        crd: crd.into(),
        namespace: "shop".into(),
        name: name.into(),
        written: pairs.iter().map(|(v, w)| (v.to_string(), w.to_string())).collect(),
    };
    let mut snap = healthy();
    snap.istio_crds = Ok(vec![
        crd("virtualservices.networking.istio.io", "VirtualService", &["v1", "v1beta1", "v1alpha3"]),
        crd("envoyfilters.networking.istio.io", "EnvoyFilter", &["v1alpha3"]),
    ]);
    snap.istio_objects = Ok(vec![
        written("virtualservices.networking.istio.io", "current", &[("networking.istio.io/v1", "helm")]),
        written(
            "virtualservices.networking.istio.io",
            "old",
            &[
                ("networking.istio.io/v1alpha3", "kubectl-client-side-apply"),
                ("networking.istio.io/v1alpha3", "last-applied"),
            ],
        ),
        written("envoyfilters.networking.istio.io", "only-version", &[("networking.istio.io/v1alpha3", "kubectl")]),
    ]);
    assert_eq!(
        outcome(&precheck(&snap, &Options::default()), "MC0408"),
        (
            Outcome::Warning,
            vec![
                "virtualservice/shop/old: written as networking.istio.io/v1alpha3 by kubectl-client-side-apply, \
                 networking.istio.io/v1alpha3 by last-applied"
                    .to_string()
            ]
        )
    );
    snap.istio_crds.as_mut().unwrap().push(crd("rbacconfigs.rbac.istio.io", "RbacConfig", &["v1alpha1"]));
    assert!(
        outcome(&precheck(&snap, &Options::default()), "MC0408")
            .1
            .contains(&"crd/rbacconfigs.rbac.istio.io: API group removed in Istio 1.6; nothing reads it".to_string())
    );
    snap.istio_objects = Err("not allowed to list virtualservices.networking.istio.io".into());
    assert_eq!(outcome(&precheck(&snap, &Options::default()), "MC0408").0, Outcome::Skipped);
}

#[test]
fn deprecated_annotations_on_pods() {
    let mut snap = healthy();
    snap.pods[0].annotations.insert("sidecar.istio.io/inject".into(), "true".into());
    assert_eq!(
        outcome(&precheck(&snap, &Options::default()), "MC0406"),
        (Outcome::Warning, vec!["pod/legacy/a: sidecar.istio.io/inject".to_string()])
    );
}

#[test]
fn istios_own_pods_are_not_flagged_for_annotations_their_charts_set() {
    let mut snap = healthy();
    let with = |mut pod: PodView, labels_: &[(&str, &str)], annotations: &[(&str, &str)]| {
        pod.labels.extend(labels(labels_));
        pod.annotations.extend(labels(annotations));
        pod
    };
    let inject = ("sidecar.istio.io/inject", "false");
    snap.pods.push(with(pod("istio-system", "istiod-1-30-3-abc", None), &[("app", "istiod")], &[inject]));
    snap.pods.push(with(
        pod("istio-ingress", "gw-1", Some(("1-30-3", "1.30.3"))),
        &[],
        &[inject, ("inject.istio.io/templates", "gateway")],
    ));
    let report = precheck(&snap, &Options::default());
    let finding = report.findings.iter().find(|f| f.check.code == "MC0406").unwrap();
    assert_eq!(finding.outcome, Outcome::Pass, "{finding:?}");
    assert!(finding.message.as_deref().unwrap().contains("2 pod(s) of Istio's own charts"), "{finding:?}");
    snap.pods.push(with(pod("shop", "web-1", Some(("1-30-3", "1.30.3"))), &[], &[inject]));
    let report = precheck(&snap, &Options::default());
    assert_eq!(
        outcome(&report, "MC0406"),
        (Outcome::Warning, vec!["pod/shop/web-1: sidecar.istio.io/inject".to_string()])
    );
}

/// What istiods report: `(istiod pod, its revision, proxy ID, whether it ACKed)`.
pub(super) fn live(connections: &[(&str, &str, &str, bool)]) -> LiveStatus {
    let readings = connections
        .iter()
        .map(|(istiod, revision, proxy, acked)| {
            let acked = if *acked { "n" } else { "" };
            let body = format!(
                r#"[{{"proxy":"{proxy}","resources":{{"type.googleapis.com/envoy.config.cluster.v3.Cluster":
                    {{"sent":"n","acked":"{acked}","sentTime":"2026-12-01T00:00:00Z"}}}}}}]"#
            );
            IstiodReading {
                pod: istiod.to_string(),
                revision: revision.to_string(),
                outcome: parse_syncz(body.as_bytes()),
            }
        })
        .collect();
    LiveStatus::from_readings(readings, "2026-12-01T00:05:00Z".parse().unwrap())
}
