//! `kubectl-meshmigrate status` against a real kube-apiserver with Istio's own objects; Tier B
//! for pods that real controllers own.

use std::path::Path;
use std::process::Command;

use meshtest::{ControlPlane, Fixture, Options, run};
use serde_json::Value;

fn meshmigrate(kubeconfig: &Path) -> Command {
    meshtest::plugin(env!("CARGO_BIN_EXE_kubectl-meshmigrate"), kubeconfig)
}

fn status(kubeconfig: &Path, args: &[&str]) -> Vec<Value> {
    let (code, out, err) = run(meshmigrate(kubeconfig).arg("status").args(args).args(["-o", "json"]));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().clone()
}

fn namespace<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter().find(|r| r["namespace"] == name).unwrap_or_else(|| panic!("{name} not in {rows:#?}"))
}

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

fn labels_of(plane: &ControlPlane, namespace: &str) -> Value {
    plane.get_json(&["namespace", namespace]).unwrap()["metadata"]["labels"].clone()
}

fn versions(plane: &ControlPlane) -> String {
    plane
        .kubectl_ok(&[
            "get",
            "namespaces,configmaps",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}",
        ])
        .unwrap()
}

/// The seed's move: namespaces to the canary through a tag, recorded first, rolled back exactly.
#[test]
fn move_record_and_roll_back_namespaces() {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, true).unwrap();
    let kc = &plane.kubeconfig;

    let before = versions(&plane);
    let (code, out, err) = run(meshmigrate(kc).args(["namespace", "shop-legacy", "--to", "prod-canary", "--dry-run"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("istio-injection=enabled") && out.contains("would change (dry run)"), "{out}");
    assert_eq!(versions(&plane), before, "a dry run changes nothing");

    // Refusals change nothing either.
    for (args, code, message) in [
        (vec!["namespace", "shop-legacy", "--to", "1-28-0"], 5, "no revision or tag named \"1-28-0\""),
        (vec!["namespace", "kube-system", "--to", "1-31-1"], 1, "refusing to relabel system namespace(s) kube-system"),
        (vec!["namespace", "nope", "--to", "1-31-1"], 5, "namespace(s) nope do not exist"),
        (vec!["namespace", "shop-legacy"], 2, "needs --to"),
        (vec!["rollback", "shop-stable"], 5, "no recorded change to roll back for namespace shop-stable"),
    ] {
        let (got, _, err) = run(meshmigrate(kc).args(&args));
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    assert_eq!(versions(&plane), before);

    let (code, _, err) = run(meshmigrate(kc).args(["namespace", "shop-legacy", "shop-stable", "--to", "prod-canary"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(labels_of(&plane, "shop-legacy")["istio.io/rev"], "prod-canary");
    assert!(labels_of(&plane, "shop-legacy").get("istio-injection").is_none());
    assert_eq!(labels_of(&plane, "shop-stable")["istio.io/rev"], "prod-canary");
    // A rerun converges without new entries.
    let (code, out, _) = run(meshmigrate(kc).args(["namespace", "shop-legacy", "shop-stable", "--to", "prod-canary"]));
    assert_eq!(code, 0);
    assert_eq!(out.matches("unchanged").count(), 2, "{out}");

    let (code, out, err) = run(meshmigrate(kc).args(["log", "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    let log: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(log.len(), 2, "{log:#?}");
    assert_eq!(log[0]["namespace"], "shop-legacy");
    assert_eq!(log[0]["from"]["istioInjection"], "enabled");
    assert_eq!(log[0]["state"], "done");
    assert_eq!(log[0]["user"], "admin");

    // The moved namespace's pod is now stale: status says so.
    let rows = status(kc, &["shop-legacy"]);
    assert_eq!(rows[0]["stalePods"], serde_json::json!(["web-0"]));

    let (code, _, err) = run(meshmigrate(kc).args(["rollback", "shop-legacy"]));
    assert_eq!(code, 0, "{err}");
    let restored = labels_of(&plane, "shop-legacy");
    assert_eq!(restored["istio-injection"], "enabled");
    assert!(restored.get("istio.io/rev").is_none(), "exactly the labels it had: {restored}");
    let (_, out, _) = run(meshmigrate(kc).args(["log"]));
    assert!(out.contains("rollback of 000001"), "{out}");
    let (code, _, _) = run(meshmigrate(kc).args(["rollback", "shop-legacy"]));
    assert_eq!(code, 5, "nothing left to roll back");
}

/// Only workloads with stale pods are restarted, each journaled first; the rollout really
/// happens (Tier B).
#[test]
fn restart_only_what_is_stale() {
    let plane = ControlPlane::start(&Options { nodes: 1, ..Default::default() }).unwrap();
    Fixture::install(&plane, false).unwrap();
    for ns in ["shop-canary", "shop-off", "shop-plain"] {
        plane.kubectl_ok(&["-n", ns, "rollout", "status", "deployment/web", "--timeout=90s"]).unwrap();
    }
    let kc = &plane.kubeconfig;
    let generation = |ns: &str| {
        plane.get_json(&["deployment", "-n", ns, "web"]).unwrap()["metadata"]["generation"].as_i64().unwrap()
    };
    let before: Vec<i64> = ["shop-canary", "shop-off", "shop-plain"].iter().map(|ns| generation(ns)).collect();

    let (code, out, err) = run(meshmigrate(kc).args(["restart", "shop-canary", "shop-off", "shop-plain", "--dry-run"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("shop-canary   deployment/web") && out.contains("would restart (dry run)"), "{out}");
    assert!(!out.contains("shop-off") && !out.contains("shop-plain"), "nothing stale there: {out}");
    assert_eq!(["shop-canary", "shop-off", "shop-plain"].iter().map(|ns| generation(ns)).collect::<Vec<_>>(), before);

    let (code, _, err) = run(meshmigrate(kc).args(["restart", "shop-canary", "shop-off", "shop-plain"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(generation("shop-canary"), before[0] + 1, "restarted");
    assert_eq!((generation("shop-off"), generation("shop-plain")), (before[1], before[2]), "left alone");
    plane.kubectl_ok(&["-n", "shop-canary", "rollout", "status", "deployment/web", "--timeout=90s"]).unwrap();
    let (_, log, _) = run(meshmigrate(kc).args(["log", "-o", "json"]));
    let log: Vec<Value> = serde_json::from_str(&log).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0]["action"].as_str(), log[0]["workload"].as_str(), log[0]["state"].as_str()),
        (Some("restart"), Some("deployment/web"), Some("done"))
    );
}
