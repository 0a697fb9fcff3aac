//! The test control plane: real Kubernetes components built from Go modules, started on
//! loopback, with Istio's own charts rendered into it.

mod fixture;
mod pki;
mod plane;
mod tools;

use std::path::PathBuf;

pub use fixture::{
    APP_NAMESPACES, AppNamespace, CANARY, Fixture, GATEWAY_NAMESPACE, ISTIO_NAMESPACE, IstioRevision, STABLE,
    pod_manifest, write_rendered,
};
pub use plane::{CONTEXT, ControlPlane, Options};
pub use tools::{ModuleVersions, Tools, cache_dir, istio_module_dir};

/// The repository root (the harness lives in `tests/harness`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}
