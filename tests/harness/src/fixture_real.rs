//! Tier C's Istio: installed with real `helm install` from each build's stamped charts, served by
//! real istiod processes (see [`crate::kubelet`]), with application Deployments whose pods are
//! injected by them through real admission.

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::fixture::{GATEWAY_NAMESPACE, ISTIO_NAMESPACE};
use crate::plane::ControlPlane;
use crate::tools::{IstioBuild, NEW_ISTIO, OLD_ISTIO};

/// An application namespace of Tier C; its pods come from a `web` Deployment.
pub struct RealNamespace {
    pub name: &'static str,
    pub labels: &'static [(&'static str, &'static str)],
    /// Pod-template labels of its Deployment.
    pub pod_labels: &'static [(&'static str, &'static str)],
    /// Only installed when the canary revision is (it names the canary's tag).
    pub needs_canary: bool,
}

const fn ns(name: &'static str, labels: &'static [(&'static str, &'static str)]) -> RealNamespace {
    RealNamespace { name, labels, pod_labels: &[], needs_canary: false }
}

/// The ways users label namespaces, with the old revision holding `default` and `prod-stable`.
pub const REAL_APP_NAMESPACES: &[RealNamespace] = &[
    ns("shop-legacy", &[("istio-injection", "enabled")]),
    ns("shop-stable", &[("istio.io/rev", "1-30-3")]),
    ns("shop-tagged", &[("istio.io/rev", "prod-stable")]),
    RealNamespace { pod_labels: &[("sidecar.istio.io/inject", "true")], ..ns("shop-plain", &[]) },
    ns("shop-off", &[("istio-injection", "disabled")]),
    RealNamespace { needs_canary: true, ..ns("shop-canary", &[("istio.io/rev", "prod-canary")]) },
];

/// Tags each revision's Helm release renders (`revisionTags`).
pub fn release_tags(build: IstioBuild) -> &'static [&'static str] {
    if build == OLD_ISTIO { &["default", "prod-stable"] } else { &["prod-canary"] }
}

/// The stamped charts of both builds and the values file for this cluster.
pub struct RealFixture {
    pub old_charts: PathBuf,
    pub new_charts: PathBuf,
    /// What a user passes to `helm install istiod-<rev> … -f` for a working istiod here.
    pub helm_values: PathBuf,
}

const HELM_VALUES: &str = "\
# istiod on the meshtest Tier C cluster: one replica, no autoscaler (no metrics server runs here).
pilot:
  autoscaleEnabled: false
  replicaCount: 1
";

impl RealFixture {
    /// Stamps both builds' charts (cached) and writes the values file into the plane's directory.
    pub fn prepare(plane: &ControlPlane) -> Result<RealFixture> {
        let helm_values = plane.dir.join("helm-values.yaml");
        fs::write(&helm_values, HELM_VALUES)?;
        Ok(RealFixture {
            old_charts: plane.tools.istio_charts(OLD_ISTIO)?,
            new_charts: plane.tools.istio_charts(NEW_ISTIO)?,
            helm_values,
        })
    }

    /// The charts of `build`.
    pub fn charts(&self, build: IstioBuild) -> &PathBuf {
        if build == OLD_ISTIO { &self.old_charts } else { &self.new_charts }
    }

    /// Installs Istio with `revisions` revisions (1: the old one; 2: both) and the application
    /// namespaces, and waits until every istiod serves.
    pub fn install(plane: &ControlPlane, revisions: usize) -> Result<RealFixture> {
        let fixture = RealFixture::prepare(plane)?;
        let base = fixture.old_charts.join("base");
        helm_ok(
            plane,
            &["install", "istio-base"],
            &base,
            &[
                "-n",
                ISTIO_NAMESPACE,
                "--create-namespace",
                "--set",
                &format!("defaultRevision={}", OLD_ISTIO.revision()),
            ],
        )?;
        wait_crds_established(plane)?;
        let mut builds = vec![OLD_ISTIO];
        if revisions > 1 {
            builds.push(NEW_ISTIO);
        }
        for build in &builds {
            fixture.install_revision(plane, *build, release_tags(*build))?;
        }
        let names: Vec<String> = builds.iter().map(IstioBuild::revision).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        plane.wait_istiods_ready(&names, Duration::from_secs(120))?;
        helm_ok(
            plane,
            &["install", "istio-ingressgateway"],
            &fixture.old_charts.join("gateway"),
            &[
                "-n",
                GATEWAY_NAMESPACE,
                "--create-namespace",
                "--set",
                &format!("revision={}", OLD_ISTIO.revision()),
                "--set",
                "service.type=ClusterIP",
            ],
        )?;
        plane.apply(&apps_manifest(revisions > 1))?;
        Ok(fixture)
    }

    /// `helm install istiod-<rev>` of `build` with its tags, as a user installs a revision.
    pub fn install_revision(&self, plane: &ControlPlane, build: IstioBuild, tags: &[&str]) -> Result<()> {
        let chart = self.charts(build).join("istio-control/istio-discovery");
        let rev = build.revision();
        let values = self.helm_values.display().to_string();
        let mut extra = vec!["-n", ISTIO_NAMESPACE, "-f", &values];
        let (revision, revision_tags) = (format!("revision={rev}"), format!("revisionTags={{{}}}", tags.join(",")));
        extra.extend(["--set", &revision]);
        if !tags.is_empty() {
            extra.extend(["--set", &revision_tags]);
        }
        helm_ok(plane, &["install", &format!("istiod-{rev}")], &chart, &extra).map(drop)
    }
}

/// `kubectl wait` fails outright on a CRD the apiserver has not given conditions yet: retry.
fn wait_crds_established(plane: &ControlPlane) -> Result<()> {
    let start = std::time::Instant::now();
    loop {
        match plane.kubectl_ok(&["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]) {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > Duration::from_secs(60) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// helm pointed at the plane, with its caches and configuration inside the plane's directory.
pub fn helm(plane: &ControlPlane) -> Command {
    let mut cmd = Command::new(plane.tools.helm());
    cmd.env("KUBECONFIG", &plane.kubeconfig).envs(plane.helm_env());
    cmd
}

/// `helm ARGS CHART EXTRA`, failing with helm's stderr.
pub fn helm_ok(plane: &ControlPlane, args: &[&str], chart: &std::path::Path, extra: &[&str]) -> Result<String> {
    let out = helm(plane).args(args).arg(chart).args(extra).output().context("cannot run helm")?;
    if !out.status.success() {
        bail!("helm {} {} failed: {}", args.join(" "), chart.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn apps_manifest(canary: bool) -> String {
    let mut out = String::new();
    let yaml_map = |pairs: &[(&str, &str)]| -> String {
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: \"{v}\"")).collect();
        format!("{{{}}}", body.join(", "))
    };
    for ns in REAL_APP_NAMESPACES.iter().filter(|n| canary || !n.needs_canary) {
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n  labels: {}\n---\n",
            ns.name,
            yaml_map(ns.labels)
        );
        let mut pod_labels = vec![("app", "web")];
        pod_labels.extend_from_slice(ns.pod_labels);
        let _ = write!(
            out,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {labels}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n        ports: [{{containerPort: 80, name: http}}]\n---\n",
            ns = ns.name,
            labels = yaml_map(&pod_labels)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_namespaces_only_with_the_canary() {
        assert!(apps_manifest(true).contains("name: shop-canary"));
        assert!(!apps_manifest(false).contains("shop-canary"));
        assert!(apps_manifest(false).contains("labels: {app: \"web\", sidecar.istio.io/inject: \"true\"}"));
        assert_eq!(release_tags(OLD_ISTIO), ["default", "prod-stable"]);
    }
}
