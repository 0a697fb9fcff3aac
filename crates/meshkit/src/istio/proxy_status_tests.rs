use super::*;
use crate::istio::{Mesh, NamespaceView, PodView, Verdict, proxy_rows};

/// The shape of istiod 1.31's `/debug/syncz`, as read from a Tier C istiod.
const SYNCZ: &str = r#"[
 {"cluster_id":"Kubernetes","proxy":"web-1.shop","proxy_type":"sidecar","istio_version":"1.31.1",
  "resources":{
   "type.googleapis.com/envoy.config.cluster.v3.Cluster":{"sent":"n1","acked":"n1","sentTime":"2026-12-01T20:16:36.97Z"},
   "type.googleapis.com/envoy.config.listener.v3.Listener":{"sent":"n2","acked":"n2","sentTime":"2026-12-01T20:16:36.98Z"}}},
 {"cluster_id":"Kubernetes","proxy":"web-2.shop","proxy_type":"sidecar","istio_version":"1.31.1",
  "resources":{
   "type.googleapis.com/envoy.config.cluster.v3.Cluster":{"sent":"n3","acked":"","sentTime":"2026-12-01T20:10:00Z"}}},
 {"cluster_id":"Kubernetes","proxy":"vm-1.legacy","proxy_type":"sidecar","istio_version":"1.31.1",
  "resources":{"type.googleapis.com/envoy.config.cluster.v3.Cluster":{"sent":"n4","acked":"n4"}}},
 {"proxy":"test-1.default","proxy_type":"sidecar","istio_version":"65536.65536.65536"},
 {"proxy":"istioctl-2.default","resources":{"istio.io/debug/syncz":{"sent":"n5","acked":""}}}
]"#;

fn now() -> Timestamp {
    "2026-12-01T20:20:00Z".parse().unwrap()
}

fn reading(pod: &str, revision: &str, body: &str) -> IstiodReading {
    IstiodReading { pod: pod.into(), revision: revision.into(), outcome: parse_syncz(body.as_bytes()) }
}

fn pod(namespace: &str, name: &str, injected_by: Option<&str>) -> PodView {
    let mut pod = PodView { namespace: namespace.into(), name: name.into(), ..PodView::default() };
    if let Some(rev) = injected_by {
        pod.annotations.insert("sidecar.istio.io/status".into(), format!("{{\"revision\":\"{rev}\"}}"));
    }
    pod
}

#[test]
fn sync_states_follow_nonces() {
    let live = LiveStatus::from_readings(vec![reading("istiod-1-31-1-a", "1-31-1", SYNCZ)], now());
    let web1 = &live.of("shop", "web-1")[0];
    assert_eq!((web1.revision.as_str(), web1.version.as_str()), ("1-31-1", "1.31.1"));
    assert_eq!(web1.state("CDS"), SyncState::Synced);
    assert_eq!(web1.state("EDS"), SyncState::NotSent, "never subscribed");
    assert!(web1.synced());
    let web2 = &live.of("shop", "web-2")[0];
    assert_eq!(web2.state("CDS"), SyncState::Stale { seconds: Some(600) });
    assert_eq!(web2.state("CDS").label(), "STALE (10m)");
    assert_eq!(web2.stale_for(), Some(600));
    assert!(!web2.synced());
    assert_eq!(live.connected_to("1-31-1"), 3, "istioctl's own debug stream is no proxy");
    assert!(live.of("default", "test-1").is_empty());
    assert_eq!(live.connected_to("1-30-3"), 0);
    assert!(live.complete());
}

#[test]
fn nack_is_an_error_and_types_get_short_names() {
    let r = SynczResource { sent: "a".into(), acked: "b".into(), last_error: "bad cluster".into(), sent_time: None };
    assert_eq!(SyncState::of(&r, now()), SyncState::Error { message: "bad cluster".into() });
    assert_eq!(short_type("type.googleapis.com/envoy.config.route.v3.RouteConfiguration"), "RDS");
    assert_eq!(short_type("type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"), "ECDS");
    assert_eq!(short_type("type.googleapis.com/istio.workload.Address"), "Address");
    assert!(parse_syncz(b"<html>").unwrap_err().starts_with("not a /debug/syncz answer"));
}

#[test]
fn verdicts_per_pod() {
    let live = LiveStatus::from_readings(
        vec![
            reading("istiod-1-31-1-a", "1-31-1", SYNCZ),
            reading(
                "istiod-1-30-3-b",
                "1-30-3",
                r#"[{"proxy":"api-1.shop","resources":{"type.googleapis.com/envoy.config.cluster.v3.Cluster":{"sent":"x","acked":"x"}}}]"#,
            ),
        ],
        now(),
    );
    let pods = [
        pod("shop", "web-1", Some("1-31-1")),
        pod("shop", "web-2", Some("1-31-1")),
        pod("shop", "web-3", Some("1-31-1")),
        pod("shop", "api-1", Some("1-31-1")),
        pod("shop", "plain", None),
    ];
    let rows = proxy_rows(&pods, &[NamespaceView::default()], &Mesh::default(), &live);
    let verdict = |name: &str| rows.iter().find(|r| r.name == name).map(|r| r.verdict.clone());
    assert_eq!(verdict("web-1"), Some(Verdict::Synced));
    assert!(rows[0].serves("1-31-1") && !rows[0].serves("1-30-3"));
    assert_eq!(verdict("web-2"), Some(Verdict::Stale { seconds: 600 }));
    assert_eq!(verdict("web-3"), Some(Verdict::NotConnected));
    assert_eq!(
        verdict("api-1"),
        Some(Verdict::WrongRevision { connected: "1-30-3".into(), injected: "1-31-1".into() })
    );
    assert_eq!(verdict("plain"), None, "no sidecar, no row");
    assert_eq!(verdict("vm-1"), Some(Verdict::External));
    assert_eq!(rows.iter().find(|r| r.name == "web-1").unwrap().sync.len(), 5, "every shown type");
}

#[test]
fn an_unreadable_istiod_makes_absence_unknown() {
    let live = LiveStatus::from_readings(
        vec![
            reading("istiod-1-31-1-a", "1-31-1", SYNCZ),
            IstiodReading { pod: "istiod-1-30-3-b".into(), revision: "1-30-3".into(), outcome: Err("refused".into()) },
        ],
        now(),
    );
    assert!(!live.complete());
    assert_eq!(live.unreadable_summary().unwrap(), "cannot read the live proxy status of istiod-1-30-3-b: refused");
    let rows = proxy_rows(&[pod("shop", "web-9", Some("1-30-3"))], &[], &Mesh::default(), &live);
    assert_eq!(rows[0].verdict, Verdict::Unknown, "never called disconnected on a guess");
    assert_eq!(age(59), "59s");
    assert_eq!(age(3600), "60m");
    assert_eq!(age(90_000), "25h");
}
