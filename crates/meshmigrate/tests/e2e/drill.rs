//! The apiserver killed mid-run, three times; reruns converge.

use super::*;

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
