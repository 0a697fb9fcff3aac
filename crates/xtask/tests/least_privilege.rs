//! The shipped least-privilege roles (`deploy/rbac/`): each plugin runs as a user bound only to
//! its own roles. Every read command works with the read role; writes without the write role fail
//! naming the permission; with it they succeed. Nothing else is needed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use meshtest::{ControlPlane, Fixture, Options, repo_root, run};

fn plane() -> ControlPlane {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, true).unwrap();
    plane
}

/// A user bound to the given roles of `deploy/rbac/<plugin>.yaml` (each a ClusterRole and,
/// where the file has one, the Role of the same name in istio-system).
fn user(plane: &ControlPlane, plugin: &str, roles: &[&str]) -> PathBuf {
    let file = repo_root().join("deploy/rbac").join(format!("{plugin}.yaml"));
    plane.apply(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let name = format!("{plugin}-{}", roles.join("-"));
    for role in roles {
        let binding = format!("{name}-{role}");
        plane
            .kubectl_ok(&[
                "create",
                "clusterrolebinding",
                &binding,
                &format!("--clusterrole={role}"),
                &format!("--user={name}"),
            ])
            .unwrap();
        if plane.get_json(&["role", role, "-n", "istio-system"]).is_some() {
            plane
                .kubectl_ok(&[
                    "create",
                    "rolebinding",
                    &binding,
                    "-n",
                    "istio-system",
                    &format!("--role={role}"),
                    &format!("--user={name}"),
                ])
                .unwrap();
        }
    }
    plane.user_kubeconfig(&name, &[]).unwrap()
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
    let reader = user(&plane, "revtag", &["revtag-read"]);
    ok("kubectl-revtag", &reader, &["list"]);
    ok("kubectl-revtag", &reader, &["revisions"]);
    ok("kubectl-revtag", &reader, &["generate", "prod-next", "--revision", "1-31-1"]);
    forbidden(
        "kubectl-revtag",
        &reader,
        &["set", "prod-next", "--revision", "1-31-1"],
        "mutatingwebhookconfigurations",
    );

    let writer = user(&plane, "revtag", &["revtag-read", "revtag-write"]);
    ok("kubectl-revtag", &writer, &["set", "prod-next", "--revision", "1-31-1"]);
    ok("kubectl-revtag", &writer, &["set", "prod-next", "--revision", "1-30-3", "--overwrite"]);
    ok("kubectl-revtag", &writer, &["remove", "prod-next", "--yes"]);
    ok("kubectl-revtag", &writer, &["set", "default", "--revision", "1-31-1", "--overwrite", "--yes"]);
}

#[test]
fn meshcheck_runs_every_command_with_its_read_role() {
    let plane = plane();
    let reader = user(&plane, "meshcheck", &["meshcheck-read"]);
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
