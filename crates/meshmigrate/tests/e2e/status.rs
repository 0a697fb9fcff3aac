//! `status` on the fixture and on real controllers.

use super::*;

#[test]
fn status_of_the_fixture() {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, true).unwrap();
    let rows = status(&plane.kubeconfig, &[]);
    let names: Vec<&str> = rows.iter().map(|r| r["namespace"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "shop-both",
            "shop-canary",
            "shop-legacy",
            "shop-off",
            "shop-optout",
            "shop-plain",
            "shop-stable",
            "shop-tagged"
        ]
    );
    let canary = namespace(&rows, "shop-canary");
    assert_eq!(canary["requested"], "prod-canary");
    assert_eq!(canary["intendedRevision"], "1-31-1");
    assert_eq!(canary["stalePods"], serde_json::json!(["web-1"]));
    assert_eq!(canary["restart"][0], "pod/web-1 (no controller: delete it to recreate it)");
    let both = namespace(&rows, "shop-both");
    assert_eq!((both["requested"].as_str(), both["intendedRevision"].as_str()), (Some("default"), Some("1-30-3")));
    assert!(both["stalePods"].as_array().unwrap().is_empty(), "istio-injection wins: its 1-30-3 pod is up to date");
    let plain = namespace(&rows, "shop-plain");
    assert_eq!(plain["injected"][0]["revision"], "1-30-3", "the opted-in pod");
    assert!(plain["stalePods"].as_array().unwrap().is_empty());

    let named = status(&plane.kubeconfig, &["shop-canary", "default"]);
    assert_eq!(named.len(), 2);
    let (code, _, err) = run(meshmigrate(&plane.kubeconfig).args(["status", "nope"]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("namespace \"nope\" does not exist"), "{err}");
    let (code, out, _) = run(meshmigrate(&plane.kubeconfig).arg("status"));
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap().starts_with("NAMESPACE"), "{out}");
}

/// With real controllers, a stale pod is traced to the Deployment that owns its ReplicaSet.
#[test]
fn status_names_the_deployments_to_restart() {
    let plane = ControlPlane::start(&Options { nodes: 1, ..Default::default() }).unwrap();
    Fixture::install(&plane, false).unwrap();
    plane.kubectl_ok(&["-n", "shop-canary", "rollout", "status", "deployment/web", "--timeout=90s"]).unwrap();
    let rows = status(&plane.kubeconfig, &["shop-canary", "shop-off"]);
    let canary = namespace(&rows, "shop-canary");
    assert_eq!(canary["uninjected"], 1, "no istiod injected the controller's pod");
    assert_eq!(canary["restart"], serde_json::json!(["deployment/web"]));
    let off = namespace(&rows, "shop-off");
    assert_eq!(off["requested"], Value::Null);
    assert!(off["restart"].as_array().unwrap().is_empty(), "injection is off there: nothing to fix");
}
