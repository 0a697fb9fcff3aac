//! Tier C's part of the control plane: the `meshtest-kubelet` process (egress proxy and istiod
//! runner) and waiting for istiod to serve.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::tools::module_dir;

use super::ControlPlane;

impl ControlPlane {
    /// kwok's PortForward CRD from its module: kwok watches these objects when started with
    /// `--enable-crds=PortForward`, so it must exist first.
    pub(super) fn apply_kwok_port_forward_crd(&self) -> Result<()> {
        let crd = module_dir("tools", "sigs.k8s.io/kwok")?.join("kustomize/crd/bases/kwok.x-k8s.io_portforwards.yaml");
        self.apply(&fs::read_to_string(&crd).with_context(|| format!("cannot read {}", crd.display()))?)?;
        let established = self
            .kubectl()
            .args(["wait", "--for=condition=Established", "crd/portforwards.kwok.x-k8s.io", "--timeout=30s"])
            .output()?;
        if !established.status.success() {
            bail!("kwok's PortForward CRD not established: {}", String::from_utf8_lossy(&established.stderr));
        }
        Ok(())
    }

    /// Starts `meshtest-kubelet`: the egress proxy and the istiod runner (Tier C).
    pub(super) fn start_kubelet(&mut self) -> Result<()> {
        let binary = crate::tools::kubelet_binary()?;
        let mut cmd = Command::new(binary);
        cmd.arg("--dir").arg(&self.dir).arg("--kubectl").arg(self.tools.kubectl());
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd.arg("--kubelet-server").arg(format!(
            "{}:{}={}",
            super::KWOK_NODE_IP,
            super::KUBELET_PORT,
            self.kwok_server_port
        ));
        cmd.arg("--xds-proxy").arg(self.tools.xds_proxy()?);
        for build in [crate::OLD_ISTIO, crate::NEW_ISTIO] {
            let binary = self.tools.pilot_discovery(build)?;
            cmd.arg("--istiod").arg(format!("{}={}", build.version, binary.display()));
        }
        self.spawn("meshtest-kubelet", &mut cmd)?;
        let socket = crate::kubelet::egress_socket(&self.dir);
        let start = Instant::now();
        while !socket.exists() {
            self.check_alive()?;
            if start.elapsed() > Duration::from_secs(20) {
                bail!("meshtest-kubelet did not open {} within 20s", socket.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The istiod processes the Tier C kubelet runs now (empty outside Tier C).
    pub fn istiods(&self) -> Vec<crate::IstiodProcess> {
        let text = fs::read_to_string(crate::kubelet::status_file(&self.dir)).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_default()
    }

    /// Waits until an istiod of each revision answers `/ready` and has patched the caBundle of
    /// its injector webhook.
    pub fn wait_istiods_ready(&self, revisions: &[&str], limit: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let ready = revisions.iter().all(|rev| {
                let serving = self.istiods().iter().any(|p| p.ready && p.revision.as_deref() == Some(*rev));
                let patched = self
                    .get_json(&["mutatingwebhookconfiguration", &format!("istio-sidecar-injector-{rev}")])
                    .is_some_and(|w| {
                        w["webhooks"].as_array().is_some_and(|hooks| {
                            hooks.iter().all(|h| h["clientConfig"]["caBundle"].as_str().is_some_and(|c| !c.is_empty()))
                        })
                    });
                serving && patched
            });
            if ready {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!(
                    "istiod of {revisions:?} not serving within {limit:?}; kubelet reports {:?}; see {}/logs",
                    self.istiods(),
                    self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
