//! The test control plane itself: it starts real components, reports real versions, enforces
//! RBAC for minted users, runs controllers in Tier B, and never leaks processes or directories.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use meshtest::{ControlPlane, Options};
use serde_json::json;

fn alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

#[test]
fn reports_the_stamped_kubernetes_version_and_enforces_rbac() {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    let version: serde_json::Value =
        serde_json::from_str(&plane.kubectl_ok(&["get", "--raw=/version"]).unwrap()).unwrap();
    assert_eq!(version["gitVersion"], plane.tools.versions.kubernetes.as_str());
    let client = plane.kubectl_ok(&["version", "--client", "-o", "json"]).unwrap();
    assert!(client.contains(&format!("\"gitVersion\": \"{}\"", plane.tools.versions.kubernetes)), "{client}");

    let viewer = plane.user_kubeconfig("viewer", &["qa"]).unwrap();
    let can = |verb: &str, resource: &str| {
        let out = Command::new(plane.tools.kubectl())
            .args([&format!("--kubeconfig={}", viewer.display()), "auth", "can-i", verb, resource])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(can("list", "namespaces"), "no");
    plane.kubectl_ok(&["create", "clusterrole", "ns-reader", "--verb=list", "--resource=namespaces"]).unwrap();
    plane
        .kubectl_ok(&["create", "clusterrolebinding", "qa-ns-reader", "--clusterrole=ns-reader", "--group=qa"])
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || can("list", "namespaces") == "yes"));
    assert_eq!(can("delete", "namespaces"), "no");
}

#[test]
fn dropping_the_plane_stops_every_process_and_removes_its_directory() {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    let dir = plane.dir.clone();
    let pids: Vec<String> =
        std::fs::read_to_string(dir.join("pids")).unwrap().split_whitespace().map(String::from).collect();
    assert_eq!(pids.len(), 2, "etcd and kube-apiserver");
    assert!(pids.iter().all(|p| alive(p)));
    drop(plane);
    assert!(pids.iter().all(|p| !alive(p)), "processes left: {pids:?}");
    assert!(wait_until(Duration::from_secs(5), || !dir.exists()), "{} left behind", dir.display());
}

#[test]
fn a_crashed_test_process_leaves_nothing_behind() {
    let out = Command::new(env!("CARGO_BIN_EXE_meshtest-probe")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("simulated test failure"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let dir = lines.next().expect("dir").to_string();
    let pids: Vec<&str> = lines.next().expect("pids").split_whitespace().collect();
    assert_eq!(pids.len(), 2);
    assert!(wait_until(Duration::from_secs(10), || pids.iter().all(|p| !alive(p))), "processes left: {pids:?}");
    assert!(wait_until(Duration::from_secs(10), || !Path::new(&dir).exists()), "{dir} left behind");
}

/// Tier B: controllers, scheduler and kwok nodes turn a Deployment into Ready pods, and a
/// rollout restart replaces them.
#[test]
fn tier_b_runs_deployments_and_rollouts() {
    let plane = ControlPlane::start(&Options { nodes: 1, ..Default::default() }).unwrap();
    plane.kubectl_ok(&["create", "namespace", "apps"]).unwrap();
    plane.kubectl_ok(&["-n", "apps", "create", "deployment", "web", "--image=nginx:1.27", "--replicas=2"]).unwrap();
    plane.kubectl_ok(&["-n", "apps", "rollout", "status", "deployment/web", "--timeout=90s"]).unwrap();
    let pods = |selector: &str| plane.kubectl_ok(&["-n", "apps", "get", "pods", "-l", selector, "-o", "name"]).unwrap();
    let before = pods("app=web");
    assert_eq!(before.lines().count(), 2, "{before}");
    let ready = plane
        .kubectl_ok(&["-n", "apps", "get", "deployment", "web", "-o", "jsonpath={.status.readyReplicas}"])
        .unwrap();
    assert_eq!(ready, "2");

    plane.kubectl_ok(&["-n", "apps", "rollout", "restart", "deployment/web"]).unwrap();
    plane.kubectl_ok(&["-n", "apps", "rollout", "status", "deployment/web", "--timeout=90s"]).unwrap();
    assert!(wait_until(Duration::from_secs(30), || {
        let after = pods("app=web");
        after.lines().count() == 2 && after.lines().all(|p| !before.contains(p))
    }));
}

/// Stopping kube-apiserver refuses clients; starting it again brings back the same cluster on
/// the same address, with everything etcd holds.
#[test]
fn apiserver_stops_and_comes_back_with_the_same_state() {
    let mut plane = ControlPlane::start(&Options::default()).unwrap();
    plane.kubectl_ok(&["create", "namespace", "kept"]).unwrap();
    plane.stop_apiserver().unwrap();
    let out = plane.kubectl().args(["get", "namespace", "kept", "--request-timeout=5s"]).output().unwrap();
    assert!(!out.status.success(), "the apiserver is down");
    let pids = std::fs::read_to_string(plane.dir.join("pids")).unwrap();
    assert_eq!(pids.lines().count(), 1, "only etcd is left to clean up: {pids}");
    plane.start_apiserver().unwrap();
    assert_eq!(plane.kubectl_ok(&["get", "namespace", "kept", "-o", "name"]).unwrap().trim(), "namespace/kept");
    assert_eq!(std::fs::read_to_string(plane.dir.join("pids")).unwrap().lines().count(), 2);
}

fn pod_of(plane: &ControlPlane, namespace: &str, selector: &str) -> serde_json::Value {
    let limit = Instant::now() + Duration::from_secs(90);
    loop {
        let pods: serde_json::Value = serde_json::from_str(
            &plane.kubectl_ok(&["-n", namespace, "get", "pods", "-l", selector, "-o", "json"]).unwrap(),
        )
        .unwrap();
        if let Some(pod) = pods["items"].as_array().unwrap().first() {
            return pod.clone();
        }
        assert!(Instant::now() < limit, "no pod {selector} in {namespace}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `(injected revision annotation, proxy image, has istio-init)` of a pod.
fn injection(pod: &serde_json::Value) -> (Option<String>, Option<String>, bool) {
    let revision = pod["metadata"]["annotations"]["istio.io/rev"].as_str().map(String::from);
    let proxy = pod["spec"]["containers"].as_array().unwrap().iter().find(|c| c["name"] == "istio-proxy");
    let init = pod["spec"]["initContainers"].as_array().into_iter().flatten().any(|c| c["name"] == "istio-init");
    (revision, proxy.and_then(|c| c["image"].as_str()).map(String::from), init)
}

/// The injector stand-in selects pods exactly as Istio's webhooks do (namespace labels,
/// pod labels and the opt-outs) and marks them as Istio's template does.
#[test]
fn injector_follows_istios_selection_rules() {
    use meshtest::Fixture;
    let plane = ControlPlane::start(&Options { nodes: 1, ..Default::default() }).unwrap();
    Fixture::install_injected(&plane).unwrap();
    let stable = (Some("1-30-3".to_string()), Some("docker.io/istio/proxyv2:1.30.3".to_string()), true);
    let canary = (Some("1-31-1".to_string()), Some("docker.io/istio/proxyv2:1.31.1".to_string()), true);
    let none = (None, None, false);
    for (namespace, expected) in [
        ("shop-canary", &canary), // istio.io/rev=<tag> → the tag's revision
        ("shop-stable", &stable), // istio.io/rev=<revision>
        ("shop-legacy", &stable), // istio-injection=enabled → default
        ("shop-both", &stable),   // istio-injection wins over istio.io/rev
        ("shop-off", &none),      // istio-injection=disabled
        ("shop-plain", &none),    // nothing selects it
    ] {
        let pod = pod_of(&plane, namespace, "app=web");
        assert_eq!(&injection(&pod), expected, "{namespace}");
        if expected.0.is_some() {
            let status: serde_json::Value =
                serde_json::from_str(pod["metadata"]["annotations"]["sidecar.istio.io/status"].as_str().unwrap())
                    .unwrap();
            assert_eq!(status["revision"].as_str(), expected.0.as_deref(), "{namespace}");
            assert_eq!(pod["metadata"]["labels"]["security.istio.io/tlsMode"], "istio");
        }
    }
    // Pod-level choices: labels, the annotation opt-out, host networking.
    let stable = &stable;
    for (namespace, name, labels, annotations, host_network, expected) in [
        ("shop-stable", "opt-out", json!({"sidecar.istio.io/inject": "false"}), json!({}), false, &none),
        ("shop-stable", "annotated-out", json!({}), json!({"sidecar.istio.io/inject": "false"}), false, &none),
        ("shop-stable", "pod-rev", json!({"istio.io/rev": "1-31-1"}), json!({}), false, stable), // namespace wins
        ("shop-plain", "by-tag", json!({"istio.io/rev": "prod-canary"}), json!({}), false, &canary),
        ("shop-plain", "opted-in", json!({"sidecar.istio.io/inject": "true"}), json!({}), false, stable),
        ("shop-plain", "host", json!({"istio.io/rev": "1-31-1"}), json!({}), true, &none),
    ] {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
            "spec": {"hostNetwork": host_network, "containers": [{"name": "app", "image": "nginx:1.27"}]},
        });
        let created = plane.kubectl_stdin(&["create", "-o", "json", "-f", "-"], &pod.to_string()).unwrap();
        let created: serde_json::Value = serde_json::from_str(&created).unwrap();
        assert_eq!(&injection(&created), expected, "{namespace}/{name}");
    }
    // The gateway template: the proxy only, no istio-init.
    let gateway = pod_of(&plane, "istio-ingress", "app=istio-ingressgateway");
    assert_eq!(injection(&gateway), (stable.0.clone(), stable.1.clone(), false));
}
