//! Tier C, on real istiod injecting through real admission: `meshmigrate explain` agrees with
//! what admission did for every namespace/pod label combination, and with `istioctl x
//! check-inject`; restarts respect the workload: a PodDisruptionBudget that allows no
//! disruption holds its workload's restart back, visibly, until the timeout; a rollout that fails
//! stops new waves; a rerun converges.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use meshtest::{ControlPlane, NEW_ISTIO, OLD_ISTIO, Options, RealFixture, run};
use serde_json::Value;

fn plugin(plane: &ControlPlane, name: &str, args: &[&str]) -> (i32, String, String) {
    let binary = common::built_binary(&format!("kubectl-{name}"));
    run(meshtest::plugin(binary.to_str().unwrap(), &plane.kubeconfig).args(args))
}

fn json(plane: &ControlPlane, name: &str, args: &[&str], want: i32) -> (Value, String) {
    let (code, out, err) = plugin(plane, name, &[args, &["-o", "json"]].concat());
    assert_eq!(code, want, "{name} {args:?}:\n{out}\n{err}");
    let value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{name} {args:?} printed no JSON ({e}):\n{out}\n{err}"));
    (value, err)
}

fn generation(plane: &ControlPlane, name: &str) -> i64 {
    plane.get_json(&["deployment", "-n", "waves", name]).unwrap()["metadata"]["generation"].as_i64().unwrap()
}

/// The outcome of `workload` in a restart report (an array, or `restarts` of a --wait object).
fn outcome<'a>(report: &'a Value, workload: &str) -> &'a Value {
    let all = report.as_array().or_else(|| report["restarts"].as_array()).unwrap();
    all.iter().find(|o| o["workload"] == workload).unwrap_or_else(|| panic!("no {workload} in {report:#}"))
}

fn waves_namespace(revision: &str) -> String {
    let mut manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: waves, labels: {{istio.io/rev: {revision}}}}}\n---\n\
         apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: guarded, namespace: waves}}\n\
         spec: {{maxUnavailable: 0, selector: {{matchLabels: {{app: guarded}}}}}}\n"
    );
    for app in ["alpha", "beta", "guarded"] {
        manifest.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {app}, namespace: waves}}\nspec:\n  \
             replicas: 1\n  progressDeadlineSeconds: 30\n  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    \
             metadata: {{labels: {{app: {app}}}}}\n    spec: {{containers: [{{name: web, image: nginx:1.27}}]}}\n"
        ));
    }
    manifest
}

fn rolled_out(plane: &ControlPlane, names: &[&str]) {
    for name in names {
        plane
            .kubectl_ok(&["rollout", "status", &format!("deployment/{name}"), "-n", "waves", "--timeout=120s"])
            .unwrap();
    }
}

/// Label combinations the standard fixture lacks: a pod-level revision in an unlabelled
/// namespace, a pod with no labels there, opt-outs by label and by annotation, and a namespace
/// with both the legacy label and a revision.
fn extra_pods(new: &str) -> String {
    let pod = |ns: &str, name: &str, meta: &str| {
        format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {ns}{meta}}}\n\
             spec: {{containers: [{{name: web, image: nginx:1.27}}]}}\n"
        )
    };
    let mut manifest = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: explain-plain}}\n---\napiVersion: v1\nkind: Namespace\n\
         metadata: {{name: explain-both, labels: {{istio-injection: enabled, istio.io/rev: {new}}}}}\n"
    );
    manifest.push_str(&pod("explain-plain", "by-pod-rev", &format!(", labels: {{istio.io/rev: {new}}}")));
    manifest.push_str(&pod("explain-plain", "nothing", ""));
    manifest.push_str(&pod("shop-canary", "opt-out-label", ", labels: {sidecar.istio.io/inject: 'false'}"));
    manifest.push_str(&pod("shop-canary", "opt-out-annotation", ", annotations: {sidecar.istio.io/inject: 'false'}"));
    manifest.push_str(&pod("explain-both", "web", ""));
    manifest
}

/// The revision real istiod recorded in a pod's `sidecar.istio.io/status`, if it injected it.
fn injected_by(pod: &Value) -> Option<String> {
    let status = pod["metadata"]["annotations"]["sidecar.istio.io/status"].as_str()?;
    let status: Value = serde_json::from_str(status).unwrap();
    Some(status["revision"].as_str().unwrap().to_string())
}

/// `(configuration, revision)` of every injector `istioctl x check-inject` says would inject.
fn istioctl_selects(plane: &ControlPlane, namespace: &str, pod: &str) -> BTreeSet<(String, String)> {
    let istioctl = meshtest::Tools::ensure().unwrap().istioctl().unwrap();
    let out = Command::new(&istioctl)
        .args(["x", "check-inject", pod, "-n", namespace])
        .env("KUBECONFIG", &plane.kubeconfig)
        .env("HOME", &plane.dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "istioctl x check-inject {pod} -n {namespace}: {text}");
    // The mark may come wrapped in colour codes.
    let selects: BTreeSet<(String, String)> = text
        .lines()
        .filter_map(|line| match line.split_whitespace().collect::<Vec<_>>()[..] {
            [webhook, revision, mark, ..] if mark.contains('✔') => Some((webhook.to_string(), revision.to_string())),
            _ => None,
        })
        .collect();
    assert!(text.contains("WEBHOOK"), "{text}");
    eprintln!("istioctl x check-inject {pod} -n {namespace}: {selects:?}");
    selects
}

fn explain_matches_admission_and_istioctl(plane: &ControlPlane, new: &str) {
    plane.apply(&extra_pods(new)).unwrap();
    let namespaces = [
        "shop-legacy",
        "shop-stable",
        "shop-tagged",
        "shop-plain",
        "shop-off",
        "shop-canary",
        "istio-ingress",
        "explain-plain",
        "explain-both",
    ];
    plane
        .kubectl_ok(&["wait", "--for=condition=Ready", "pods", "--all", "-n", "explain-plain", "--timeout=90s"])
        .unwrap();
    let mut checked = 0;
    for ns in namespaces {
        let (answer, _) = json(plane, "meshmigrate", &["explain", ns], 0);
        let pods = plane.get_json(&["pods", "-n", ns]).unwrap();
        for pod in pods["items"].as_array().unwrap().iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()) {
            let name = pod["metadata"]["name"].as_str().unwrap();
            let ours = answer["pods"].as_array().unwrap().iter().find(|e| e["pod"] == name);
            let ours = ours.unwrap_or_else(|| panic!("{ns}/{name} missing: {answer:#}"));
            // Nothing changed since these pods were admitted: the next injection is the last one.
            assert_eq!(ours["injects"].as_str().map(str::to_string), injected_by(pod), "{ns}/{name}: {ours:#}");
            assert_eq!(ours["state"], "upToDate", "{ns}/{name}: {ours:#}");
            assert_eq!(ours["conflict"], false, "{ns}/{name}");
            let selecting: BTreeSet<(String, String)> = ours["webhooks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|w| w["selects"] == true)
                .map(|w| (w["configuration"].as_str().unwrap().into(), w["revision"].as_str().unwrap().into()))
                .collect();
            assert_eq!(selecting, istioctl_selects(plane, ns, name), "{ns}/{name}: explain and check-inject disagree");
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked} pods explained");
    let (annotated, _) = json(plane, "meshmigrate", &["explain", "opt-out-annotation", "-n", "shop-canary"], 0);
    assert_eq!(annotated["optOuts"], serde_json::json!(["pod annotation sidecar.istio.io/inject=false"]));
    let (by_pod, _) = json(plane, "meshmigrate", &["explain", "pod/by-pod-rev", "-n", "explain-plain"], 0);
    assert!(by_pod["via"].as_str().unwrap().starts_with(&format!("pod label istio.io/rev={new}")), "{by_pod:#}");
    let (tagged, _) = json(plane, "meshmigrate", &["explain", "shop-canary"], 0);
    assert!(tagged["newPod"]["via"].as_str().unwrap().contains(&format!("(tag prod-canary → {new}")), "{tagged:#}");
    let (code, _, err) = plugin(plane, "meshmigrate", &["explain", "no-such-pod", "-n", "shop-canary"]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("pod shop-canary/no-such-pod does not exist"), "{err}");
}

#[test]
fn explain_agrees_with_admission_and_restarts_respect_the_workload() {
    let plane = ControlPlane::start(&Options { nodes: 1, real_istio: true, ..Default::default() }).unwrap();
    let fixture = RealFixture::install(&plane, 2).unwrap();
    let (old, new) = (OLD_ISTIO.revision(), NEW_ISTIO.revision());
    explain_matches_admission_and_istioctl(&plane, &new);
    plane.apply(&waves_namespace(&old)).unwrap();
    rolled_out(&plane, &["alpha", "beta", "guarded"]);

    // The namespace moves by hand: all three workloads' pods are stale now.
    plane.kubectl_ok(&["label", "namespace", "waves", &format!("istio.io/rev={new}"), "--overwrite"]).unwrap();
    let (explained, _) = json(&plane, "meshmigrate", &["explain", "waves"], 0);
    for pod in explained["pods"].as_array().unwrap() {
        assert_eq!(pod["state"], "stale", "{pod:#}");
        assert_eq!(pod["staleReason"], format!("revision moved {old} → {new}"), "{pod:#}");
    }
    let before = generation(&plane, "guarded");
    let started = Instant::now();
    let (report, err) = json(&plane, "meshmigrate", &["restart", "waves", "--timeout", "6s"], 7);
    assert!(started.elapsed() >= Duration::from_secs(6), "held until the timeout, not given up at once");
    let guarded = outcome(&report, "deployment/guarded");
    assert_eq!(guarded["result"], "notStarted", "{report:#}");
    assert_eq!(
        guarded["reason"], "held until the timeout: PodDisruptionBudget waves/guarded allows no disruption now",
        "{report:#}"
    );
    assert!(err.contains("waiting to restart waves/deployment/guarded: PodDisruptionBudget waves/guarded"), "{err}");
    assert_eq!(generation(&plane, "guarded"), before, "never restarted");
    for other in ["deployment/alpha", "deployment/beta"] {
        assert_eq!(outcome(&report, other)["result"], "restarted", "the budget holds only its own: {report:#}");
    }
    rolled_out(&plane, &["alpha", "beta"]);
    for pod in
        plane.get_json(&["pods", "-n", "waves", "-l", "app in (alpha,beta)"]).unwrap()["items"].as_array().unwrap()
    {
        if pod["metadata"]["deletionTimestamp"].is_null() {
            assert_eq!(pod["metadata"]["annotations"]["istio.io/rev"], new.as_str(), "real istiod injected the canary");
        }
    }

    // A quota leaves no room for a surge pod: alpha's rollout cannot create its pod, so beta
    // (next in line with --max-concurrent 1) is never started.
    plane.kubectl_ok(&["delete", "pdb", "guarded", "-n", "waves"]).unwrap();
    plane.kubectl_ok(&["label", "namespace", "waves", &format!("istio.io/rev={old}"), "--overwrite"]).unwrap();
    plane
        .apply("apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: full, namespace: waves}\nspec: {hard: {pods: \"3\"}}\n")
        .unwrap();
    let beta = generation(&plane, "beta");
    let (report, err) =
        json(&plane, "meshmigrate", &["restart", "waves", "--max-concurrent", "1", "--timeout", "90s"], 7);
    let alpha = outcome(&report, "deployment/alpha");
    assert_eq!(alpha["result"], "restarted", "{report:#}");
    assert_eq!(alpha["rollout"]["state"], "stuck", "{report:#}");
    assert!(alpha["rollout"]["reason"].as_str().unwrap().contains("exceeded quota"), "{report:#}");
    let stopped = outcome(&report, "deployment/beta");
    assert_eq!(stopped["result"], "notStarted", "{report:#}");
    assert!(stopped["reason"].as_str().unwrap().starts_with("stopped: waves/deployment/alpha pods cannot be created"));
    assert!(err.contains("stopped starting restarts"), "{err}");
    assert_eq!(generation(&plane, "beta"), beta, "no new wave after a failed rollout");

    // Room again: the same command continues and converges, then nothing is stale.
    plane.kubectl_ok(&["delete", "resourcequota", "full", "-n", "waves"]).unwrap();
    let (report, err) = json(&plane, "meshmigrate", &["restart", "waves", "--wait", "--timeout", "3m"], 0);
    assert_eq!(report["rollouts"]["waves/deployment/beta"]["state"], "complete", "{report:#}\n{err}");
    let (status, _) = json(&plane, "meshmigrate", &["status", "waves"], 0);
    assert_eq!(status[0]["stalePods"], serde_json::json!([]), "{status:#}");

    // The template changes in place: the old revision's release turns the Istio CNI on. Its pods
    // carry istio-init, which real istiod no longer injects; status says so, and a restart gets
    // istio-validation from it.
    let discovery = fixture.old_charts.join("istio-control/istio-discovery");
    let out = meshtest::helm_command(&plane)
        .args(["upgrade", &format!("istiod-{old}"), discovery.to_str().unwrap(), "-n", "istio-system"])
        .args(["--reuse-values", "--set", "pilot.cni.enabled=true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, _) = json(&plane, "meshmigrate", &["status", "waves"], 0);
    let why = format!("injected with istio-init; revision {old} now uses the Istio CNI");
    let reasons = status[0]["staleReasons"].as_object().unwrap();
    assert_eq!(reasons.len(), 3, "{status:#}");
    assert!(reasons.values().all(|r| r == &Value::from(why.clone())), "{status:#}");
    let start = Instant::now();
    loop {
        let (report, err) = json(&plane, "meshmigrate", &["restart", "waves", "--wait", "--timeout", "3m"], 0);
        rolled_out(&plane, &["alpha", "beta", "guarded"]);
        let pods = plane.get_json(&["pods", "-n", "waves"]).unwrap();
        let inits: Vec<String> = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .flat_map(|p| p["spec"]["initContainers"].as_array().unwrap().iter())
            .filter(|c| c["name"] != "istio-proxy")
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        // istiod reads the changed injector ConfigMap a moment after Helm wrote it.
        if inits.iter().all(|name| name == "istio-validation") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{inits:?}\n{report:#}\n{err}");
    }
    let (status, _) = json(&plane, "meshmigrate", &["status", "waves"], 0);
    assert_eq!(status[0]["stalePods"], serde_json::json!([]), "{status:#}");
}
