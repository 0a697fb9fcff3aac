//! The test control plane itself: it starts real components, reports real versions, enforces
//! RBAC for minted users, runs controllers in Tier B, and never leaks processes or directories.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use meshtest::{ControlPlane, Options};

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
