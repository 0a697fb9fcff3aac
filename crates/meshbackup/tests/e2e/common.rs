//! The fixture mesh with custom resources, and helpers to run the plugin against it.

use std::path::{Path, PathBuf};
use std::process::Command;

use meshtest::{ControlPlane, Fixture, Options, run};
use serde_json::Value;

pub fn meshbackup(kubeconfig: &Path) -> Command {
    meshtest::plugin(env!("CARGO_BIN_EXE_kubectl-meshbackup"), kubeconfig)
}

/// Istio configuration users write, across namespaces, and the plugged-in CA.
pub const CUSTOM_RESOURCES: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: routes-only}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop-canary}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop-canary}
spec:
  host: reviews
  subsets: [{name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-ingress}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: shop-legacy, labels: {team: shop}}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: routes-only}
spec: {egress: [{hosts: ["./*"]}]}
---
apiVersion: v1
kind: Secret
metadata: {name: cacerts, namespace: istio-system}
stringData: {ca-cert.pem: cert, ca-key.pem: key, root-cert.pem: root, cert-chain.pem: chain}
"#;

pub struct Mesh {
    pub plane: ControlPlane,
    pub dir: tempfile::TempDir,
}

impl Mesh {
    pub fn start() -> Mesh {
        let plane = ControlPlane::start(&Options::default()).unwrap();
        Fixture::install(&plane, true).unwrap();
        plane.apply(CUSTOM_RESOURCES).unwrap();
        Mesh { plane, dir: tempfile::tempdir().unwrap() }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        run(meshbackup(&self.plane.kubeconfig).args(args).current_dir(self.dir.path()))
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {err}\n{out}");
        out
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    pub fn kubectl(&self, args: &[&str]) -> String {
        self.plane.kubectl_ok(args).unwrap()
    }

    /// Name and resourceVersion of every object of the kinds a restore writes (except namespaces,
    /// which the apiserver does not touch by itself either): equal before and after means nothing
    /// was written.
    pub fn versions(&self) -> String {
        self.kubectl(&[
            "get",
            "crd,virtualservices,destinationrules,gateways.networking.istio.io,sidecars,peerauthentications,\
             authorizationpolicies,mutatingwebhookconfigurations,validatingwebhookconfigurations,deployments,\
             services,configmaps,secrets,clusterroles,namespaces",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion} {end}",
        ])
    }
}

impl Mesh {
    /// Deletes every custom resource, then the CRDs. The apiserver's CRD finalizer retries with a
    /// growing backoff while a new CRD's watch cache is still initialising, which on a loaded
    /// machine can take minutes; with the custom resources already gone its finalizer has nothing
    /// left to clean up, so after a while it is removed by hand.
    pub fn delete_istio_crds(&self) {
        let crds = self.kubectl(&["get", "crd", "-o", "jsonpath={range .items[*]}{.metadata.name},{end}"]);
        let crds = crds.trim_end_matches(',');
        self.kubectl(&["delete", crds, "--all", "-A", "--wait=true"]);
        self.kubectl(&["delete", "crd", "--all", "--wait=false"]);
        let wait =
            self.plane.kubectl().args(["wait", "--for=delete", "crd", "--all", "--timeout=20s"]).output().unwrap();
        if !wait.status.success() {
            for crd in self.kubectl(&["get", "crd", "-o", "name"]).lines() {
                self.kubectl(&["patch", crd, "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
            }
        }
        assert_eq!(self.kubectl(&["get", "crd", "-o", "name"]), "", "every CRD is gone");
    }
}

pub fn path(s: &Path) -> &str {
    s.to_str().unwrap()
}

pub fn rows_with<'a>(rows: &'a [Value], result: &str) -> Vec<&'a str> {
    rows.iter().filter(|r| r["result"] == result).map(|r| r["object"].as_str().unwrap()).collect()
}
