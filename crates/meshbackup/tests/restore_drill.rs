//! Reliability drill: kube-apiserver dies in the middle of a `kubectl meshbackup restore`. After
//! it comes back, rerunning the same restore converges: every object is back, no namespace lost
//! its injection label, and `diff` finds nothing.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use meshtest::{ControlPlane, Fixture, Options, run};

fn meshbackup(kubeconfig: &Path) -> Command {
    meshtest::plugin(env!("CARGO_BIN_EXE_kubectl-meshbackup"), kubeconfig)
}

/// Enough custom resources that the restore is still applying them when the apiserver goes.
const VIRTUAL_SERVICES: usize = 300;

fn virtual_services() -> String {
    (0..VIRTUAL_SERVICES)
        .map(|i| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: route-{i:03}, namespace: shop-canary}}\n\
                 spec:\n  hosts: [route-{i:03}]\n  http: [{{route: [{{destination: {{host: route-{i:03}}}}}]}}]\n---\n"
            )
        })
        .collect()
}

/// `namespace=labels` of every namespace carrying an injection label.
fn injection_labels(plane: &ControlPlane) -> String {
    plane
        .kubectl_ok(&[
            "get",
            "namespaces",
            "-l",
            "istio.io/rev",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.istio\\.io/rev} {end}",
        ])
        .unwrap()
        + &plane
            .kubectl_ok(&[
                "get",
                "namespaces",
                "-l",
                "istio-injection",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.istio-injection} {end}",
            ])
            .unwrap()
}

fn virtual_service_count(plane: &ControlPlane) -> usize {
    plane.kubectl_ok(&["get", "virtualservices", "-n", "shop-canary", "-o", "name"]).unwrap().lines().count()
}

#[test]
fn apiserver_stopped_mid_restore_then_rerun_converges() {
    let mut plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, true).unwrap();
    plane.apply(&virtual_services()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("mesh.tar.gz");
    let archive = archive.to_str().unwrap();
    let kc = plane.kubeconfig.clone();
    let (code, _, err) = run(meshbackup(&kc).args(["create", "-f", archive]));
    assert_eq!(code, 0, "{err}");
    let labels_before = injection_labels(&plane);

    // Lose the installation but for its CRDs: configuration, control plane, webhooks, every
    // custom resource.
    plane
        .kubectl_ok(&[
            "delete",
            "mutatingwebhookconfigurations,validatingwebhookconfigurations,clusterroles,clusterrolebindings",
            "-l",
            "app.kubernetes.io/part-of=istio",
        ])
        .unwrap();
    plane
        .kubectl_ok(&[
            "delete",
            "-n",
            "istio-system",
            "deployments,services,configmaps,serviceaccounts,roles,rolebindings,horizontalpodautoscalers",
            "--all",
        ])
        .unwrap();
    plane.kubectl_ok(&["delete", "virtualservices", "-n", "shop-canary", "--all"]).unwrap();

    // The restore runs until it announces the custom resources; then the apiserver is killed.
    let mut restore = meshbackup(&kc)
        .args(["restore", archive, "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut progress = std::io::BufReader::new(restore.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while !line.contains("custom resources") {
        line.clear();
        assert!(progress.read_line(&mut line).unwrap() > 0, "the restore ended before its custom resources: {seen}");
        seen.push_str(&line);
    }
    plane.stop_apiserver().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut progress, &mut rest).unwrap();
    let status = restore.wait().unwrap();
    assert_eq!(status.code(), Some(3), "the interrupted restore fails as unreachable:\n{seen}{rest}");
    plane.start_apiserver().unwrap();

    let partial = virtual_service_count(&plane);
    assert!(partial < VIRTUAL_SERVICES, "the apiserver stopped part-way: {partial} of {VIRTUAL_SERVICES} restored");
    assert_eq!(injection_labels(&plane), labels_before, "no namespace lost its injection label");
    let (code, _, err) = run(meshbackup(&kc).args(["diff", archive]));
    assert_eq!(code, 1, "not converged yet: {err}");

    let (code, out, err) = run(meshbackup(&kc).args(["restore", archive, "--yes", "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let created = rows.iter().filter(|r| r["result"] == "created").count();
    assert!(created >= VIRTUAL_SERVICES - partial, "the rerun restored the rest: {created} created");
    assert_eq!(virtual_service_count(&plane), VIRTUAL_SERVICES);
    assert_eq!(injection_labels(&plane), labels_before);
    let (code, out, err) = run(meshbackup(&kc).args(["diff", archive]));
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
}
