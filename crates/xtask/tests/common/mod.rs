//! Shared by the workspace-level end-to-end tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use meshtest::ControlPlane;

/// A plugin binary in `target/debug`, where cargo put it next to this test's `deps/` directory
/// (`cargo test --workspace`, as `cargo xtask test` runs it, builds every plugin first).
pub fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(path.exists(), "{} is missing: build the plugins first (`cargo xtask test` does)", path.display());
    path
}

/// Every object the plugins could touch, by resourceVersion.
#[allow(dead_code)] // not every test binary compares
pub fn versions(plane: &ControlPlane) -> BTreeMap<String, String> {
    let list = plane
        .get_json(&[
            "namespaces,mutatingwebhookconfigurations,validatingwebhookconfigurations,services,deployments,configmaps,pods,leases",
            "-A",
        ])
        .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        // The apiserver renews its own identity Leases there every few seconds.
        .filter(|o| !matches!(o["metadata"]["namespace"].as_str(), Some("kube-system" | "kube-node-lease")))
        // istiod's leader elections (Leases it holds, ConfigMap locks) renew themselves too.
        .filter(|o| !o["spec"]["holderIdentity"].as_str().is_some_and(|h| h.starts_with("istiod")))
        .filter(|o| o["metadata"]["annotations"]["control-plane.alpha.kubernetes.io/leader"].is_null())
        .map(|o| {
            let m = &o["metadata"];
            (
                format!("{}/{}/{}", o["kind"], m["namespace"].as_str().unwrap_or(""), m["name"].as_str().unwrap()),
                m["resourceVersion"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The keys whose resourceVersion differs, or that exist on one side only.
#[allow(dead_code)] // not every test binary compares
pub fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter().filter(|k| before.get(*k) != after.get(*k)).cloned().collect()
}

/// A user bound to the given roles of `deploy/rbac/<plugin>.yaml` (each a ClusterRole and,
/// where the file has one, the Role of the same name in istio-system).
#[allow(dead_code)] // not every test binary binds roles
pub fn user(plane: &ControlPlane, plugin: &str, roles: &[&str]) -> PathBuf {
    let file = meshtest::repo_root().join("deploy/rbac").join(format!("{plugin}.yaml"));
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

#[allow(dead_code)] // not every test binary reads reports
/// One check of a `meshcheck -o json` report.
pub fn check<'a>(report: &'a serde_json::Value, code: &str) -> &'a serde_json::Value {
    report["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["checks"].as_array().unwrap())
        .find(|c| c["code"] == code)
        .unwrap_or_else(|| panic!("{code} did not run: {report}"))
}
