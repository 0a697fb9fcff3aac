//! Tier C: restarts that respect the workload, on real istiod injecting through real admission.
//! A PodDisruptionBudget that allows no disruption holds its workload's restart back, visibly,
//! until the timeout; a rollout that fails stops new waves; a rerun converges.

mod common;

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

#[test]
fn restarts_wait_for_their_budget_stop_after_a_failed_rollout_and_resume() {
    let plane = ControlPlane::start(&Options { nodes: 1, real_istio: true, ..Default::default() }).unwrap();
    RealFixture::install(&plane, 2).unwrap();
    let (old, new) = (OLD_ISTIO.revision(), NEW_ISTIO.revision());
    plane.apply(&waves_namespace(&old)).unwrap();
    rolled_out(&plane, &["alpha", "beta", "guarded"]);

    // The namespace moves by hand: all three workloads' pods are stale now.
    plane.kubectl_ok(&["label", "namespace", "waves", &format!("istio.io/rev={new}"), "--overwrite"]).unwrap();
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
    for pod in plane.get_json(&["pods", "-n", "waves", "-l", "app in (alpha,beta)"]).unwrap()["items"].as_array().unwrap() {
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
    let (report, err) = json(&plane, "meshmigrate", &["restart", "waves", "--max-concurrent", "1", "--timeout", "90s"], 7);
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
}
