//! `kubectl revtag revisions [REV]`: every installed revision side by side.

use std::collections::BTreeMap;

use meshkit::args::KubeArgs;
use meshkit::cli::Matches;
use meshkit::cluster::{Cluster, block_on};
use meshkit::install::Manager;
use meshkit::istio::proxy_status::LiveStatus;
use meshkit::istio::{IstioVersion, keys, namespace_injection, pod_injected};
use meshkit::render::{Cell, OutputArgs, Renderer, Table, Tone};
use meshkit::{Error, Exit, Result};
use serde::Serialize;

use crate::snapshot::{Needs, Snapshot};
use crate::spec::SPEC;

/// `revisions [REVISION]`: every revision, or the one named.
pub fn run(kube: &KubeArgs, output: OutputArgs, m: &Matches) -> Result<Exit> {
    m.at_most(1, "at most one REVISION")?;
    let only = m.args.first().map(String::as_str);
    if let Some(revision) = only {
        meshkit::istio::names::validate("revision", revision)?;
    }
    block_on(async {
        let cluster = Cluster::connect(kube).await?;
        let needs = Needs { validating: true, pods: true };
        let (snapshot, live) = tokio::join!(Snapshot::fetch(&cluster, needs), meshkit::fetch::live_status(&cluster));
        if let Some(line) = live.unreadable_summary() {
            SPEC.warn(format_args!("{line}; PROXIES shows ? where it is not known"));
        }
        let snapshot = snapshot?;
        let rows = decide(&snapshot, &live, only)?;
        crate::common::warn(&dangling_tags(&snapshot));
        Renderer::new(output).print(&rows, || table(&rows))?;
        Ok(Exit::Ok)
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IstiodStatus {
    pub name: String,
    pub ready: i32,
    pub replicas: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRow {
    pub revision: String,
    pub version: Option<IstioVersion>,
    pub istiods: Vec<IstiodStatus>,
    pub injectors: Vec<String>,
    pub validators: Vec<String>,
    pub services: Vec<String>,
    pub tags: Vec<String>,
    pub default: bool,
    /// Namespaces whose labels resolve to this revision (directly, through a tag, or through
    /// `istio-injection=enabled` when it is the default).
    pub namespaces: Vec<String>,
    /// Pods carrying a sidecar this revision injected.
    pub injected_pods: usize,
    /// Proxies connected to its istiods now, as they report (VMs and other clusters' pods too);
    /// `None` when an istiod could not be read.
    pub connected_proxies: Option<usize>,
    /// Who installed it (the manager of its istiod Deployment, else of its injector).
    pub managed_by: Manager,
}

pub fn decide(snapshot: &Snapshot, live: &LiveStatus, only: Option<&str>) -> Result<Vec<RevisionRow>> {
    let mesh = snapshot.mesh();
    let default = mesh.default_revision().map(str::to_string);
    let mut namespaces: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ns in &snapshot.namespaces {
        if let Some(revision) = namespace_injection(&ns.labels).requested().and_then(|name| mesh.resolve(name)) {
            namespaces.entry(revision).or_default().push(ns.name.clone());
        }
    }
    let mut pods: BTreeMap<String, usize> = BTreeMap::new();
    for pod in &snapshot.pods {
        if let Some(revision) = pod_injected(pod).revision() {
            *pods.entry(revision.to_string()).or_default() += 1;
        }
    }
    let rows: Vec<RevisionRow> = mesh
        .installed_revisions()
        .filter(|r| only.is_none_or(|o| o == r.name))
        .map(|r| RevisionRow {
            revision: r.name.clone(),
            version: r.version.clone(),
            istiods: r
                .istiods
                .iter()
                .map(|i| IstiodStatus { name: i.name.clone(), ready: i.ready_replicas, replicas: i.replicas })
                .collect(),
            injectors: r.injectors.clone(),
            validators: snapshot
                .validating
                .iter()
                // The default validator carries `istio.io/tag=default` too: it still validates for
                // the revision it names.
                .filter(|v| {
                    v.metadata.labels.as_ref().and_then(|l| l.get(keys::REV)).map(String::as_str)
                        == Some(r.name.as_str())
                })
                .filter_map(|v| v.metadata.name.clone())
                .collect(),
            services: r.services.clone(),
            tags: mesh.tags_of(&r.name).into_iter().map(str::to_string).collect(),
            default: default.as_deref() == Some(r.name.as_str()),
            namespaces: namespaces.remove(r.name.as_str()).unwrap_or_default(),
            injected_pods: pods.get(&r.name).copied().unwrap_or(0),
            connected_proxies: live.complete().then(|| live.connected_to(&r.name)),
            managed_by: r.managed_by.clone(),
        })
        .collect();
    if let Some(only) = only
        && rows.is_empty()
    {
        let installed: Vec<&str> = mesh.installed_revisions().map(|r| r.name.as_str()).collect();
        return Err(Error::not_found(
            format!("revision {only:?} is not installed"),
            if installed.is_empty() {
                "no revision is installed".into()
            } else {
                format!("installed revisions: {}", installed.join(", "))
            },
        ));
    }
    if rows.is_empty() {
        return Err(Error::not_found(
            format!("no Istio revision is installed in namespace {}", snapshot.istio_namespace),
            "install Istio first, or point --istio-namespace at where it is installed",
        ));
    }
    Ok(rows)
}

/// Tags pointing at a revision that is no longer installed: they are not rows here (there is no
/// revision to show), so they are reported beside the table.
pub fn dangling_tags(snapshot: &Snapshot) -> Vec<String> {
    let mesh = snapshot.mesh();
    mesh.tags
        .values()
        .filter(|t| !mesh.revisions.get(&t.revision).is_some_and(|r| r.installed()))
        .map(|t| format!("tag {} points at revision {}, which is not installed", t.name, t.revision))
        .collect()
}

pub fn table(rows: &[RevisionRow]) -> Table {
    let mut table = Table::new(&[
        "REVISION",
        "VERSION",
        "ISTIOD",
        "DEFAULT",
        "TAGS",
        "NAMESPACES",
        "PODS",
        "PROXIES",
        "MANAGED-BY",
        "WEBHOOK",
        "VALIDATOR",
    ]);
    let or_dash =
        |items: &[String]| if items.is_empty() { Cell::new("-", Tone::Dim) } else { Cell::from(items.join(",")) };
    for row in rows {
        let (ready, replicas) = row.istiods.iter().fold((0, 0), |(r, n), i| (r + i.ready, n + i.replicas));
        let istiod = if row.istiods.is_empty() {
            Cell::new("none", Tone::Bad)
        } else {
            Cell::new(
                format!("{ready}/{replicas}"),
                if ready >= replicas && ready > 0 { Tone::Good } else { Tone::Warn },
            )
        };
        table.push(vec![
            Cell::from(row.revision.as_str()),
            row.version.as_ref().map(|v| Cell::from(v.to_string())).unwrap_or(Cell::new("-", Tone::Dim)),
            istiod,
            if row.default { Cell::new("yes", Tone::Good) } else { Cell::from("") },
            or_dash(&row.tags),
            Cell::from(row.namespaces.len().to_string()),
            Cell::from(row.injected_pods.to_string()),
            row.connected_proxies.map_or(Cell::new("?", Tone::Warn), |n| Cell::from(n.to_string())),
            crate::list::manager_cell(&row.managed_by),
            or_dash(&row.injectors),
            or_dash(&row.validators),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::testing::{mwc, ns, two_revisions};
    use meshkit::istio::PodView;

    fn pod(namespace: &str, name: &str, revision: &str) -> PodView {
        PodView {
            namespace: namespace.into(),
            name: name.into(),
            annotations: [("istio.io/rev".to_string(), revision.to_string())].into(),
            ..Default::default()
        }
    }

    fn snapshot() -> Snapshot {
        let mut snapshot = two_revisions();
        snapshot.mutating.push(mwc("istio-revision-tag-canary", "1-31-1", Some("canary"), "istio-system"));
        snapshot.namespaces = vec![
            ns("legacy", &[("istio-injection", "enabled")]),
            ns("on-canary", &[("istio.io/rev", "canary")]),
            ns("pinned", &[("istio.io/rev", "1-31-1")]),
            ns("off", &[("istio-injection", "disabled"), ("istio.io/rev", "1-31-1")]),
        ];
        snapshot.pods =
            vec![pod("legacy", "a", "1-30-3"), pod("on-canary", "b", "1-31-1"), pod("on-canary", "c", "1-30-3")];
        snapshot
    }

    #[test]
    fn counts_namespaces_through_tags_and_the_default() {
        let rows = decide(&snapshot(), &LiveStatus::default(), None).unwrap();
        assert_eq!(rows.len(), 2);
        let (stable, canary) = (&rows[0], &rows[1]);
        assert!(stable.default && !canary.default);
        assert_eq!(stable.tags, ["default"]);
        assert_eq!(stable.namespaces, ["legacy"]);
        assert_eq!(canary.namespaces, ["on-canary", "pinned"], "the disabled namespace does not count");
        assert_eq!((stable.injected_pods, canary.injected_pods), (2, 1));
        assert_eq!(canary.connected_proxies, Some(0), "every istiod answered (there were none to read)");
        assert_eq!(canary.version.as_ref().unwrap().to_string(), "1.31.1");
        assert_eq!(canary.injectors, ["istio-sidecar-injector-1-31-1"]);
    }

    #[test]
    fn dangling_tags_are_reported() {
        let mut snap = snapshot();
        snap.mutating.push(mwc("istio-revision-tag-old", "1-29-0", Some("old"), "istio-system"));
        assert_eq!(dangling_tags(&snap), ["tag old points at revision 1-29-0, which is not installed"]);
        assert!(dangling_tags(&snapshot()).is_empty());
    }

    #[test]
    fn one_revision_or_a_clear_not_found() {
        assert_eq!(decide(&snapshot(), &LiveStatus::default(), Some("1-31-1")).unwrap().len(), 1);
        let err = decide(&snapshot(), &LiveStatus::default(), Some("1-29-0")).unwrap_err();
        assert_eq!(err.to_string(), "revision \"1-29-0\" is not installed");
        assert_eq!(err.hint().as_deref(), Some("installed revisions: 1-30-3, 1-31-1"));
    }
}
