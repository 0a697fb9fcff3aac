use serde_json::Value;

use crate::common::{Mesh, meshbackup, path, rows_with};

/// The apiserver stops in the middle of a restore: the run stops with exit 3 (unreachable), and a
/// rerun once it is back converges.
#[test]
fn a_restore_interrupted_by_the_apiserver_converges_on_rerun() {
    const SERVICES: usize = 1500;
    let mut mesh = Mesh::start();
    let mut manifest = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: drill}\n---\n");
    for i in 0..SERVICES {
        manifest.push_str(&format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs-{i:04}, namespace: drill}}\n\
             spec: {{hosts: [svc-{i:04}], http: [{{route: [{{destination: {{host: svc-{i:04}}}}}]}}]}}\n---\n"
        ));
    }
    mesh.plane.apply(&manifest).unwrap();
    let archive = mesh.file("drill.tar.gz");
    mesh.ok(&["create", path(&archive)]);
    mesh.kubectl(&["delete", "virtualservices", "-n", "drill", "--all", "--wait=false"]);
    let count = |mesh: &Mesh| mesh.kubectl(&["get", "virtualservices", "-n", "drill", "-o", "name"]).lines().count();
    while count(&mesh) > 0 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let first = meshbackup(&mesh.plane.kubeconfig)
        .args(["restore", path(&archive), "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while count(&mesh) < 50 {
        assert!(std::time::Instant::now() < limit, "the restore never got to the custom resources");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    mesh.plane.stop_apiserver().unwrap();
    let out = first.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "the interrupted run fails as unreachable: {err}");
    assert!(err.contains("cannot reach the cluster"), "{err}");
    mesh.plane.start_apiserver().unwrap();
    let restored = count(&mesh);
    assert!(restored < SERVICES, "the apiserver stopped before the end ({restored} restored)");

    // The dead run's lease (the run lock) blocks until it expires; then the rerun converges.
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let rerun = ["restore", path(&archive), "--yes", "-o", "json"];
    let (mut code, mut out, mut err) = mesh.run(&rerun);
    while code == 1 && err.contains("holds the lock") && std::time::Instant::now() < limit {
        std::thread::sleep(std::time::Duration::from_secs(2));
        (code, out, err) = mesh.run(&rerun);
    }
    assert_eq!(code, 0, "{out}\n{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let created = rows_with(&rows, "created").len();
    assert_eq!(created, SERVICES - restored, "the rerun creates exactly what was missing");
    assert_eq!(rows_with(&rows, "unchanged").len(), rows.len() - created);
    assert_eq!(count(&mesh), SERVICES);
    let (code, out, err) = mesh.run(&["diff", path(&archive)]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
}
