//! Tier B's part of the control plane: kube-controller-manager, kube-scheduler, and kwok playing
//! the nodes (and every pod's status; in Tier C, also the nodes' kubelet port-forwards).

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{ControlPlane, KUBELET_PORT, KWOK_NODE_IP, free_port};
use crate::tools::module_dir;

impl ControlPlane {
    pub(super) fn start_tier_b(&mut self, nodes: usize, real_istio: bool) -> Result<()> {
        let kubeconfig = self.kubeconfig.display().to_string();
        let d = |name: &str| self.dir.join(name).display().to_string();
        // What kube-controller-manager and kube-scheduler both need: the admin kubeconfig for
        // everything, one replica, and their own serving port on loopback.
        let common = || -> Result<Vec<String>> {
            Ok(vec![
                format!("--kubeconfig={kubeconfig}"),
                format!("--authentication-kubeconfig={kubeconfig}"),
                format!("--authorization-kubeconfig={kubeconfig}"),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", free_port()?),
                "--v=1".into(),
            ])
        };
        let mut kcm_args = common()?;
        kcm_args.extend([
            format!("--service-account-private-key-file={}", d("sa.key")),
            format!("--root-ca-file={}", d("ca.crt")),
            "--use-service-account-credentials=false".into(),
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route".into(),
            "--concurrent-deployment-syncs=10".into(),
            "--concurrent-replicaset-syncs=10".into(),
        ]);
        let kcm = self.tools.kube_controller_manager();
        self.spawn("kube-controller-manager", Command::new(kcm).args(&kcm_args))?;
        let scheduler = self.tools.kube_scheduler();
        self.spawn("kube-scheduler", Command::new(scheduler).args(common()?))?;
        let kwok = self.tools.kwok();
        let stages = self.write_kwok_stages()?;
        self.kwok_server_port = free_port()?;
        let mut kwok_args = vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--config={}", stages.display()),
            "--manage-all-nodes=false".into(),
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
            "--node-lease-duration-seconds=40".into(),
            "--cidr=10.244.0.0/16".into(),
            format!("--node-ip={KWOK_NODE_IP}"),
            format!("--server-address=127.0.0.1:{}", self.kwok_server_port),
        ];
        if real_istio {
            // Port-forwards (istioctl's and ours) reach a pod through the node's kubelet: kwok's
            // server answers for it, and the kubelet registers each istiod's ports with it.
            self.apply_kwok_port_forward_crd()?;
            kwok_args.extend([format!("--node-port={KUBELET_PORT}"), "--enable-crds=PortForward".into()]);
        }
        self.spawn("kwok", Command::new(kwok).args(&kwok_args))?;
        let mut manifest = String::new();
        for i in 0..nodes {
            manifest.push_str(&fake_node(&format!("kwok-node-{i}")));
        }
        self.apply(&manifest)?;
        let start = Instant::now();
        loop {
            self.check_alive()?;
            let ready =
                self.kubectl().args(["wait", "--for=condition=Ready", "node", "--all", "--timeout=2s"]).output()?;
            if ready.status.success() {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(120) {
                bail!("kwok nodes not Ready within 2 minutes: {}", String::from_utf8_lossy(&ready.stderr));
            }
        }
    }

    /// kwok's own stage definitions from its module: nodes become Ready and keep their lease;
    /// pods become Ready, complete, and are really deleted when deleted (there is no kubelet).
    fn write_kwok_stages(&self) -> Result<PathBuf> {
        let stage_dir = module_dir("tools", "sigs.k8s.io/kwok")?.join("kustomize/stage");
        let mut stages = String::new();
        for file in [
            "node/fast/node-initialize.yaml",
            "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
            "pod/fast/pod-ready.yaml",
            "pod/fast/pod-complete.yaml",
            "pod/fast/pod-delete.yaml",
        ] {
            let path = stage_dir.join(file);
            stages.push_str(
                &fs::read_to_string(&path).with_context(|| format!("cannot read kwok stage {}", path.display()))?,
            );
            stages.push_str("\n---\n");
        }
        let path = self.dir.join("kwok-stages.yaml");
        fs::write(&path, stages)?;
        Ok(path)
    }
}

fn fake_node(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations:\n    kwok.x-k8s.io/node: fake\n    node.alpha.kubernetes.io/ttl: \"0\"\n  labels:\n    kubernetes.io/hostname: {name}\n    kubernetes.io/os: linux\n    kubernetes.io/arch: amd64\n    type: kwok\nstatus:\n  allocatable: {{cpu: \"32\", memory: 256Gi, pods: \"110\"}}\n  capacity: {{cpu: \"32\", memory: 256Gi, pods: \"110\"}}\n---\n"
    )
}
