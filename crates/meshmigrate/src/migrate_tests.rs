use super::*;
use crate::journal::{Entry, InjectionLabels};

fn entry(namespace: &str, action: Action, time: &str) -> Entry {
    Entry {
        id: "000001".into(),
        time: time.into(),
        user: "u".into(),
        action,
        namespace: namespace.into(),
        from: InjectionLabels::default(),
        to: InjectionLabels::default(),
        state: State::Done,
        undoes: None,
        workload: None,
    }
}

#[test]
fn stale_after_the_planned_labels_not_the_current_ones() {
    use meshkit::istio::{ContainerView, PodView, WebhookConfigView};
    use meshkit::testing::{istiod, labels};
    let tag = WebhookConfigView {
        name: "istio-revision-tag-default".into(),
        labels: labels(&[("istio.io/rev", "1-30-3"), ("istio.io/tag", "default")]),
        ..Default::default()
    };
    let pod = |ns: &str, rs: &str| PodView {
        namespace: ns.into(),
        name: format!("{rs}-1"),
        annotations: labels(&[("istio.io/rev", "1-30-3")]),
        containers: vec![ContainerView { name: "istio-proxy".into(), image: "proxyv2:1.30.3".into() }],
        owner: Some(("ReplicaSet".into(), rs.into())),
        ..Default::default()
    };
    let snapshot = Snapshot {
        istiods: vec![istiod("1-30-3", "1.30.3"), istiod("1-31-1", "1.31.1")],
        webhooks: vec![tag],
        namespaces: vec![
            NamespaceView { name: "moving".into(), labels: labels(&[("istio-injection", "enabled")]) },
            NamespaceView { name: "staying".into(), labels: labels(&[("istio.io/rev", "1-30-3")]) },
        ],
        pods: vec![pod("moving", "web-1"), pod("staying", "api-1")],
        replica_set_owners: [
            (("moving".to_string(), "web-1".to_string()), "web".to_string()),
            (("staying".to_string(), "api-1".to_string()), "api".to_string()),
        ]
        .into(),
        ..Default::default()
    };
    let plan = [
        Planned {
            namespace: "moving".into(),
            from: InjectionLabels { istio_injection: Some("enabled".into()), istio_rev: None },
            to: InjectionLabels { istio_injection: None, istio_rev: Some("1-31-1".into()) },
            unchanged: false,
            undoes: None,
        },
        Planned {
            namespace: "staying".into(),
            from: InjectionLabels { istio_injection: None, istio_rev: Some("1-30-3".into()) },
            to: InjectionLabels { istio_injection: None, istio_rev: Some("1-30-3".into()) },
            unchanged: true,
            undoes: None,
        },
    ];
    let (restarts, bare) = stale_after(&snapshot, &plan);
    let workloads: Vec<(&str, &str)> = restarts.iter().map(|r| (r.namespace.as_str(), r.workload.as_str())).collect();
    assert_eq!(workloads, [("moving", "deployment/web")]);
    assert!(bare.is_empty());
}

#[test]
fn a_restart_after_the_move_is_not_repeated() {
    let journal =
        Journal { entries: vec![entry("shop", Action::Relabel, "2026-05-01T10:00:00.5Z")], ..Default::default() };
    let restart = Restart { namespace: "shop".into(), workload: "deployment/web".into(), stale_pods: 1 };
    let workload = |stamp: Option<&str>| WorkloadView {
        namespace: "shop".into(),
        workload: "deployment/web".into(),
        restarted_at: stamp.map(str::to_string),
        ..Default::default()
    };
    let unchanged = |unchanged| Planned {
        namespace: "shop".into(),
        from: InjectionLabels::default(),
        to: InjectionLabels::default(),
        unchanged,
        undoes: None,
    };
    let stamped = [workload(Some("2026-05-01T10:00:01Z"))];
    assert!(already_restarted(&restart, &[unchanged(true)], &journal, &stamped));
    assert!(!already_restarted(&restart, &[unchanged(false)], &journal, &stamped), "moving again now");
    let early = [workload(Some("2026-05-01T09:59:59.999Z"))];
    assert!(!already_restarted(&restart, &[unchanged(true)], &journal, &early), "restarted before the move");
    assert!(!already_restarted(&restart, &[unchanged(true)], &journal, &[workload(None)]));
    assert!(!already_restarted(&restart, &[unchanged(true)], &Journal::default(), &stamped));
}
