use super::*;
use meshkit::istio::ContainerView;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn pod(ns: &str, name: &str, injected: Option<(&str, &str)>, owner: Option<(&str, &str)>) -> PodView {
    let mut pod = PodView {
        namespace: ns.into(),
        name: name.into(),
        containers: vec![ContainerView { name: "app".into(), image: "nginx".into() }],
        owner: owner.map(|(k, n)| (k.to_string(), n.to_string())),
        ..Default::default()
    };
    if let Some((rev, version)) = injected {
        pod.annotations = labels(&[("istio.io/rev", rev)]);
        pod.containers
            .push(ContainerView { name: "istio-proxy".into(), image: format!("docker.io/istio/proxyv2:{version}") });
    }
    pod
}

fn snapshot() -> Snapshot {
    let istiod = meshkit::testing::istiod;
    let tag = meshkit::testing::tag_webhook;
    Snapshot {
        istiods: vec![istiod("1-30-3", "1.30.3"), istiod("1-31-1", "1.31.1")],
        webhooks: vec![tag("default", "1-30-3"), tag("prod-canary", "1-31-1")],
        namespaces: vec![
            NamespaceView { name: "shop".into(), labels: labels(&[("istio.io/rev", "prod-canary"), ("team", "x")]) },
            NamespaceView { name: "legacy".into(), labels: labels(&[("istio-injection", "enabled")]) },
        ],
        pods: vec![
            pod("shop", "web-abc-1", Some(("1-31-1", "1.31.1")), Some(("ReplicaSet", "web-abc"))),
            pod("shop", "web-old-1", Some(("1-30-3", "1.30.3")), Some(("ReplicaSet", "web-old"))),
            pod("shop", "db-0", Some(("1-30-3", "1.30.3")), Some(("StatefulSet", "db"))),
            pod("shop", "job-x", None, None),
            pod("legacy", "api-1", Some(("1-30-3", "1.30.3")), Some(("ReplicaSet", "api-1234"))),
            pod("leftover", "cron-1", Some(("1-29-0", "1.29.0")), Some(("Job", "cron"))),
            pod("plain", "x", None, None),
        ],
        replica_set_owners: [
            (("shop".to_string(), "web-abc".to_string()), "web".to_string()),
            (("shop".to_string(), "web-old".to_string()), "web".to_string()),
            (("legacy".to_string(), "api-1234".to_string()), "api".to_string()),
        ]
        .into(),
        ..Default::default()
    }
}

#[test]
fn a_proxy_older_than_its_revision_injects_now_is_stale_with_its_reason() {
    let mut snap = snapshot();
    // 1-30-3 was upgraded in place: it injects 1.30.4 now.
    snap.injects = vec![Injects {
        revision: "1-30-3".into(),
        hub: "docker.io/istio".into(),
        tag: "1.30.4".into(),
        image: "proxyv2".into(),
        variant: String::new(),
        ..Default::default()
    }];
    let rows = decide(&snap, &Scope::Named(vec!["legacy".into()]));
    let legacy = rows.iter().find(|r| r.namespace == "legacy").unwrap();
    assert_eq!(legacy.stale_pods, ["api-1"]);
    assert_eq!(legacy.stale_reasons["api-1"], "proxy 1.30.3, revision 1-30-3 now injects 1.30.4");
    assert_eq!(legacy.restart, ["deployment/api"]);
    let text = meshkit::render::Renderer { format: meshkit::render::Format::Table, no_headers: false, color: false }
        .table_text(&table(&rows));
    assert!(text.contains("proxy 1.30.3, revision 1-30-3 now injects 1.30.4"), "{text}");
}

#[test]
fn reports_intent_injection_staleness_and_what_to_restart() {
    let rows = decide(&snapshot(), &Scope::All);
    let names: Vec<&str> = rows.iter().map(|r| r.namespace.as_str()).collect();
    assert_eq!(names, ["leftover", "legacy", "shop"], "unlabelled namespaces show up only with sidecars");
    let shop = &rows[2];
    assert_eq!(shop.labels, labels(&[("istio.io/rev", "prod-canary")]));
    assert_eq!(shop.requested.as_deref(), Some("prod-canary"));
    assert_eq!(shop.intended_revision.as_deref(), Some("1-31-1"));
    assert_eq!(shop.pods, 4);
    assert_eq!(shop.uninjected, 1);
    assert_eq!(
        shop.injected.iter().map(|r| (r.revision.as_str(), r.pods)).collect::<Vec<_>>(),
        [("1-30-3", 2), ("1-31-1", 1)]
    );
    assert_eq!(shop.stale_pods, ["web-old-1", "db-0", "job-x"]);
    assert_eq!(shop.stale_reasons["web-old-1"], "revision moved 1-30-3 → 1-31-1");
    assert_eq!(shop.stale_reasons["job-x"], "no sidecar; its labels ask for one from 1-31-1");
    assert_eq!(
        shop.restart,
        ["deployment/web", "pod/job-x (no controller: delete it to recreate it)", "statefulset/db"]
    );
    let legacy = &rows[1];
    assert_eq!((legacy.requested.as_deref(), legacy.intended_revision.as_deref()), (Some("default"), Some("1-30-3")));
    assert!(legacy.stale_pods.is_empty() && legacy.restart.is_empty());
    let leftover = &rows[0];
    assert_eq!(leftover.requested, None);
    assert_eq!(leftover.stale_pods, ["cron-1"], "a sidecar nobody asks for any more");
    assert_eq!(leftover.restart, ["job/cron"]);
}

#[test]
fn named_namespaces_are_reported_even_without_labels() {
    let mut snap = snapshot();
    snap.namespaces.push(NamespaceView { name: "plain".into(), labels: Default::default() });
    let rows = decide(&snap, &Scope::Named(vec!["plain".into()]));
    assert!(rows.iter().any(|r| r.namespace == "plain" && r.pods == 1 && r.requested.is_none()));
}

#[test]
fn table_says_where_labels_point() {
    let rows = decide(&snapshot(), &Scope::All);
    let text = meshkit::render::Renderer { format: meshkit::render::Format::Table, no_headers: false, color: false }
        .table_text(&table(&rows));
    assert!(text.contains("istio.io/rev=prod-canary   prod-canary → 1-31-1   4      1-30-3:2 (1.30.3), 1-31-1:1 (1.31.1), none:1   ?         3"), "{text}");
}

#[test]
fn counts_proxies_on_the_revision_the_labels_ask_for() {
    let syncz = r#"[{"proxy":"web-1.shop","resources":{"type.googleapis.com/envoy.config.cluster.v3.Cluster":{"sent":"x","acked":"x"}}},{"proxy":"web-2.shop","resources":{"type.googleapis.com/envoy.config.cluster.v3.Cluster":{"sent":"x","acked":"x"}}}]"#;
    let shop =
        NamespaceView { name: "shop".into(), labels: [("istio.io/rev".to_string(), "1-31-1".to_string())].into() };
    let mesh = Mesh::discover(&[meshkit::testing::istiod("1-31-1", "1.31.1")], &[], &[]);
    let pods = ["web-1", "web-2", "web-3"].map(|name| pod("shop", name, Some(("1-31-1", "1.31.1")), None));
    let reading = meshkit::istio::proxy_status::IstiodReading {
        pod: "istiod-1-31-1-x".into(),
        revision: "1-31-1".into(),
        outcome: meshkit::istio::proxy_status::parse_syncz(syncz.as_bytes()),
    };
    let live = LiveStatus::from_readings(vec![reading], "2026-12-01T00:00:00Z".parse().unwrap());
    assert_eq!(proxy_counts(&pods, &[shop], &mesh, &live)["shop"], ProxyCount { on_intended: 2, total: 3 });
}
