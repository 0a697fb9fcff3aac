//! The shipped least-privilege roles (`deploy/rbac/`): each plugin runs as a user bound only to
//! its own roles. Every read command works with the read role; writes without the write role fail
//! naming the permission; with it they succeed. Nothing else is needed.

mod common;

use std::path::Path;
use std::process::Command;

use meshtest::{ControlPlane, Fixture, Options, run};

fn plane() -> ControlPlane {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, true).unwrap();
    plane
}

fn plugin(binary: &str, kubeconfig: &Path) -> Command {
    meshtest::plugin(common::built_binary(binary).to_str().unwrap(), kubeconfig)
}

fn ok(binary: &str, kubeconfig: &Path, args: &[&str]) -> String {
    let (code, out, err) = run(plugin(binary, kubeconfig).args(args));
    assert_eq!(code, 0, "{binary} {args:?}:\n{out}\n{err}");
    out
}

fn forbidden(binary: &str, kubeconfig: &Path, args: &[&str], naming: &str) {
    let (code, out, err) = run(plugin(binary, kubeconfig).args(args));
    assert_eq!(code, 4, "{binary} {args:?}:\n{out}\n{err}");
    assert!(err.contains(naming), "{binary} {args:?} should name {naming}:\n{err}");
}

#[test]
fn revtag_reads_with_its_read_role_and_writes_with_its_write_role() {
    let plane = plane();
    let reader = common::user(&plane, "revtag", &["revtag-read"]);
    ok("kubectl-revtag", &reader, &["list"]);
    ok("kubectl-revtag", &reader, &["revisions"]);
    ok("kubectl-revtag", &reader, &["generate", "prod-next", "--revision", "1-31-1"]);
    forbidden(
        "kubectl-revtag",
        &reader,
        &["set", "prod-next", "--revision", "1-31-1"],
        // A change's first write is the run lock.
        "leases",
    );

    let writer = common::user(&plane, "revtag", &["revtag-read", "revtag-write"]);
    ok("kubectl-revtag", &writer, &["set", "prod-next", "--revision", "1-31-1"]);
    ok("kubectl-revtag", &writer, &["set", "prod-next", "--revision", "1-30-3", "--overwrite"]);
    ok("kubectl-revtag", &writer, &["remove", "prod-next", "--yes"]);
    ok("kubectl-revtag", &writer, &["set", "default", "--revision", "1-31-1", "--overwrite", "--yes"]);
}

#[test]
fn meshcheck_runs_every_command_with_its_read_role() {
    let plane = plane();
    let reader = common::user(&plane, "meshcheck", &["meshcheck-read"]);
    ok("kubectl-meshcheck", &reader, &["version"]);
    for command in [&["precheck", "--revision", "1-32-0"][..], &["verify"]] {
        let (code, out, err) = run(plugin("kubectl-meshcheck", &reader).args(command).args(["-o", "json"]));
        assert!(code == 0 || code == 1, "{command:?}: findings, not a failure:\n{out}\n{err}");
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        let skipped: Vec<&serde_json::Value> = doc["categories"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["checks"].as_array().unwrap())
            .filter(|c| c["result"] == "skipped")
            .collect();
        assert!(
            skipped.iter().all(|c| c["code"] == "MC0505"),
            "{command:?} skipped more than the node check: {skipped:#?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.yaml");
    meshtest::write_rendered(&plane, &manifest).unwrap();
    let (code, _, err) = run(plugin("kubectl-meshcheck", &reader).args(["manifest", "--offline"]).arg(&manifest));
    assert!(code == 0 || code == 1, "{err}");
}

/// What retiring the canary needs first, as the admin: its tag gone, its namespaces moved back.
fn make_canary_unused(plane: &ControlPlane) {
    plane
        .kubectl_ok(&["delete", "mutatingwebhookconfigurations,services", "-A", "-l", "istio.io/tag=prod-canary"])
        .unwrap();
    plane
        .kubectl_ok(&["label", "namespaces", "-l", "istio.io/rev=prod-canary", "istio.io/rev=1-30-3", "--overwrite"])
        .unwrap();
    // The fixture's only pod the canary injected.
    plane.kubectl_ok(&["delete", "pod", "-n", "shop-canary", "web-0"]).unwrap();
}

#[test]
fn meshmigrate_reads_with_its_read_role_and_writes_with_its_write_role() {
    let plane = plane();
    let reader = common::user(&plane, "meshmigrate", &["meshmigrate-read"]);
    ok("kubectl-meshmigrate", &reader, &["status"]);
    ok("kubectl-meshmigrate", &reader, &["status", "shop-stable", "shop-canary"]);
    ok("kubectl-meshmigrate", &reader, &["log"]);
    forbidden("kubectl-meshmigrate", &reader, &["namespace", "shop-stable", "--to", "1-31-1"], "leases");

    let writer = common::user(&plane, "meshmigrate", &["meshmigrate-read", "meshmigrate-write"]);
    ok("kubectl-meshmigrate", &writer, &["namespace", "shop-stable", "--to", "1-31-1"]);
    let labels = plane.get_json(&["namespace", "shop-stable"]).unwrap()["metadata"]["labels"].clone();
    assert_eq!(labels["istio.io/rev"], "1-31-1", "{labels}");
    ok("kubectl-meshmigrate", &reader, &["log"]);
    ok("kubectl-meshmigrate", &writer, &["rollback", "shop-stable"]);
    ok("kubectl-meshmigrate", &writer, &["restart"]);
    // Tier A has no controllers to roll the gateway: its plan is what can be checked here.
    ok(
        "kubectl-meshmigrate",
        &writer,
        &["gateway", "istio-ingressgateway", "-n", "istio-ingress", "--to", "1-31-1", "--dry-run"],
    );
    let labels = plane.get_json(&["namespace", "shop-stable"]).unwrap()["metadata"]["labels"].clone();
    assert_eq!(labels["istio.io/rev"], "1-30-3", "{labels}");

    make_canary_unused(&plane);
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("canary.tar.gz");
    // Which of the lists sent together is refused first varies; each names its resource.
    forbidden("kubectl-meshmigrate", &reader, &["retire", "1-31-1", "--yes"], "cannot list resource");
    ok("kubectl-meshmigrate", &writer, &["retire", "1-31-1", "--yes", "--backup", backup.to_str().unwrap()]);
    assert_eq!(
        plane
            .kubectl_ok(&["get", "deployments", "-n", "istio-system", "-l", "istio.io/rev=1-31-1", "-o", "name"])
            .unwrap(),
        "",
        "retired"
    );
}

#[test]
fn meshbackup_reads_with_its_read_role_and_restores_with_its_write_role() {
    let plane = plane();
    let reader = common::user(&plane, "meshbackup", &["meshbackup-read"]);
    // Bound before the backup: its RoleBindings in istio-system are part of what is backed up.
    let writer = common::user(&plane, "meshbackup", &["meshbackup-read", "meshbackup-write"]);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("mesh.tar.gz");
    let archive = archive.to_str().unwrap();
    ok("kubectl-meshbackup", &reader, &["create", archive]);
    ok("kubectl-meshbackup", &reader, &["inspect", archive]);
    ok("kubectl-meshbackup", &reader, &["diff", archive]);

    // Lose some of the installation: cluster-scoped and namespaced objects, RBAC, a label.
    plane.kubectl_ok(&["delete", "mutatingwebhookconfigurations", "-l", "istio.io/rev=1-31-1,!istio.io/tag"]).unwrap();
    plane
        .kubectl_ok(&["delete", "clusterroles,clusterrolebindings", "-l", "app.kubernetes.io/instance=istiod-1-31-1"])
        .unwrap();
    plane
        .kubectl_ok(&["delete", "-n", "istio-system", "configmaps,roles,rolebindings", "-l", "istio.io/rev=1-31-1"])
        .unwrap();
    plane.kubectl_ok(&["label", "namespace", "shop-stable", "istio.io/rev-"]).unwrap();
    let (code, _, err) = run(plugin("kubectl-meshbackup", &reader).args(["diff", archive]));
    assert_eq!(code, 1, "{err}");

    // A change's first write is the run lock.
    forbidden("kubectl-meshbackup", &reader, &["restore", archive, "--yes"], "leases");

    ok("kubectl-meshbackup", &writer, &["restore", archive, "--yes"]);
    ok("kubectl-meshbackup", &writer, &["diff", archive]);
}
