//! `kubectl meshcheck version`: control-plane versions per revision, and data-plane versions per
//! revision read from pod specs (no port-forward, no istiod needed).

use std::collections::BTreeMap;

use meshkit::args::KubeArgs;
use meshkit::cli::Matches;
use meshkit::cluster::{Cluster, block_on};
use meshkit::istio::injects::stale_image;
use meshkit::istio::support::MAX_PROXY_LAG;
use meshkit::istio::{Injected, IstioVersion, pod_injected, proxy_version};
use meshkit::render::{Cell, OutputArgs, Renderer, Table, Tone};
use meshkit::{Exit, Result};
use serde::Serialize;

use crate::snapshot::{Needs, Snapshot};
use crate::spec::SPEC;

/// `version`: fetch → decide → render; no arguments.
pub fn run(kube: &KubeArgs, output: OutputArgs, m: &Matches) -> Result<Exit> {
    m.at_most(0, "no arguments")?;
    let renderer = Renderer::new(output);
    block_on(async {
        let cluster = Cluster::connect(kube).await?;
        let snapshot = Snapshot::fetch(&cluster, Needs::default()).await?;
        let versions = decide(&snapshot);
        for warning in &versions.warnings {
            SPEC.warn(warning);
        }
        renderer.print_human(&versions, |_| text(&versions, &renderer))?;
        Ok(Exit::Ok)
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlane {
    pub revision: String,
    pub version: Option<IstioVersion>,
    pub ready: i32,
    pub replicas: i32,
    pub default: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataPlane {
    /// The revision that injected the proxies (`unknown` for proxies without Istio's annotations).
    pub revision: String,
    /// `None` when the image tag is not a version (digests, custom builds).
    pub version: Option<IstioVersion>,
    pub pods: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Versions {
    pub kubernetes: String,
    pub control_plane: Vec<ControlPlane>,
    pub data_plane: Vec<DataPlane>,
    pub warnings: Vec<String>,
}

pub fn decide(snapshot: &Snapshot) -> Versions {
    let mesh = snapshot.mesh();
    let default = mesh.default_revision();
    let control_plane: Vec<ControlPlane> = mesh
        .installed_revisions()
        .map(|r| ControlPlane {
            revision: r.name.clone(),
            version: r.version.clone(),
            ready: r.istiods.iter().map(|i| i.ready_replicas).sum(),
            replicas: r.istiods.iter().map(|i| i.replicas).sum(),
            default: default == Some(r.name.as_str()),
        })
        .collect();
    let mut counts: BTreeMap<(String, Option<IstioVersion>), usize> = BTreeMap::new();
    // Skew within a revision: proxies older than what their revision injects now.
    let mut behind: BTreeMap<String, usize> = BTreeMap::new();
    for pod in &snapshot.pods {
        let revision = match pod_injected(pod) {
            Injected::NotInjected => continue,
            Injected::Unknown => "unknown".to_string(),
            Injected::Revision { revision } => revision,
        };
        if let Some(reason) = mesh.injects.get(&revision).and_then(|i| stale_image(pod, i)) {
            *behind.entry(reason).or_default() += 1;
        }
        *counts.entry((revision, proxy_version(pod))).or_default() += 1;
    }
    let mut warnings: Vec<String> =
        behind.into_iter().map(|(reason, pods)| format!("{pods} pod(s) are behind their revision: {reason}")).collect();
    let data_plane: Vec<DataPlane> = counts
        .into_iter()
        .map(|((revision, version), pods)| {
            let control = mesh.revisions.get(&revision).and_then(|r| r.version.clone());
            if let (Some(proxy), Some(control)) = (&version, &control) {
                if proxy.minor_version() > control.minor_version() {
                    warnings.push(format!("{pods} proxy(ies) {proxy} are newer than their control plane {revision} ({control})"));
                } else if control.major == proxy.major && control.minor > proxy.minor + MAX_PROXY_LAG {
                    warnings.push(format!(
                        "{pods} proxy(ies) {proxy} lag their control plane {revision} ({control}) by more than {MAX_PROXY_LAG} minors"
                    ));
                }
            }
            if !mesh.revisions.get(&revision).is_some_and(|r| r.installed()) && revision != "unknown" {
                warnings.push(format!("{pods} proxy(ies) were injected by revision {revision}, which is not installed"));
            }
            DataPlane { revision, version, pods }
        })
        .collect();
    Versions { kubernetes: snapshot.kubernetes_version.clone(), control_plane, data_plane, warnings }
}

pub fn text(versions: &Versions, renderer: &Renderer) -> String {
    let show = |v: &Option<IstioVersion>| {
        v.as_ref().map(|v| Cell::from(v.to_string())).unwrap_or(Cell::new("unknown", Tone::Warn))
    };
    let mut control = Table::new(&["REVISION", "VERSION", "ISTIOD", "DEFAULT"]);
    for c in &versions.control_plane {
        let tone = if c.ready >= c.replicas && c.ready > 0 { Tone::Good } else { Tone::Warn };
        control.push(vec![
            Cell::from(c.revision.as_str()),
            show(&c.version),
            Cell::new(format!("{}/{}", c.ready, c.replicas), tone),
            Cell::from(if c.default { "yes" } else { "" }),
        ]);
    }
    let mut data = Table::new(&["REVISION", "PROXY VERSION", "PODS"]);
    for d in &versions.data_plane {
        data.push(vec![Cell::from(d.revision.as_str()), show(&d.version), Cell::from(d.pods.to_string())]);
    }
    let mut out = format!("Kubernetes: {}\n\nControl plane:\n", versions.kubernetes);
    out.push_str(&renderer.table_text(&control));
    out.push_str("\nData plane:\n");
    if versions.data_plane.is_empty() {
        out.push_str("no injected pods\n");
    } else {
        out.push_str(&renderer.table_text(&data));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshkit::istio::{ContainerView, PodView};

    fn pod(revision: &str, image_tag: &str) -> PodView {
        PodView {
            annotations: [("istio.io/rev".to_string(), revision.to_string())].into(),
            containers: vec![ContainerView {
                name: "istio-proxy".into(),
                image: format!("docker.io/istio/proxyv2:{image_tag}"),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn proxies_behind_what_their_revision_injects_now_are_a_warning() {
        let snapshot = Snapshot {
            istiods: vec![meshkit::testing::istiod("1-30-3", "1.30.4")],
            injects: vec![meshkit::istio::injects::Injects {
                revision: "1-30-3".into(),
                hub: "docker.io/istio".into(),
                tag: "1.30.4".into(),
                image: "proxyv2".into(),
                variant: String::new(),
                ..Default::default()
            }],
            pods: vec![pod("1-30-3", "1.30.3"), pod("1-30-3", "1.30.3"), pod("1-30-3", "1.30.4")],
            ..Default::default()
        };
        let v = decide(&snapshot);
        assert_eq!(
            v.warnings,
            ["2 pod(s) are behind their revision: proxy 1.30.3, revision 1-30-3 now injects 1.30.4"]
        );
    }

    #[test]
    fn counts_proxies_per_revision_and_version_and_warns_on_skew() {
        let istiod = meshkit::testing::istiod;
        let snapshot = Snapshot {
            kubernetes_version: "v1.35.4".into(),
            istiods: vec![istiod("1-30-3", "1.30.3"), istiod("1-31-1", "1.31.1")],
            pods: vec![
                pod("1-30-3", "1.30.3"),
                pod("1-30-3", "1.30.3"),
                pod("1-31-1", "1.31.1"),
                pod("1-31-1", "1.27.2"),
                pod("1-30-3", "1.31.0"),
                pod("gone", "1.29.0"),
            ],
            ..Default::default()
        };
        let v = decide(&snapshot);
        assert_eq!(v.control_plane.len(), 2);
        let rows: Vec<(String, String, usize)> = v
            .data_plane
            .iter()
            .map(|d| (d.revision.clone(), d.version.as_ref().unwrap().to_string(), d.pods))
            .collect();
        assert_eq!(
            rows,
            [
                ("1-30-3".to_string(), "1.30.3".to_string(), 2),
                ("1-30-3".to_string(), "1.31.0".to_string(), 1),
                ("1-31-1".to_string(), "1.27.2".to_string(), 1),
                ("1-31-1".to_string(), "1.31.1".to_string(), 1),
                ("gone".to_string(), "1.29.0".to_string(), 1),
            ]
        );
        assert_eq!(v.warnings.len(), 3, "{:#?}", v.warnings);
        assert!(v.warnings.iter().any(|w| w.contains("1.31.0 are newer than their control plane 1-30-3")));
        assert!(v.warnings.iter().any(|w| w.contains("1.27.2 lag their control plane 1-31-1")));
        assert!(v.warnings.iter().any(|w| w.contains("revision gone, which is not installed")));
    }
}
