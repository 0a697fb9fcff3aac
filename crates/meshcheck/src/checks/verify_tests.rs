//! Verify's checks, on plain data.

use meshkit::istio::proxy_status::LiveStatus;

use super::report::Outcome;
use super::tests::{healthy, injector, live, ns, outcome, pod};
use super::*;

#[test]
fn live_proxy_status_turns_verify_red() {
    let mut snap = healthy();
    // b's pod was injected by 1-31-1, its proxy talks to 1-30-3's istiod; a never ACKed.
    snap.live =
        Some(live(&[("istiod-1-30-3-x", "1-30-3", "a.legacy", false), ("istiod-1-30-3-x", "1-30-3", "b.apps", true)]));
    let (result, objects) = outcome(&verify(&snap, &Options::default()), "MC0608");
    assert_eq!(result, Outcome::Error);
    assert_eq!(objects, ["pod/apps/b: connected to 1-30-3, injected by 1-31-1"]);
    let (result, objects) = outcome(&verify(&snap, &Options::default()), "MC0609");
    assert_eq!((result, objects), (Outcome::Error, vec!["pod/legacy/a: STALE for 5m".to_string()]));
    let patient = Options { stale_after: Some(std::time::Duration::from_secs(600)), ..Default::default() };
    assert_eq!(outcome(&verify(&snap, &patient), "MC0609").0, Outcome::Pass);
    // A proxy nobody lists is disconnected, unless an istiod could not be read.
    snap.live = Some(live(&[("istiod-1-30-3-x", "1-30-3", "a.legacy", true)]));
    assert_eq!(outcome(&verify(&snap, &Options::default()), "MC0608").1, ["pod/apps/b: not connected to any istiod"]);
    let mut partial = live(&[("istiod-1-30-3-x", "1-30-3", "a.legacy", true)]);
    partial.unreadable.push(("istiod-1-31-1-x".into(), "not allowed to create pods/portforward".into()));
    snap.live = Some(partial);
    assert_eq!(outcome(&verify(&snap, &Options::default()), "MC0608").0, Outcome::Pass, "unknown is not red");
    snap.live = Some(LiveStatus { unreadable: vec![("all".into(), "refused".into())], ..LiveStatus::default() });
    assert_eq!(outcome(&verify(&snap, &Options::default()), "MC0608").0, Outcome::Skipped);
}

#[test]
fn verify_finds_an_unready_control_plane() {
    let mut snap = healthy();
    snap.istiods[1].ready_replicas = 0;
    snap.mutating[1].webhooks.iter_mut().for_each(|w| w.has_ca_bundle = false);
    snap.ready_endpoints.remove("istiod-1-31-1");
    let report = verify(&snap, &Options::default());
    assert_eq!(outcome(&report, "MC0601").1, ["deployment/istio-system/istiod-1-31-1 (0/1 ready)"]);
    assert_eq!(outcome(&report, "MC0602").1, ["mutatingwebhookconfiguration/istio-sidecar-injector-1-31-1"]);
    let (result, objects) = outcome(&report, "MC0603");
    assert_eq!(result, Outcome::Error);
    assert_eq!(
        objects,
        ["service/istio-system/istiod-1-31-1 (called by istio-revision-tag-canary, istio-sidecar-injector-1-31-1)"]
    );
}

#[test]
fn verify_lists_stale_pods_and_unused_revisions() {
    let mut snap = healthy();
    snap.pods.push(pod("apps", "stale", Some(("1-30-3", "1.30.3"))));
    snap.mutating.retain(|w| w.name != "istio-revision-tag-canary");
    snap.namespaces.retain(|n| n.name != "apps");
    snap.pods.retain(|p| p.name != "b");
    snap.pods.retain(|p| p.name != "stale");
    snap.namespaces.push(ns("apps", &[("istio.io/rev", "1-31-1")]));
    snap.pods.push(pod("apps", "stale", Some(("1-30-3", "1.30.3"))));
    let report = verify(&snap, &Options::default());
    assert_eq!(outcome(&report, "MC0604").1, ["pod/apps/stale: revision moved 1-30-3 → 1-31-1"]);
    assert_eq!(outcome(&report, "MC0605").0, Outcome::Pass, "1-31-1 is used by the apps namespace");
    snap.namespaces.retain(|n| n.name != "apps");
    snap.pods.retain(|p| p.namespace != "apps");
    assert_eq!(
        outcome(&verify(&snap, &Options::default()), "MC0605"),
        (Outcome::Warning, vec!["revision/1-31-1".to_string()])
    );
}

#[test]
fn a_default_validator_left_on_the_old_revision_is_reported_by_precheck_and_verify() {
    let mut snap = healthy();
    let mut validator = injector("1-31-1", None);
    validator.name = "istiod-default-validator".into();
    snap.validating.push(validator);
    let precheck = precheck(&snap, &Options::default());
    let (result, told) = outcome(&precheck, "MC0305");
    assert_eq!(result, Outcome::Error);
    assert!(told[0].starts_with("the default tag says 1-30-3"), "{told:?}");
    assert!(told[1].starts_with("istiod-default-validator says 1-31-1"), "{told:?}");
    assert_eq!(outcome(&verify(&snap, &Options::default()), "MC0606").0, Outcome::Error);
}

#[test]
fn webhooks_of_an_uninstalled_revision_are_found_and_fail_closed_ones_are_errors() {
    let mut snap = healthy();
    snap.mutating.push(injector("1-29-0", None));
    let (result, objects) = outcome(&verify(&snap, &Options::default()), "MC0607");
    assert_eq!(result, Outcome::Error);
    assert_eq!(
        objects,
        [
            "mutatingwebhookconfiguration/istio-sidecar-injector-1-29-0 (revision 1-29-0, failurePolicy Fail: blocks what it selects)"
        ]
    );
    assert_eq!(outcome(&precheck(&snap, &Options::default()), "MC0306").0, Outcome::Error);
}

#[test]
fn finished_pods_are_never_stale_and_pin_no_revision() {
    let mut snap = healthy();
    snap.namespaces.push(ns("batch", &[("istio.io/rev", "1-31-1")]));
    let mut done = pod("batch", "job-1", Some(("1-30-3", "1.30.3")));
    done.finished = true;
    snap.pods.push(done);
    assert_eq!(outcome(&verify(&snap, &Options::default()), "MC0604").0, Outcome::Pass);
}
