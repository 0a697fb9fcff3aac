//! Moving namespaces, restarting what is stale, waiting, rolling back.

use super::*;

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

    // --all rolls back what is left (shop-stable) and skips a moved namespace deleted since.
    plane.kubectl_ok(&["create", "namespace", "short-lived"]).unwrap();
    let (code, _, err) = run(meshmigrate(kc).args(["namespace", "short-lived", "--to", "prod-canary"]));
    assert_eq!(code, 0, "{err}");
    plane.kubectl_ok(&["delete", "namespace", "short-lived", "--wait=false"]).unwrap();
    // Tier A runs no namespace controller: finish the deletion as it would.
    let mut namespace = plane.get_json(&["namespace", "short-lived"]).unwrap();
    namespace["spec"]["finalizers"] = serde_json::json!([]);
    let finalize = plane.dir.join("short-lived.json");
    std::fs::write(&finalize, namespace.to_string()).unwrap();
    let finalize = finalize.to_str().unwrap();
    plane.kubectl_ok(&["replace", "--raw", "/api/v1/namespaces/short-lived/finalize", "-f", finalize]).unwrap();
    while plane.get_json(&["namespace", "short-lived"]).is_some() {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (code, _, err) = run(meshmigrate(kc).args(["rollback", "--all"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("skipping namespace short-lived: it no longer exists"), "{err}");
    assert_eq!(labels_of(&plane, "shop-stable")["istio.io/rev"], "1-30-3");
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

const EXTRA_WORKLOADS: &str = "
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop-stable}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres:17}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: batch, namespace: shop-stable}
spec:
  replicas: 1
  selector: {matchLabels: {app: batch}}
  template:
    metadata: {labels: {app: batch, sidecar.istio.io/inject: 'false'}}
    spec: {containers: [{name: batch, image: busybox}]}
";

/// The whole move on real controllers with a faithful injector: only stale workloads roll, in
/// waves of --max-concurrent, every pod is verified, the opted-out one is reported with its
/// reason, a rerun converges, and a rollback with restart brings the old sidecars back.
#[test]
fn namespace_restart_wait_verify_and_roll_back() {
    let plane = ControlPlane::start(&Options { nodes: 1, ..Default::default() }).unwrap();
    Fixture::install_injected(&plane).unwrap();
    plane.apply(EXTRA_WORKLOADS).unwrap();
    for (ns, workload) in
        [("shop-stable", "deployment/web"), ("shop-stable", "statefulset/db"), ("shop-stable", "deployment/batch")]
            .into_iter()
            .chain([("shop-legacy", "deployment/web"), ("shop-off", "deployment/web")])
    {
        plane.kubectl_ok(&["-n", ns, "rollout", "status", workload, "--timeout=90s"]).unwrap();
    }
    for ns in ["shop-stable", "shop-legacy"] {
        plane.kubectl_ok(&["label", "namespace", ns, "team=shop"]).unwrap();
    }
    assert_eq!(injected_pods(&plane, "shop-stable", "web")[0].1.as_deref(), Some("1-30-3"), "the injector ran");
    let kc = &plane.kubeconfig;
    let args = ["namespace", "-l", "team=shop", "--to", "prod-canary", "--restart", "--wait", "--timeout=3m"];

    // Without a terminal and without --yes, nothing happens.
    let before = workload_versions(&plane);
    let (code, _, err) = run(meshmigrate(kc).args(args));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("not confirmed: Move 2 namespace(s) to prod-canary and restart 3 workload(s)"), "{err}");
    let (code, dry, err) = json_run(kc, &[&args[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(dry["restarts"].as_array().unwrap().len(), 3, "{dry:#}");
    assert_eq!(workload_versions(&plane), before, "refusals and dry runs change nothing");

    let (code, report, err) = json_run(kc, &[&args[..], &["--max-concurrent=1", "--yes"]].concat());
    assert_eq!(code, 0, "{report:#}\n{err}");
    assert_eq!(report["complete"], true);
    let restarted: Vec<String> = report["restarts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}/{} {} {}", r["namespace"], r["workload"], r["result"], r["rollout"]["state"]))
        .collect();
    assert_eq!(
        restarted,
        [
            r#""shop-legacy"/"deployment/web" "restarted" "complete""#,
            r#""shop-stable"/"deployment/web" "restarted" "complete""#,
            r#""shop-stable"/"statefulset/db" "restarted" "complete""#,
        ],
        "the opted-out batch Deployment is not stale and is left alone"
    );
    let off_target = report["notOnTarget"].as_array().unwrap();
    assert_eq!(off_target.len(), 1, "{off_target:#?}");
    assert_eq!(off_target[0]["workload"], "deployment/batch");
    assert_eq!(off_target[0]["reason"], serde_json::json!({"kind": "optedOut", "by": "label"}));
    assert!(err.contains("restarted shop-stable/statefulset/db"), "progress lines on stderr: {err}");
    for (ns, app) in [("shop-stable", "web"), ("shop-stable", "db"), ("shop-legacy", "web")] {
        let pods = injected_pods(&plane, ns, app);
        assert!(!pods.is_empty() && pods.iter().all(|(_, rev)| rev.as_deref() == Some("1-31-1")), "{ns}: {pods:?}");
    }
    // One wave per restart with --max-concurrent=1: three journal times.
    let (_, log, _) = json_run(kc, &["log"]);
    let restart_times: std::collections::BTreeSet<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "restart")
        .map(|e| e["time"].as_str().unwrap())
        .collect();
    assert_eq!(restart_times.len(), 3, "{log:#}");
    assert!(plane.get_json(&["lease", "-n", "istio-system", "kubectl-mesh-lock"]).is_none(), "the lock is released");

    // A rerun converges: nothing left to restart or change.
    let (code, again, err) = json_run(kc, &[&args[..], &["--yes"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(again["restarts"].as_array().unwrap().is_empty(), "{again:#}");
    assert!(again["namespaces"].as_array().unwrap().iter().all(|n| n["unchanged"] == true));

    // Roll one namespace back, with its workloads.
    let (code, dry, _) = json_run(kc, &["rollback", "--all", "--dry-run"]);
    assert_eq!(code, 0);
    let names: Vec<&str> =
        dry["namespaces"].as_array().unwrap().iter().map(|n| n["namespace"].as_str().unwrap()).collect();
    assert_eq!(names, ["shop-legacy", "shop-stable"]);
    let (code, back, err) = json_run(kc, &["rollback", "shop-legacy", "--restart", "--wait", "--timeout=3m", "--yes"]);
    assert_eq!(code, 0, "{back:#}\n{err}");
    assert_eq!(labels_of(&plane, "shop-legacy")["istio-injection"], "enabled");
    let pods = injected_pods(&plane, "shop-legacy", "web");
    assert!(pods.iter().all(|(_, rev)| rev.as_deref() == Some("1-30-3")), "back on the default revision: {pods:?}");
    assert_eq!(back["notOnTarget"], serde_json::json!([]));
}

/// A rollout that cannot finish: `--wait` stops at the deadline with a partial report naming it
/// and exit code 7; a rerun follows it instead of restarting it again. A run while another holds
/// the lock refuses, names the holder, and changes nothing.
#[test]
fn wait_timeout_is_incomplete_and_the_lock_refuses() {
    let plane = ControlPlane::start(&Options { nodes: 1, ..Default::default() }).unwrap();
    Fixture::install_injected(&plane).unwrap();
    plane
        .apply(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: stuck, namespace: shop-stable}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: stuck}}\n  template:\n    metadata: {labels: {app: stuck}}\n    spec:\n      nodeSelector: {no-such-node: 'true'}\n      containers: [{name: app, image: nginx:1.27}]\n",
        )
        .unwrap();
    plane.kubectl_ok(&["-n", "shop-stable", "rollout", "status", "deployment/web", "--timeout=90s"]).unwrap();
    // Its pod exists (Pending, unschedulable) and was injected by the stable revision.
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while injected_pods(&plane, "shop-stable", "stuck").first().and_then(|p| p.1.clone()).as_deref() != Some("1-30-3") {
        assert!(std::time::Instant::now() < limit, "no pod for deployment/stuck");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let kc = &plane.kubeconfig;
    let args = ["namespace", "shop-stable", "--to", "1-31-1", "--restart", "--wait", "--timeout=15s", "--yes"];
    let (code, report, err) = json_run(kc, &args);
    assert_eq!(code, 7, "{report:#}\n{err}");
    assert_eq!(report["complete"], false);
    let stuck = report["restarts"].as_array().unwrap().iter().find(|r| r["workload"] == "deployment/stuck").unwrap();
    assert_eq!(stuck["rollout"]["state"], "progressing", "{stuck:#}");
    let off: Vec<&Value> = report["notOnTarget"].as_array().unwrap().iter().collect();
    assert!(
        off.iter().any(|p| p["workload"] == "deployment/stuck" && p["reason"]["kind"] == "rolloutIncomplete"),
        "{off:#?}"
    );
    // A rerun follows the stuck rollout instead of restarting it again; while it holds the lock,
    // a second run refuses and names it.
    let rerun = meshmigrate(kc)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while plane.get_json(&["lease", "-n", "istio-system", "kubectl-mesh-lock"]).is_none() {
        assert!(std::time::Instant::now() < limit, "the rerun never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, _, err) = run(meshmigrate(kc).args(["namespace", "shop-legacy", "--to", "1-31-1"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("holds the lock: admin on ") && err.contains(&format!("(pid {})", rerun.id())), "{err}");
    let out = rerun.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{text}");
    assert!(text.contains("already restarted") && text.contains("Incomplete"), "a rerun follows, not restarts: {text}");
    assert_eq!(labels_of(&plane, "shop-legacy")["istio-injection"], "enabled", "the refused run changed nothing");

    // Someone else (on another machine) holds the lock.
    plane
        .apply(&format!(
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: kubectl-mesh-lock, namespace: istio-system}}\nspec:\n  holderIdentity: alice on laptop (pid 42)\n  leaseDurationSeconds: 300\n  acquireTime: {now}\n  renewTime: {now}\n",
            now = "\"2099-01-01T00:00:00.000000Z\""
        ))
        .unwrap();
    let before = workload_versions(&plane);
    let (code, _, err) = run(meshmigrate(kc).args(["namespace", "shop-legacy", "--to", "1-31-1"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another run holds the lock: alice on laptop (pid 42)"), "{err}");
    assert_eq!(workload_versions(&plane), before, "nothing changed");
}
