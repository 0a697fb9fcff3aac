//! `kubectl meshcheck proxy-status [NAMESPACE…] [-l SELECTOR]`: which istiod each proxy is
//! really connected to, and whether it is in sync, read live from every istiod (one
//! port-forwarded `/debug/syncz` each), beside the revision its pod's labels ask for.

use meshkit::args::KubeArgs;
use meshkit::cli::Matches;
use meshkit::cluster::{Cluster, block_on};
use meshkit::istio::proxy_status::{LiveStatus, SHOWN_TYPES, SyncState};
use meshkit::istio::{Mesh, NamespaceView, PodView, ProxyRow, Verdict, keys, proxy_rows};
use meshkit::render::{Cell, OutputArgs, Renderer, Table, Tone};
use meshkit::{Exit, Result};
use serde::Serialize;

use crate::spec::SPEC;

/// Which proxies to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Empty: every namespace.
    pub namespaces: Vec<String>,
    pub selector: Option<String>,
}

/// What the command reads: the mesh, the pods with a proxy, and the live status.
pub struct Fetched {
    pub mesh: Mesh,
    pub namespaces: Vec<NamespaceView>,
    pub pods: Vec<PodView>,
    pub live: LiveStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyStatus {
    pub proxies: Vec<ProxyRow>,
    /// Istiods that could not be read, and why: the rows then fall back to the pod specs.
    pub unreadable: Vec<Unreadable>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub istiod: String,
    pub reason: String,
}

impl Filter {
    /// `proxy-status [NAMESPACE…] [-l SELECTOR]`.
    pub fn from_matches(m: &Matches) -> Result<Filter> {
        let selector = m.value("selector").map(str::to_string);
        if let Some(selector) = &selector {
            meshkit::args::check_selector(selector)?;
        }
        for namespace in &m.args {
            meshkit::istio::names::validate("namespace", namespace)?;
        }
        Ok(Filter { namespaces: m.args.clone(), selector })
    }
}

pub fn run(kube: &KubeArgs, output: OutputArgs, filter: &Filter) -> Result<Exit> {
    block_on(async {
        let cluster = Cluster::connect(kube).await?;
        let fetched = fetch(&cluster, filter).await?;
        let status = decide(&fetched, filter);
        if let Some(line) = fetched.live.unreadable_summary() {
            SPEC.warn(format_args!("{line}; rows without a live answer show what pod specs say"));
        }
        Renderer::new(output).print(&status, || table(&status))?;
        Ok(Exit::Ok)
    })
}

/// One label-selected list of injected pods (never one per namespace), the control plane and
/// the namespaces' labels, and the live status, all sent together.
pub async fn fetch(cluster: &Cluster, filter: &Filter) -> Result<Fetched> {
    let selector = match &filter.selector {
        Some(user) => format!("{},{user}", keys::INJECTED_POD_LABEL),
        None => keys::INJECTED_POD_LABEL.to_string(),
    };
    let (control_plane, namespaces, pods, live) = tokio::join!(
        meshkit::fetch::control_plane(cluster),
        meshkit::fetch::labelled_namespaces(cluster),
        meshkit::kube::pods::list(cluster, None, Some(&selector), "list pods", |_| true),
        meshkit::fetch::live_status(cluster),
    );
    Ok(Fetched { mesh: control_plane?.mesh(), namespaces: namespaces?, pods: pods?, live })
}

pub fn decide(fetched: &Fetched, filter: &Filter) -> ProxyStatus {
    let wanted = |namespace: &str| filter.namespaces.is_empty() || filter.namespaces.iter().any(|n| n == namespace);
    let pods = fetched.pods.iter().filter(|p| wanted(&p.namespace));
    let mut proxies = proxy_rows(pods, &fetched.namespaces, &fetched.mesh, &fetched.live);
    // Connected proxies without a pod here are shown only when no pod filter narrows the view.
    proxies.retain(|r| wanted(&r.namespace) && (r.verdict != Verdict::External || filter.selector.is_none()));
    proxies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let unreadable = fetched
        .live
        .unreadable
        .iter()
        .map(|(istiod, reason)| Unreadable { istiod: istiod.clone(), reason: reason.clone() })
        .collect();
    ProxyStatus { proxies, unreadable }
}

fn sync_cell(state: &SyncState) -> Cell {
    let tone = match state {
        SyncState::Synced => Tone::Good,
        SyncState::NotSent => Tone::Dim,
        SyncState::Stale { .. } => Tone::Warn,
        SyncState::Error { .. } => Tone::Bad,
    };
    Cell::new(state.label(), tone)
}

pub fn table(status: &ProxyStatus) -> Table {
    let mut table = Table::new(&[
        "NAMESPACE",
        "NAME",
        "ISTIOD",
        "REVISION",
        "INTENDED",
        "VERSION",
        "CDS",
        "LDS",
        "EDS",
        "RDS",
        "ECDS",
        "STATUS",
    ]);
    for row in &status.proxies {
        let revision = row.revision.clone().unwrap_or_else(|| "-".into());
        // The connected revision is marked where it is not the one the labels ask for.
        let intended = match (&row.intended, &row.revision) {
            (Some(want), Some(have)) if want != have => Cell::new(format!("{want} ≠"), Tone::Warn),
            (Some(want), _) => Cell::from(want.clone()),
            (None, _) => Cell::new("-", Tone::Dim),
        };
        let verdict_tone = match &row.verdict {
            Verdict::Synced | Verdict::External => Tone::Good,
            Verdict::Syncing | Verdict::Unknown => Tone::Warn,
            _ => Tone::Bad,
        };
        let mut cells = vec![
            Cell::from(row.namespace.clone()),
            Cell::from(row.name.clone()),
            Cell::from(row.istiod.clone().unwrap_or_else(|| "-".into())),
            Cell::from(revision),
            intended,
            Cell::from(row.version.clone().unwrap_or_else(|| "-".into())),
        ];
        if row.istiod.is_some() {
            cells.extend(SHOWN_TYPES.iter().map(|t| sync_cell(row.sync.get(*t).unwrap_or(&SyncState::NotSent))));
        } else {
            cells.extend(SHOWN_TYPES.iter().map(|_| Cell::new("-", Tone::Dim)));
        }
        cells.push(Cell::new(row.verdict.describe(), verdict_tone));
        table.push(cells);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshkit::istio::proxy_status::{IstiodReading, parse_syncz};

    fn pod(namespace: &str, name: &str, revision: &str) -> PodView {
        let mut pod = PodView { namespace: namespace.into(), name: name.into(), ..PodView::default() };
        pod.annotations.insert(keys::SIDECAR_STATUS.into(), format!("{{\"revision\":\"{revision}\"}}"));
        pod
    }

    fn fetched() -> Fetched {
        let syncz = r#"[{"proxy":"web-1.shop","istio_version":"1.31.1","resources":{
            "type.googleapis.com/envoy.config.cluster.v3.Cluster":{"sent":"a","acked":"a"}}},
            {"proxy":"vm-1.legacy","resources":{"type.googleapis.com/envoy.config.cluster.v3.Cluster":{"sent":"x","acked":"x"}}}]"#;
        let live = LiveStatus::from_readings(
            vec![IstiodReading {
                pod: "istiod-1-31-1-x".into(),
                revision: "1-31-1".into(),
                outcome: parse_syncz(syncz.as_bytes()),
            }],
            "2026-12-01T00:00:00Z".parse().unwrap(),
        );
        Fetched {
            mesh: Mesh::default(),
            namespaces: Vec::new(),
            pods: vec![pod("shop", "web-1", "1-31-1"), pod("other", "api-1", "1-30-3")],
            live,
        }
    }

    #[test]
    fn rows_for_pods_and_for_proxies_without_one() {
        let status = decide(&fetched(), &Filter::default());
        let names: Vec<&str> = status.proxies.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["vm-1", "api-1", "web-1"], "sorted by namespace, then name");
        assert_eq!(status.proxies[1].verdict, Verdict::NotConnected);
        let table = table(&status);
        let web = table.rows.iter().find(|r| r[1].text == "web-1").unwrap();
        assert_eq!(
            (web[2].text.as_str(), web[3].text.as_str(), web[6].text.as_str()),
            ("istiod-1-31-1-x", "1-31-1", "SYNCED")
        );
        assert_eq!(web[7].text, "NOT SENT");
    }

    #[test]
    fn namespaces_and_selectors_narrow_the_view() {
        let only_shop = Filter { namespaces: vec!["shop".into()], selector: None };
        let status = decide(&fetched(), &only_shop);
        assert_eq!(status.proxies.len(), 1);
        let selected = Filter { namespaces: Vec::new(), selector: Some("app=web".into()) };
        assert!(decide(&fetched(), &selected).proxies.iter().all(|r| r.verdict != Verdict::External));
    }
}
