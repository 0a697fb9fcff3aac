//! The test control plane: real Kubernetes components built from Go modules, started on
//! loopback, with Istio's own charts rendered into it.

pub mod egress;
mod fixture;
mod fixture_real;
mod hang;
pub mod injector;
pub mod kubelet;
pub mod netwatch;
mod pki;
mod plane;
mod realistic;
mod tools;

use std::path::PathBuf;

pub use fixture::{
    APP_NAMESPACES, AppNamespace, CANARY, Fixture, GATEWAY_NAMESPACE, ISTIO_NAMESPACE, IstioRevision, STABLE,
    pod_manifest, write_rendered,
};
pub use fixture_real::{REAL_APP_NAMESPACES, RealFixture, RealNamespace, helm as helm_command, helm_ok, release_tags};
pub use hang::hanging_kubeconfig;
pub use plane::{CONTEXT, ControlPlane, KUBELET_PORT, KWOK_NODE_IP, Options};
pub use realistic::{TEMPLATE_REVISION, injected_pod_template, injected_shape, realistic_pod};
pub use tools::{IstioBuild, ModuleVersions, NEW_ISTIO, OLD_ISTIO, Tools, cache_dir, istio_module_dir};

/// One istiod process the Tier C kubelet runs (from its status file).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct IstiodProcess {
    pub namespace: String,
    pub name: String,
    pub ip: String,
    pub revision: Option<String>,
    pub version: String,
    pub pid: u32,
    pub ready: bool,
    pub restarts: u32,
    /// Container port → loopback port.
    pub ports: std::collections::BTreeMap<u16, u16>,
}

/// A plugin binary with a clean environment: the given kubeconfig, no inherited one, a home of
/// its own, `NO_COLOR` unset (colour is still off: stdout is not a terminal).
pub fn plugin(binary: &str, kubeconfig: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(binary);
    cmd.env("KUBECONFIG", kubeconfig).env("HOME", std::env::temp_dir()).env_remove("NO_COLOR");
    cmd
}

/// Runs a command: `(exit code, stdout, stderr)`.
pub fn run(cmd: &mut std::process::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The repository root (the harness lives in `tests/harness`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}
