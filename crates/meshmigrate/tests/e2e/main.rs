//! `kubectl-meshmigrate` against a real kube-apiserver with Istio's own objects; Tier B for pods
//! that real controllers own.

pub use std::path::Path;
pub use std::process::Command;

pub use meshtest::{ControlPlane, Fixture, Options, run};
pub use serde_json::Value;

mod drill;
mod gateway;
mod moves;
mod retire;
mod status;

pub fn meshmigrate(kubeconfig: &Path) -> Command {
    meshtest::plugin(env!("CARGO_BIN_EXE_kubectl-meshmigrate"), kubeconfig)
}

pub fn status(kubeconfig: &Path, args: &[&str]) -> Vec<Value> {
    let (code, out, err) = run(meshmigrate(kubeconfig).arg("status").args(args).args(["-o", "json"]));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Value>(&out).unwrap().as_array().unwrap().clone()
}

pub fn namespace<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter().find(|r| r["namespace"] == name).unwrap_or_else(|| panic!("{name} not in {rows:#?}"))
}

pub fn labels_of(plane: &ControlPlane, namespace: &str) -> Value {
    plane.get_json(&["namespace", namespace]).unwrap()["metadata"]["labels"].clone()
}

pub fn versions(plane: &ControlPlane) -> String {
    plane
        .kubectl_ok(&[
            "get",
            "namespaces,configmaps",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}",
        ])
        .unwrap()
}

pub fn json_run(kubeconfig: &Path, args: &[&str]) -> (i32, Value, String) {
    let (code, out, err) = run(meshmigrate(kubeconfig).args(args).args(["-o", "json"]));
    let value = if out.trim().is_empty() && code != 0 {
        Value::Null
    } else {
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}\n{err}"))
    };
    (code, value, err)
}

/// `(pod name, injected revision)` of the running pods of `app` in `namespace`.
pub fn injected_pods(plane: &ControlPlane, namespace: &str, app: &str) -> Vec<(String, Option<String>)> {
    // `None` when there is no pod yet.
    let Some(pods) = plane.get_json(&["pods", "-n", namespace, "-l", &format!("app={app}")]) else { return vec![] };
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            let rev = p["metadata"]["annotations"]["istio.io/rev"].as_str().map(String::from);
            (p["metadata"]["name"].as_str().unwrap().to_string(), rev)
        })
        .collect()
}

/// resourceVersions of everything a run may change (node and apiserver leases renew by themselves).
pub fn workload_versions(plane: &ControlPlane) -> String {
    let jsonpath = "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}={.metadata.resourceVersion} {end}";
    let mut all =
        plane.kubectl_ok(&["get", "namespaces,configmaps,deployments,statefulsets", "-A", "-o", jsonpath]).unwrap();
    all.push_str(&plane.kubectl_ok(&["get", "leases", "-n", "istio-system", "-o", jsonpath]).unwrap());
    all
}
