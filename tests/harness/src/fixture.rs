//! The Istio fixture: Istio's CRDs and two control-plane revisions rendered with helm from the
//! charts inside the `istio.io/istio` module, plus application namespaces labelled the ways users
//! label them, with pods written exactly as Istio's injector writes them.
//!
//! No istiod runs, so nothing would answer the injector and validator webhooks. The fixture
//! therefore runs with the admission webhooks off (see [`crate::Options::admission_webhooks`]) and
//! writes "already injected" pods itself. In Tier B the controllers create the pods: uninjected
//! after [`Fixture::install`], injected as istiod would inject them after
//! [`Fixture::install_injected`] (see [`crate::injector`]).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::plane::ControlPlane;
use crate::tools::{cache_dir, istio_module_dir};

/// A control-plane revision of the fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IstioRevision {
    pub name: &'static str,
    pub version: &'static str,
    pub tags: &'static [&'static str],
}

/// The revision users run today; it holds the `default` tag.
pub const STABLE: IstioRevision =
    IstioRevision { name: "1-30-3", version: "1.30.3", tags: &["default", "prod-stable"] };
/// The revision being rolled out.
pub const CANARY: IstioRevision = IstioRevision { name: "1-31-1", version: "1.31.1", tags: &["prod-canary"] };

pub const ISTIO_NAMESPACE: &str = "istio-system";
pub const GATEWAY_NAMESPACE: &str = "istio-ingress";

type StaticLabels = &'static [(&'static str, &'static str)];

/// One application namespace: its labels and its pods.
pub struct AppNamespace {
    pub name: &'static str,
    pub labels: StaticLabels,
    pub pods: &'static [FixturePod],
}

/// A pod of the fixture and the sidecar Istio's injector gave it.
pub struct FixturePod {
    pub name: &'static str,
    /// The revision that injected it, if any.
    pub injected: Option<IstioRevision>,
    /// Whether the sidecar is a native sidecar (an init container with `restartPolicy: Always`).
    pub native: bool,
    pub labels: StaticLabels,
}

const fn pod(name: &'static str, injected: Option<IstioRevision>) -> FixturePod {
    FixturePod { name, injected, native: false, labels: &[] }
}

/// Every way a namespace is labelled in practice, each with the pods such a namespace has.
pub const APP_NAMESPACES: &[AppNamespace] = &[
    AppNamespace {
        name: "shop-legacy",
        labels: &[("istio-injection", "enabled")],
        pods: &[pod("web-0", Some(STABLE))],
    },
    AppNamespace { name: "shop-stable", labels: &[("istio.io/rev", STABLE.name)], pods: &[pod("web-0", Some(STABLE))] },
    AppNamespace {
        name: "shop-tagged",
        labels: &[("istio.io/rev", "prod-stable")],
        pods: &[pod("web-0", Some(STABLE))],
    },
    AppNamespace {
        name: "shop-canary",
        labels: &[("istio.io/rev", "prod-canary")],
        pods: &[FixturePod { native: true, ..pod("web-0", Some(CANARY)) }, pod("web-1", Some(STABLE))],
    },
    AppNamespace {
        name: "shop-both",
        labels: &[("istio-injection", "enabled"), ("istio.io/rev", CANARY.name)],
        pods: &[pod("web-0", Some(STABLE))],
    },
    AppNamespace {
        name: "shop-plain",
        labels: &[],
        pods: &[
            pod("web-0", None),
            FixturePod { labels: &[("sidecar.istio.io/inject", "true")], ..pod("opted-in", Some(STABLE)) },
        ],
    },
    AppNamespace {
        name: "shop-optout",
        labels: &[("istio.io/rev", "prod-canary")],
        pods: &[FixturePod { labels: &[("sidecar.istio.io/inject", "false")], ..pod("batch-0", None) }],
    },
    AppNamespace { name: "shop-off", labels: &[("istio-injection", "disabled")], pods: &[pod("web-0", None)] },
];

pub struct Fixture;

impl Fixture {
    /// Installs CRDs, both revisions, the gateway and the application namespaces. With `pods`,
    /// also writes injected pods (Tier A); leave it off when controllers create pods.
    pub fn install(plane: &ControlPlane, pods: bool) -> Result<()> {
        let rendered = render_istio(plane)?;
        let (crds, rest) = split_crds(&rendered);
        plane.apply(&namespaces_manifest())?;
        plane.apply(&crds)?;
        plane.kubectl_ok(&["wait", "--for=condition=Established", "crd", "--all", "--timeout=120s"])?;
        plane.apply(&rest)?;
        plane.apply(&apps_manifest(pods))?;
        Ok(())
    }

    /// Tier B with injection: as [`Fixture::install`] without pods, but Istio's injector webhooks
    /// are mirrored as admission policies (see [`crate::injector`]) before the application
    /// Deployments exist, so their pods come up injected the way istiod would inject them.
    pub fn install_injected(plane: &ControlPlane) -> Result<()> {
        let rendered = render_istio(plane)?;
        let (crds, rest) = split_crds(&rendered);
        plane.apply(&namespaces_manifest())?;
        plane.apply(&crds)?;
        plane.kubectl_ok(&["wait", "--for=condition=Established", "crd", "--all", "--timeout=120s"])?;
        // The gateway's pods, too, must be created after the injector is in place.
        let (gateway, control_plane): (Vec<&str>, Vec<&str>) = rest.split("\n---\n").partition(|doc| {
            doc.lines().any(|l| l.trim_end() == "kind: Deployment")
                && doc.lines().any(|l| l.trim_end() == format!("  namespace: \"{GATEWAY_NAMESPACE}\""))
        });
        plane.apply(&control_plane.join("\n---\n"))?;
        Self::install_injector(plane)?;
        plane.apply(&gateway.join("\n---\n"))?;
        plane.apply(&apps_manifest(false))?;
        Ok(())
    }

    /// Mirrors the injector webhooks now in the cluster (again, after a tag moved).
    pub fn install_injector(plane: &ControlPlane) -> Result<()> {
        crate::injector::install(plane, ISTIO_NAMESPACE)
    }
}

/// Renders Istio's charts with helm; cached, since helm runs take seconds.
fn render_istio(plane: &ControlPlane) -> Result<String> {
    let module = istio_module_dir()?;
    let charts = module.join("manifests/charts");
    let kube_version = plane.tools.versions.kubernetes.clone();
    let key = format!("{}|{}|{kube_version}|{STABLE:?}|{CANARY:?}|v2", module.display(), plane.tools.helm().display());
    let cached = cache_dir().join(format!("istio-fixture-{:016x}.yaml", fnv(&key)));
    if let Ok(text) = fs::read_to_string(&cached) {
        return Ok(text);
    }
    let helm = |release: &str, chart: &str, namespace: &str, sets: &[String]| -> Result<String> {
        let mut cmd = Command::new(plane.tools.helm());
        cmd.args(["template", release])
            .arg(charts.join(chart))
            .args(["--namespace", namespace, "--kube-version", &kube_version])
            .envs(plane.helm_env());
        for set in sets {
            cmd.args(["--set", set]);
        }
        let out = cmd.output().context("cannot run helm")?;
        if !out.status.success() {
            bail!("helm template {chart} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?)
    };
    let mut all = helm("istio-base", "base", ISTIO_NAMESPACE, &[format!("defaultRevision={}", STABLE.name)])?;
    for rev in [STABLE, CANARY] {
        let sets = vec![
            format!("revision={}", rev.name),
            "global.hub=docker.io/istio".into(),
            format!("global.tag={}", rev.version),
            format!("revisionTags={{{}}}", rev.tags.join(",")),
        ];
        all.push_str("\n---\n");
        all.push_str(&helm(&format!("istiod-{}", rev.name), "istio-control/istio-discovery", ISTIO_NAMESPACE, &sets)?);
    }
    all.push_str("\n---\n");
    all.push_str(&helm(
        "istio-ingressgateway",
        "gateway",
        GATEWAY_NAMESPACE,
        &[format!("revision={}", STABLE.name), "service.type=ClusterIP".into()],
    )?);
    fs::create_dir_all(cache_dir())?;
    fs::write(&cached, &all)?;
    Ok(all)
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Splits rendered YAML into the CRD documents and everything else.
fn split_crds(rendered: &str) -> (String, String) {
    let (mut crds, mut rest) = (String::new(), String::new());
    for doc in rendered.split("\n---") {
        if !doc.lines().any(|l| l.starts_with("kind:")) {
            continue;
        }
        let target =
            if doc.lines().any(|l| l.trim_end() == "kind: CustomResourceDefinition") { &mut crds } else { &mut rest };
        target.push_str(doc);
        target.push_str("\n---\n");
    }
    (crds, rest)
}

fn namespaces_manifest() -> String {
    let mut out = String::new();
    for ns in [ISTIO_NAMESPACE, GATEWAY_NAMESPACE] {
        let _ = write!(out, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n---\n");
    }
    out
}

fn yaml_labels(pairs: &[(&str, &str)], indent: &str) -> String {
    if pairs.is_empty() {
        return " {}\n".into();
    }
    let mut out = String::from("\n");
    for (k, v) in pairs {
        let _ = writeln!(out, "{indent}{k}: \"{v}\"");
    }
    out
}

fn apps_manifest(pods: bool) -> String {
    let mut out = String::new();
    for ns in APP_NAMESPACES {
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n  labels:{}---\n",
            ns.name,
            yaml_labels(ns.labels, "    ")
        );
        let _ = write!(
            out,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n---\n",
            ns = ns.name
        );
        if pods {
            for pod in ns.pods {
                out.push_str(&pod_manifest(ns.name, pod.name, pod.injected, pod.native, pod.labels));
            }
        }
    }
    out
}

/// A pod as Istio's injector leaves it: the `istio-proxy` sidecar (as a container, or as a
/// native sidecar init container), `istio-init`, and the `istio.io/rev` and
/// `sidecar.istio.io/status` annotations naming the real revision.
pub fn pod_manifest(
    namespace: &str,
    name: &str,
    injected: Option<IstioRevision>,
    native: bool,
    labels: &[(&str, &str)],
) -> String {
    let mut all_labels: Vec<(&str, &str)> = vec![("app", "web")];
    all_labels.extend_from_slice(labels);
    let mut out = format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n");
    let app = "  - name: web\n    image: nginx:1.27\n";
    let Some(rev) = injected else {
        let _ = write!(out, "  labels:{}spec:\n  containers:\n{app}---\n", yaml_labels(&all_labels, "    "));
        return out;
    };
    all_labels.extend([("security.istio.io/tlsMode", "istio"), ("service.istio.io/canonical-name", "web")]);
    let status = format!(
        r#"{{"initContainers":["istio-init"{native}],"containers":[{proxy}],"volumes":["workload-socket","credential-socket","workload-certs","istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"{rev}"}}"#,
        native = if native { r#","istio-proxy""# } else { "" },
        proxy = if native { "" } else { r#""istio-proxy""# },
        rev = rev.name
    );
    let image = format!("docker.io/istio/proxyv2:{}", rev.version);
    let proxy = format!(
        "  - name: istio-proxy\n    image: {image}\n    args: [proxy, sidecar, --domain, $(POD_NAMESPACE).svc.cluster.local]\n    env:\n    - name: CA_ADDR\n      value: istiod-{rev}.istio-system.svc:15012\n",
        rev = rev.name
    );
    let _ = write!(
        out,
        "  labels:{labels}  annotations:\n    istio.io/rev: \"{rev}\"\n    kubectl.kubernetes.io/default-container: web\n    sidecar.istio.io/status: '{status}'\nspec:\n  initContainers:\n  - name: istio-init\n    image: {image}\n    args: [istio-iptables]\n",
        labels = yaml_labels(&all_labels, "    "),
        rev = rev.name
    );
    if native {
        let _ = write!(out, "{}    restartPolicy: Always\n  containers:\n{app}", proxy);
    } else {
        let _ = write!(out, "  containers:\n{app}{proxy}");
    }
    out.push_str("---\n");
    out
}

/// Writes the rendered Istio manifests to `path` (for people who want to look at them).
pub fn write_rendered(plane: &ControlPlane, path: &Path) -> Result<()> {
    fs::write(path, render_istio(plane)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_separates_crds() {
        let (crds, rest) = split_crds(
            "kind: CustomResourceDefinition\nmetadata: {name: a}\n---\nkind: Service\n---\n# only a comment\n",
        );
        assert!(crds.contains("name: a") && !crds.contains("Service"));
        assert!(rest.contains("kind: Service") && !rest.contains("comment"));
    }

    #[test]
    fn injected_pod_names_its_revision_twice() {
        let pod = pod_manifest("ns", "p", Some(STABLE), false, &[]);
        assert!(pod.contains("istio.io/rev: \"1-30-3\""));
        assert!(pod.contains(r#""revision":"1-30-3""#));
        assert!(pod.contains("proxyv2:1.30.3"));
        let native = pod_manifest("ns", "p", Some(CANARY), true, &[]);
        assert!(native.contains("restartPolicy: Always"));
        assert!(!pod_manifest("ns", "p", None, false, &[]).contains("istio-proxy"));
    }
}
