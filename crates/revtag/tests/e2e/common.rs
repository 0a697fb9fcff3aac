//! Helpers shared by the end-to-end tests.

use meshtest::{ControlPlane, Fixture, Options};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

pub fn fixture() -> &'static ControlPlane {
    static PLANE: OnceLock<ControlPlane> = OnceLock::new();
    PLANE.get_or_init(|| {
        let plane = ControlPlane::start(&Options::default()).expect("control plane");
        Fixture::install(&plane, true).expect("Istio fixture");
        plane
    })
}

pub fn bare() -> ControlPlane {
    ControlPlane::start(&Options::default()).expect("control plane")
}

pub use meshtest::run;

/// The plugin with a clean environment: no inherited kubeconfig, a home of its own.
pub fn revtag(kubeconfig: &Path) -> Command {
    meshtest::plugin(env!("CARGO_BIN_EXE_kubectl-revtag"), kubeconfig)
}

pub fn list_json(plane: &ControlPlane) -> Vec<Value> {
    let (code, out, err) = run(revtag(&plane.kubeconfig).args(["list", "-o", "json"]));
    assert_eq!(code, 0, "stderr: {err}");
    serde_json::from_str::<Value>(&out).expect("json").as_array().unwrap().clone()
}

pub fn row<'a>(rows: &'a [Value], tag: Option<&str>, revision: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["tag"].as_str() == tag && r["revision"] == revision)
        .unwrap_or_else(|| panic!("no row {tag:?}/{revision} in {rows:#?}"))
}

pub fn strings(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect()
}

/// A cluster of its own with the Istio fixture, for tests that change things.
pub fn private_fixture() -> ControlPlane {
    let plane = ControlPlane::start(&Options::default()).expect("control plane");
    Fixture::install(&plane, true).expect("Istio fixture");
    plane
}

/// `kind/name=resourceVersion` of everything revtag may touch: proves a command changed nothing.
pub fn versions(plane: &ControlPlane) -> String {
    let template = r#"jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{"\n"}{end}"#;
    let cluster = plane
        .kubectl_ok(&[
            "get",
            "mutatingwebhookconfigurations,validatingwebhookconfigurations,namespaces",
            "-o",
            template,
        ])
        .unwrap();
    let services = plane.kubectl_ok(&["get", "services", "-n", "istio-system", "-o", template]).unwrap();
    cluster + &services
}

/// An object as JSON, or `None` when it does not exist.
pub fn get_json(plane: &ControlPlane, args: &[&str]) -> Option<Value> {
    plane.get_json(args)
}
