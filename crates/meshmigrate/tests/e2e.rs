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

fn json_run(kubeconfig: &Path, args: &[&str]) -> (i32, Value, String) {
    let (code, out, err) = run(meshmigrate(kubeconfig).args(args).args(["-o", "json"]));
    let value = if out.trim().is_empty() && code != 0 {
        Value::Null
    } else {
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}\n{err}"))
    };
    (code, value, err)
}

/// `(pod name, injected revision)` of the running pods of `app` in `namespace`.
fn injected_pods(plane: &ControlPlane, namespace: &str, app: &str) -> Vec<(String, Option<String>)> {
    // `None` when there is no pod yet.
    let Some(pods) = plane.get_json(&["pods", "-n", namespace, "-l", &format!("app={app}")]) else { return vec![] };
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let rev = p["metadata"]["annotations"]["istio.io/rev"].as_str().map(String::from);
            (p["metadata"]["name"].as_str().unwrap().to_string(), rev)
        })
        .collect()
}

/// resourceVersions of everything a run may change (node and apiserver leases renew by themselves).
fn workload_versions(plane: &ControlPlane) -> String {
    let jsonpath = "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}={.metadata.resourceVersion} {end}";
    let mut all =
        plane.kubectl_ok(&["get", "namespaces,configmaps,deployments,statefulsets", "-A", "-o", jsonpath]).unwrap();
    all.push_str(&plane.kubectl_ok(&["get", "leases", "-n", "istio-system", "-o", jsonpath]).unwrap());
    all
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
    assert!(plane.get_json(&["lease", "-n", "istio-system", "meshmigrate-lock"]).is_none(), "the lock is released");

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
    while plane.get_json(&["lease", "-n", "istio-system", "meshmigrate-lock"]).is_none() {
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
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: meshmigrate-lock, namespace: istio-system}}\nspec:\n  holderIdentity: alice on laptop (pid 42)\n  leaseDurationSeconds: 300\n  acquireTime: {now}\n  renewTime: {now}\n",
            now = "\"2099-01-01T00:00:00.000000Z\""
        ))
        .unwrap();
    let before = workload_versions(&plane);
    let (code, _, err) = run(meshmigrate(kc).args(["namespace", "shop-legacy", "--to", "1-31-1"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another meshmigrate run holds the lock: alice on laptop (pid 42)"), "{err}");
    assert_eq!(workload_versions(&plane), before, "nothing changed");
}

/// The journal's entries as the apiserver holds them: `(action, state)` of each.
fn journal_entries(plane: &ControlPlane) -> Vec<(String, String)> {
    let Some(map) = plane.get_json(&["configmap", "-n", "istio-system", "meshmigrate-journal"]) else { return vec![] };
    map["data"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| {
            let entry: Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
            (entry["action"].as_str().unwrap_or_default().into(), entry["state"].as_str().unwrap_or_default().into())
        })
        .collect()
}

/// Namespaces of the drill that carry no injection label at all.
fn unlabelled(plane: &ControlPlane, namespaces: &[String]) -> Vec<String> {
    let all = plane.get_json(&["namespaces", "-l", "team=drill"]).unwrap();
    let labelled: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            let labels = &n["metadata"]["labels"];
            !labels["istio.io/rev"].is_null() || !labels["istio-injection"].is_null()
        })
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    namespaces.iter().filter(|ns| !labelled.contains(&ns.as_str())).cloned().collect()
}

/// Runs `args` in the background until `stop_here` holds for the journal, then kills the
/// apiserver, checks that the run fails as unreachable, and starts the apiserver again. A run
/// refused because a killed run's lease has not expired yet is started again.
fn run_until_stopped(plane: &mut ControlPlane, args: &[&str], stop_here: impl Fn(&[(String, String)]) -> bool) {
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let mut run = meshmigrate(&plane.kubeconfig)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        while !stop_here(&journal_entries(plane)) {
            assert!(std::time::Instant::now() < limit, "the run never reached its stop point");
            if run.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if let Some(status) = run.try_wait().unwrap() {
            let out = run.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(status.code() == Some(1) && err.contains("holds the lock"), "the run ended first: {err}");
            std::thread::sleep(std::time::Duration::from_secs(2));
            continue;
        }
        plane.stop_apiserver().unwrap();
        let out = run.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "the interrupted run fails as unreachable: {err}");
        plane.start_apiserver().unwrap();
        return;
    }
}

/// Reliability drill: kube-apiserver dies three times during a `--restart --wait` move of many
/// namespaces: while the namespaces are relabelled, half-way through the restarts and near their
/// end; each time the same command is rerun. No namespace is ever seen without its injection
/// label; the last rerun converges (once the dead run's lease expires): every namespace carries
/// the target label, every pod is on the target, and the journal holds exactly one settled move
/// per namespace and no pending entry.
#[test]
fn apiserver_stopped_mid_run_then_rerun_converges() {
    // 24 keeps CI quick on two cores; MESHTEST_DRILL_NAMESPACES=100 runs the drill at full size.
    let namespaces: usize = std::env::var("MESHTEST_DRILL_NAMESPACES").ok().and_then(|n| n.parse().ok()).unwrap_or(24);
    // Room for every pod and the rollouts' surge, 110 pods a kwok node.
    let nodes = (namespaces * 2).div_ceil(100).max(1);
    eprintln!("drill: {namespaces} namespaces on {nodes} kwok node(s)");
    let mut plane = ControlPlane::start(&Options { nodes, ..Default::default() }).unwrap();
    Fixture::install_injected(&plane).unwrap();
    let mut manifest = String::new();
    for i in 0..namespaces {
        let label = if i % 2 == 0 { "istio-injection: enabled" } else { "istio.io/rev: prod-stable" };
        manifest.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: drill-{i:03}\n  labels: {{team: drill, {label}}}\n---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: drill-{i:03}}}\nspec:\n  replicas: 1\n  \
             selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    \
             spec: {{containers: [{{name: web, image: nginx:1.27}}]}}\n---\n"
        ));
    }
    plane.apply(&manifest).unwrap();
    let drill: Vec<String> = (0..namespaces).map(|i| format!("drill-{i:03}")).collect();
    let available = format!("--timeout={}s", 240 + namespaces * 3);
    plane.kubectl_ok(&["wait", "--for=condition=Available", "deployments", "--all", "-A", &available]).unwrap();
    let kc = plane.kubeconfig.clone();
    let args = ["namespace", "-l", "team=drill", "--to", "prod-canary", "--restart", "--wait", "--timeout=4m", "--yes"];
    let run_args = [&args[..], &["--max-concurrent=4"]].concat();
    // Each stop point: once the journal holds a move and at least this many restarts.
    let stop_points = [
        ("while relabelling", 0),
        ("half-way through the restarts", namespaces / 2),
        ("near the end", namespaces * 5 / 6),
    ];
    for (when, restarts) in stop_points {
        run_until_stopped(&mut plane, &run_args, |journal| {
            journal.iter().any(|(action, _)| action == "relabel")
                && journal.iter().filter(|(action, _)| action == "restart").count() >= restarts
        });
        assert_eq!(unlabelled(&plane, &drill), Vec::<String>::new(), "stopped {when}");
        let (code, log, err) = json_run(&kc, &["log"]);
        assert_eq!(code, 0, "the journal reads after a stop {when}: {err}");
        assert!(log.as_array().is_some_and(|l| !l.is_empty()), "stopped {when}: {log:#}");
    }

    // The dead run's lease blocks until it expires; then the rerun converges.
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (mut code, mut report, mut err) = json_run(&kc, &run_args);
    let mut refused = 0;
    while code == 1 && err.contains("holds the lock") && std::time::Instant::now() < limit {
        refused += 1;
        std::thread::sleep(std::time::Duration::from_secs(2));
        (code, report, err) = json_run(&kc, &run_args);
    }
    assert_eq!(code, 0, "{report:#}\n{err}");
    assert!(refused > 0, "the dead run's lease was still there right after the restart");
    assert_eq!(report["notOnTarget"], serde_json::json!([]), "{report:#}");
    let namespaces = plane.get_json(&["namespaces", "-l", "team=drill"]).unwrap();
    for namespace in namespaces["items"].as_array().unwrap() {
        let (ns, labels) = (namespace["metadata"]["name"].as_str().unwrap(), &namespace["metadata"]["labels"]);
        assert_eq!(labels["istio.io/rev"], "prod-canary", "{ns}: {labels}");
        assert!(labels.get("istio-injection").is_none(), "{ns}: {labels}");
    }
    let pods = plane.get_json(&["pods", "-A", "-l", "app=web"]).unwrap();
    for pod in pods["items"].as_array().unwrap().iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()) {
        let ns = pod["metadata"]["namespace"].as_str().unwrap();
        if drill.iter().any(|d| d == ns) {
            assert_eq!(pod["metadata"]["annotations"]["istio.io/rev"], "1-31-1", "{ns}: {}", pod["metadata"]["name"]);
        }
    }
    let (_, log, _) = json_run(&kc, &["log"]);
    let log = log.as_array().unwrap();
    assert!(log.iter().all(|e| e["state"] != "pending"), "{log:#?}");
    for ns in &drill {
        let relabels: Vec<&Value> =
            log.iter().filter(|e| e["namespace"] == ns.as_str() && e["action"] == "relabel").collect();
        // A run stopped between recording a move and making it leaves an entry a rerun settles as
        // abandoned (never made); exactly one move is done.
        let moves: Vec<&Value> = relabels.iter().copied().filter(|e| e["state"] == "done").collect();
        assert_eq!(moves.len(), 1, "{ns}: one move done: {relabels:#?}");
        assert!(relabels.iter().all(|e| e["state"] == "done" || e["state"] == "abandoned"), "{relabels:#?}");
        let expected_from = if ns.ends_with(['0', '2', '4', '6', '8']) { "istioInjection" } else { "istioRev" };
        assert!(!moves[0]["from"][expected_from].is_null(), "{ns}: the labels it had are recorded: {moves:#?}");
        assert!(
            log.iter().any(|e| e["namespace"] == ns.as_str() && e["action"] == "restart" && e["state"] == "done"),
            "{ns}: its restart is recorded as done"
        );
    }
}

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

/// `kind/name` of every object still labelled with `revision` (tags aside), across the kinds an
/// install owns.
fn owned_by(plane: &ControlPlane, revision: &str) -> Vec<String> {
    let kinds = "mutatingwebhookconfigurations,validatingwebhookconfigurations,clusterroles,clusterrolebindings";
    let selector = format!("istio.io/rev={revision},!istio.io/tag");
    let mut found: Vec<String> =
        plane.kubectl_ok(&["get", kinds, "-l", &selector, "-o", "name"]).unwrap().lines().map(String::from).collect();
    let namespaced = "deployments,services,configmaps,serviceaccounts,roles,rolebindings,poddisruptionbudgets,\
                      horizontalpodautoscalers";
    found.extend(
        plane
            .kubectl_ok(&["get", namespaced, "-n", "istio-system", "-l", &selector, "-o", "name"])
            .unwrap()
            .lines()
            .map(String::from),
    );
    found
}

/// The seed's last step, done safely: refused while used, backed up, deleted by label, rerunnable.
#[test]
fn retire_refuses_a_used_revision_then_backs_up_and_deletes_an_unused_one() {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("canary.tar.gz");
    let everything = || {
        plane
            .kubectl_ok(&[
                "get",
                "deployments,services,configmaps,mutatingwebhookconfigurations,validatingwebhookconfigurations,clusterroles",
                "-A",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}",
            ])
            .unwrap()
    };

    let before = everything();
    let (code, _, err) = run(meshmigrate(&plane.kubeconfig).args(["retire", "1-31-1", "--yes", "-f"]).arg(&backup));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("revision 1-31-1 is still in use") && err.contains("tag/prod-canary"), "{err}");
    assert!(err.contains("namespace/shop-canary (istio.io/rev=prod-canary)"), "{err}");
    assert_eq!(everything(), before, "a refusal changes nothing");
    assert!(!backup.exists());
    let (code, _, err) = run(meshmigrate(&plane.kubeconfig).args(["retire", "1-29-0", "--yes"]));
    assert_eq!(code, 5, "{err}");

    // Move everything off the canary: its tag goes, its namespaces go back to the stable revision.
    plane
        .kubectl_ok(&["delete", "mutatingwebhookconfigurations,services", "-A", "-l", "istio.io/tag=prod-canary"])
        .unwrap();
    plane
        .kubectl_ok(&["label", "namespaces", "-l", "istio.io/rev=prod-canary", "istio.io/rev=1-30-3", "--overwrite"])
        .unwrap();
    let owned = owned_by(&plane, "1-31-1");
    assert!(owned.contains(&"deployment.apps/istiod-1-31-1".to_string()), "{owned:?}");
    // The chart labels its RBAC and ServiceAccount with the Helm release only.
    let release = "app=istiod,app.kubernetes.io/instance=istiod-1-31-1";
    let rbac = || {
        plane
            .kubectl_ok(&[
                "get",
                "clusterroles,clusterrolebindings,serviceaccounts,roles,rolebindings",
                "-A",
                "-l",
                release,
                "-o",
                "name",
            ])
            .unwrap()
    };
    let rbac_before = rbac();
    assert!(
        rbac_before.contains("clusterrole.rbac.authorization.k8s.io/istiod-clusterrole-1-31-1-istio-system"),
        "{rbac_before}"
    );

    let (code, plan, err) = json_run(&plane.kubeconfig, &["retire", "1-31-1", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(plan["deleted"].as_array().unwrap().len(), owned.len() + rbac_before.lines().count(), "{plan:#}");
    assert_eq!(plan["deleted"][0]["kind"], "MutatingWebhookConfiguration", "webhooks go first: {plan:#}");
    assert_eq!(owned_by(&plane, "1-31-1"), owned, "a dry run deletes nothing");

    // `{..resourceVersion}` includes the list's own (empty) one; keep the objects' only.
    let stable = || {
        let versions = plane
            .kubectl_ok(&[
                "get",
                "deployment,service",
                "-n",
                "istio-system",
                "-l",
                "istio.io/rev=1-30-3",
                "-o",
                "jsonpath={range .items[*]}{.metadata.resourceVersion} {end}",
            ])
            .unwrap();
        let mut versions: Vec<String> = versions.split_whitespace().map(String::from).collect();
        versions.sort();
        versions
    };
    let stable_before = stable();
    let crds_before = plane.kubectl_ok(&["get", "crds", "-o", "name"]).unwrap();
    let (code, done, err) = json_run(&plane.kubeconfig, &["retire", "1-31-1", "--yes", "-f", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(owned_by(&plane, "1-31-1").is_empty(), "{:?}", owned_by(&plane, "1-31-1"));
    assert_eq!(rbac(), "", "the release's RBAC is gone too");
    assert_eq!(stable(), stable_before, "the stable revision is untouched");
    assert_eq!(plane.kubectl_ok(&["get", "crds", "-o", "name"]).unwrap(), crds_before, "shared CRDs stay");
    let manifest = meshkit::archive::verify_file(&backup).unwrap();
    assert_eq!(manifest.objects.len(), done["deleted"].as_array().unwrap().len());
    assert!(manifest.objects.iter().any(|o| o.kind == "Deployment" && o.name == "istiod-1-31-1"), "{manifest:?}");

    let (code, _, err) = run(meshmigrate(&plane.kubeconfig).args(["retire", "1-31-1", "--yes"]));
    assert_eq!(code, 0, "a rerun converges: {err}");
    assert!(err.contains("already retired"), "{err}");
    let (_, log, _) = json_run(&plane.kubeconfig, &["log"]);
    let retired = log.as_array().unwrap().iter().find(|e| e["action"] == "retire").expect("journaled");
    assert_eq!((retired["workload"].as_str(), retired["state"].as_str()), (Some("revision/1-31-1"), Some("done")));
}
