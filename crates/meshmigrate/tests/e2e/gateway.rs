//! Moving a gateway by its pod template label.

use super::*;

/// A gateway moves by its pod template's label: journaled, rolled, verified; the gateways that
/// follow the default revision are named; refusals change nothing.
#[test]
fn gateway_moves_to_the_canary() {
    let plane = ControlPlane::start(&Options { nodes: 1, ..Default::default() }).unwrap();
    Fixture::install_injected(&plane).unwrap();
    plane
        .apply(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: follower, namespace: istio-ingress}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: follower}}\n  template:\n    metadata:\n      labels: {app: follower, sidecar.istio.io/inject: 'true'}\n      annotations: {inject.istio.io/templates: gateway}\n    spec: {containers: [{name: istio-proxy, image: auto}]}\n",
        )
        .unwrap();
    // Every Deployment settled: their status stops changing, so resourceVersions can be compared.
    plane.kubectl_ok(&["wait", "--for=condition=Available", "deployments", "--all", "-A", "--timeout=120s"]).unwrap();
    for (namespace, deployment) in
        [("istio-ingress", "istio-ingressgateway"), ("istio-ingress", "follower")].into_iter().chain(
            [
                "shop-both",
                "shop-canary",
                "shop-legacy",
                "shop-off",
                "shop-optout",
                "shop-plain",
                "shop-stable",
                "shop-tagged",
            ]
            .map(|ns| (ns, "web")),
        )
    {
        plane
            .kubectl_ok(&["-n", namespace, "rollout", "status", &format!("deployment/{deployment}"), "--timeout=90s"])
            .unwrap();
    }
    let kc = &plane.kubeconfig;
    let before = workload_versions(&plane);
    for (args, code, message) in [
        (vec!["gateway", "istio-ingressgateway", "-n", "istio-ingress", "--to", "1-28-0"], 5, "no revision or tag"),
        (vec!["gateway", "web", "-n", "shop-plain", "--to", "1-31-1"], 1, "shop-plain/web is not an injected gateway"),
        (vec!["gateway", "nope", "-n", "istio-ingress", "--to", "1-31-1"], 5, "istio-ingress/nope does not exist"),
        (vec!["gateway", "web", "-n", "shop-stable", "--to", "1-31-1"], 1, "not an injected gateway"),
        (vec!["gateway", "istio-ingressgateway", "--to", "1-31-1"], 2, "needs -n NAMESPACE"),
    ] {
        let (got, _, err) = run(meshmigrate(kc).args(&args));
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    assert_eq!(workload_versions(&plane), before, "refusals change nothing");

    let (code, report, err) = json_run(
        kc,
        &["gateway", "istio-ingressgateway", "-n", "istio-ingress", "--to", "prod-canary", "--timeout=2m"],
    );
    assert_eq!(code, 0, "{report:#}\n{err}");
    assert_eq!(report["from"], "1-30-3");
    assert_eq!(report["rollout"]["state"], "complete");
    assert_eq!(report["notOnTarget"], serde_json::json!([]));
    assert_eq!(report["defaultFollowers"], serde_json::json!(["istio-ingress/follower"]));
    let pods = injected_pods(&plane, "istio-ingress", "istio-ingressgateway");
    assert!(!pods.is_empty() && pods.iter().all(|(_, rev)| rev.as_deref() == Some("1-31-1")), "{pods:?}");
    let (_, log, _) = json_run(kc, &["log"]);
    let entry = &log.as_array().unwrap()[0];
    assert_eq!(
        (entry["action"].as_str(), entry["workload"].as_str(), entry["state"].as_str()),
        (Some("gateway"), Some("deployment/istio-ingressgateway"), Some("done"))
    );
    assert_eq!(entry["from"]["istioRev"], "1-30-3");
}
