use super::*;
use meshkit::istio::SelectorOp;

fn workload(ns: &str, name: &str, app: &str) -> WorkloadView {
    WorkloadView {
        namespace: ns.into(),
        workload: name.into(),
        generation: 2,
        observed_generation: 2,
        desired: 1,
        updated: 1,
        current: 1,
        available: 1,
        pod_labels: [("app".to_string(), app.to_string())].into(),
        ..Default::default()
    }
}

fn rolling(w: &WorkloadView) -> WorkloadView {
    WorkloadView { generation: w.generation + 1, ..w.clone() }
}

fn queued(ns: &str, name: &str) -> RestartOutcome {
    let restart = Restart { namespace: ns.into(), workload: name.into(), stale_pods: 1 };
    RestartOutcome::planned(restart, RestartResult::WouldRestart)
}

fn budget(ns: &str, name: &str, app: &str, allowed: i32) -> Budget {
    Budget {
        namespace: ns.into(),
        name: name.into(),
        selector: Some(LabelSelector::everything().with("app", SelectorOp::In, &[app])),
        allowed,
    }
}

fn started(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Started { workload } => Some(workload.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn waves_fill_free_slots_in_order_and_follow_to_the_end() {
    let names = ["deployment/a", "deployment/b", "deployment/c"];
    let mut waves = Waves::new(names.iter().map(|n| queued("shop", n)).collect());
    let mut views: Vec<WorkloadView> = names.iter().map(|n| workload("shop", n, n)).collect();
    let wave = waves.next_wave(2, &views, &[]);
    assert_eq!(started(&wave), ["shop/deployment/a", "shop/deployment/b"]);
    assert_eq!(waves.started(&wave).len(), 2);
    assert!(waves.observe(&views).is_empty(), "a view from before the patch proves nothing (found at scale)");
    assert!(started(&waves.next_wave(2, &views, &[])).is_empty(), "both still in flight");
    views[0] = rolling(&views[0]);
    views[1] = rolling(&views[1]);
    assert!(waves.observe(&views).is_empty(), "both still rolling");
    assert!(started(&waves.next_wave(2, &views, &[])).is_empty(), "no free slot");
    views[0] = WorkloadView { generation: 3, observed_generation: 3, ..workload("shop", names[0], names[0]) };
    assert_eq!(waves.observe(&views), [Event::RolledOut { workload: "shop/deployment/a".into() }]);
    assert_eq!(started(&waves.next_wave(2, &views, &[])), ["shop/deployment/c"]);
    assert!(waves.is_done(false), "everything started");
    assert!(!waves.is_done(true), "b and c still rolling");
    views = names
        .iter()
        .map(|n| WorkloadView { generation: 3, observed_generation: 3, ..workload("shop", n, n) })
        .collect();
    waves.observe(&views);
    assert!(waves.is_done(true));
    waves.close();
    assert!(waves.complete(true));
}

#[test]
fn a_budget_that_allows_no_disruption_holds_its_restart_and_only_its_restart() {
    let mut waves = Waves::new(vec![queued("shop", "deployment/db"), queued("shop", "deployment/web")]);
    let views = [workload("shop", "deployment/db", "db"), workload("shop", "deployment/web", "web")];
    let budgets = [budget("shop", "db", "db", 0), budget("other", "web", "web", 0)];
    let wave = waves.next_wave(5, &views, &budgets);
    assert_eq!(
        wave[0],
        Event::Held {
            workload: "shop/deployment/db".into(),
            why: "PodDisruptionBudget shop/db allows no disruption now".into()
        }
    );
    assert_eq!(started(&wave), ["shop/deployment/web"], "a budget of another namespace does not count");
    assert!(waves.next_wave(5, &views, &budgets).is_empty(), "held again: said once");
    assert!(!waves.is_done(false));
    waves.close();
    let db = &waves.outcomes[0];
    assert_eq!(db.result, RestartResult::NotStarted);
    assert_eq!(
        db.reason.as_deref(),
        Some("held until the timeout: PodDisruptionBudget shop/db allows no disruption now")
    );
    assert!(!waves.complete(false), "a restart held to the timeout is incomplete (exit 7)");
}

#[test]
fn one_restart_at_a_time_under_a_budget() {
    let mut waves = Waves::new(vec![queued("shop", "deployment/web"), queued("shop", "deployment/web-v2")]);
    let mut views = vec![workload("shop", "deployment/web", "web"), workload("shop", "deployment/web-v2", "web")];
    let budgets = [budget("shop", "web", "web", 1)];
    let wave = waves.next_wave(5, &views, &budgets);
    assert_eq!(started(&wave), ["shop/deployment/web"]);
    assert!(
        matches!(&wave[1], Event::Held { workload, why } if workload == "shop/deployment/web-v2"
            && why == "PodDisruptionBudget shop/web covers a rollout still in progress"),
        "the budget's status does not show the disruption yet: {wave:?}"
    );
    views[0] = rolling(&views[0]);
    waves.observe(&views);
    assert!(started(&waves.next_wave(5, &views, &budgets)).is_empty(), "still rolling");
    views[0] = WorkloadView { generation: 3, observed_generation: 3, ..workload("shop", "deployment/web", "web") };
    waves.observe(&views);
    assert_eq!(started(&waves.next_wave(5, &views, &budgets)), ["shop/deployment/web-v2"]);
}

#[test]
fn a_failed_rollout_stops_new_waves() {
    let names = ["deployment/a", "deployment/b", "deployment/c"];
    let mut waves = Waves::new(names.iter().map(|n| queued("shop", n)).collect());
    let mut views: Vec<WorkloadView> = names.iter().map(|n| workload("shop", n, n)).collect();
    assert_eq!(started(&waves.next_wave(1, &views, &[])), ["shop/deployment/a"]);
    views[0] = WorkloadView { replica_failure: Some("exceeded quota: pods".into()), ..rolling(&views[0]) };
    let events = waves.observe(&views);
    assert!(matches!(&events[..], [Event::Failed { .. }]), "{events:?}");
    assert!(waves.next_wave(1, &views, &[]).is_empty(), "no new wave after a failure");
    assert!(waves.is_done(true), "nothing more to start or follow");
    waves.close();
    let reasons: Vec<Option<&str>> = waves.outcomes.iter().map(|o| o.reason.as_deref()).collect();
    let stopped = "stopped: shop/deployment/a pods cannot be created: exceeded quota: pods";
    assert_eq!(reasons, [None, Some(stopped), Some(stopped)]);
    assert!(!waves.complete(false));
    let deadline = WorkloadView { deadline_exceeded: true, ..rolling(&views[1]) };
    assert_eq!(rollout(&deadline), Rollout::Stuck { reason: "progress deadline exceeded".into() });
}

#[test]
fn followed_rollouts_only_and_budgets_from_the_api() {
    let mut waves = Waves::following(&[("gw".into(), "deployment/ingress".into())]);
    let views = [rolling(&workload("gw", "deployment/ingress", "ingress"))];
    waves.observe(&views);
    assert!(!waves.is_done(true));
    assert!(waves.is_done(false), "nothing to start");
    let pdb: PodDisruptionBudget = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "shop", "generation": 2},
        "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}}},
        "status": {"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 1, "desiredHealthy": 0, "expectedPods": 1}
    }))
    .unwrap();
    let b = Budget::from(&pdb);
    assert_eq!(b.allowed, 0, "a status older than the spec allows nothing yet");
    assert!(b.covers(&workload("shop", "deployment/web", "web")));
    assert!(!b.covers(&workload("shop", "deployment/api", "api")));
    let none = Budget { selector: None, ..b };
    assert!(!none.covers(&workload("shop", "deployment/web", "web")), "a null selector selects no pod");
}
