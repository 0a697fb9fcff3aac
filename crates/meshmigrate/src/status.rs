//! `kubectl meshmigrate status [NS…|-A]`: per namespace, what its labels ask for, what its pods
//! have, which pods are stale and which workloads a restart would fix.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::core::PartialObjectMeta;
use meshkit::cluster::Cluster;
use meshkit::istio::injects::Injects;
use meshkit::istio::proxy_status::LiveStatus;
use meshkit::istio::{
    IstioVersion, IstiodView, Mesh, NamespaceInjection, NamespaceView, PodRevisionState, PodView, ServiceView,
    WebhookConfigView, keys, namespace_injection, pod_injected, pod_state, proxy_version,
};
use meshkit::render::{Cell, Table, Tone};
use meshkit::{Error, Result};
use serde::Serialize;

/// What `status` decides on.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub istiods: Vec<IstiodView>,
    pub webhooks: Vec<WebhookConfigView>,
    pub services: Vec<ServiceView>,
    /// What each revision injects now.
    pub injects: Vec<Injects>,
    /// The namespaces to report on.
    pub namespaces: Vec<NamespaceView>,
    pub pods: Vec<PodView>,
    /// `(namespace, ReplicaSet) → Deployment`.
    pub replica_set_owners: BTreeMap<(String, String), String>,
    /// Who is connected to each istiod (`status` reads it; `None` when not read).
    pub live: Option<LiveStatus>,
}

/// Which namespaces: the named ones, or every namespace with an injection label or an injected pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Named(Vec<String>),
}

impl Scope {
    /// `status [NS…|-A]`.
    pub fn from_matches(m: &meshkit::cli::Matches) -> Result<Scope> {
        if m.kube.all_namespaces && !m.args.is_empty() {
            return Err(Error::usage("name namespaces or pass -A, not both", m.see()));
        }
        Ok(if m.args.is_empty() { Scope::All } else { Scope::Named(m.args.clone()) })
    }
}

pub async fn fetch(cluster: &Cluster, scope: &Scope) -> Result<Snapshot> {
    let client = cluster.client();
    let meshkit::fetch::ControlPlane { istiods, webhooks, services, injects, .. } =
        meshkit::fetch::control_plane(cluster).await?;
    let (namespaces, pods, replica_sets) = match scope {
        Scope::All => {
            let replica_sets: Api<ReplicaSet> = Api::all(client.clone());
            let (labelled, pods, replica_sets) = tokio::try_join!(
                meshkit::fetch::labelled_namespaces(cluster),
                meshkit::kube::pods::list(cluster, None, None, "list pods", |_| true),
                list_replica_set_owners(cluster, &replica_sets, "list replicasets"),
            )?;
            (labelled, pods, replica_sets)
        }
        Scope::Named(names) => {
            let namespaces: Api<Namespace> = Api::all(client.clone());
            let mut views = Vec::new();
            let mut pods = Vec::new();
            let mut owners = BTreeMap::new();
            for name in names {
                let namespace = match cluster.call(&format!("get namespace {name}"), namespaces.get(name)).await {
                    Ok(namespace) => namespace,
                    Err(Error::Api { code: 404, .. }) => {
                        return Err(Error::not_found(
                            format!("namespace {name:?} does not exist"),
                            "`kubectl get namespaces` lists them",
                        ));
                    }
                    Err(e) => return Err(e),
                };
                views.push(NamespaceView::from(&namespace));
                let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), name);
                let (list_pods, list_rs) =
                    (format!("list pods in namespace {name}"), format!("list replicasets in namespace {name}"));
                let (more_pods, more_owners) = tokio::try_join!(
                    meshkit::kube::pods::list(cluster, Some(name), None, &list_pods, |_| true),
                    list_replica_set_owners(cluster, &rs_api, &list_rs),
                )?;
                pods.extend(more_pods);
                owners.extend(more_owners);
            }
            (views, pods, owners)
        }
    };
    Ok(Snapshot {
        istiods,
        webhooks,
        services,
        injects,
        namespaces,
        pods,
        replica_set_owners: replica_sets,
        live: None,
    })
}

/// ReplicaSet owners from metadata only (their pod templates are never needed here).
pub(crate) async fn list_replica_set_owners(
    cluster: &Cluster,
    api: &Api<ReplicaSet>,
    what: &str,
) -> Result<BTreeMap<(String, String), String>> {
    let mut owners = BTreeMap::new();
    let mut params = kube::api::ListParams::default().limit(meshkit::cluster::PAGE_SIZE);
    loop {
        let page = cluster.call(what, api.list_metadata(&params)).await?;
        for rs in &page.items {
            let rs: &PartialObjectMeta<ReplicaSet> = rs;
            if let Some(owner) = rs
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true) && o.kind == "Deployment")
            {
                owners.insert(
                    (rs.metadata.namespace.clone().unwrap_or_default(), rs.metadata.name.clone().unwrap_or_default()),
                    owner.name.clone(),
                );
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(owners),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionPods {
    pub revision: String,
    pub proxy_version: Option<IstioVersion>,
    pub pods: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceStatus {
    pub namespace: String,
    /// `istio-injection` and `istio.io/rev`, as set.
    pub labels: BTreeMap<String, String>,
    /// The tag or revision the labels ask for (`default` for `istio-injection=enabled`).
    pub requested: Option<String>,
    /// Where that resolves; `None` when it names nothing installed or nothing is asked for.
    pub intended_revision: Option<String>,
    pub pods: usize,
    pub injected: Vec<RevisionPods>,
    pub uninjected: usize,
    /// Pods whose sidecar differs from what their labels ask for.
    pub stale_pods: Vec<String>,
    /// Why, for each stale pod (`pod → reason`).
    pub stale_reasons: BTreeMap<String, String>,
    /// Workloads to restart so that their pods get the intended sidecar.
    pub restart: Vec<String>,
    /// Proxies connected, live, to the intended revision, of those in the namespace (`None`
    /// when the live status was not read, or an istiod could not be).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxies: Option<ProxyCount>,
}

/// The workload that owns a pod: what has to be restarted to replace it.
pub(crate) fn workload(pod: &PodView, replica_set_owners: &BTreeMap<(String, String), String>) -> String {
    match &pod.owner {
        Some((kind, name)) if kind == "ReplicaSet" => {
            match replica_set_owners.get(&(pod.namespace.clone(), name.clone())) {
                Some(deployment) => format!("deployment/{deployment}"),
                None => format!("replicaset/{name}"),
            }
        }
        Some((kind, name)) => format!("{}/{name}", kind.to_ascii_lowercase()),
        None => format!("pod/{} (no controller: delete it to recreate it)", pod.name),
    }
}

pub fn decide(snapshot: &Snapshot, scope: &Scope) -> Vec<NamespaceStatus> {
    let mesh = Mesh::discover(&snapshot.istiods, &snapshot.webhooks, &snapshot.services)
        .with_injects(snapshot.injects.iter().cloned());
    let mut by_namespace: BTreeMap<&str, Vec<&PodView>> = BTreeMap::new();
    for pod in snapshot.pods.iter().filter(|p| !p.finished) {
        by_namespace.entry(pod.namespace.as_str()).or_default().push(pod);
    }
    let mut namespaces: BTreeMap<String, NamespaceView> =
        snapshot.namespaces.iter().map(|n| (n.name.clone(), n.clone())).collect();
    if *scope == Scope::All {
        // Unlabelled namespaces whose pods still carry sidecars belong in the report too.
        for (name, pods) in &by_namespace {
            if pods.iter().any(|p| pod_injected(p).revision().is_some()) {
                namespaces
                    .entry(name.to_string())
                    .or_insert_with(|| NamespaceView { name: name.to_string(), labels: Default::default() });
            }
        }
    }
    let views: Vec<NamespaceView> = namespaces.values().cloned().collect();
    let live = snapshot.live.as_ref().filter(|l| l.complete());
    let live_counts = live.map(|live| proxy_counts(&snapshot.pods, &views, &mesh, live));
    namespaces
        .into_values()
        .map(|ns| {
            let pods = by_namespace.get(ns.name.as_str()).cloned().unwrap_or_default();
            let requested = namespace_injection(&ns.labels).requested().map(str::to_string);
            let mut counts: BTreeMap<(String, Option<IstioVersion>), usize> = BTreeMap::new();
            let mut uninjected = 0;
            let mut stale_pods = Vec::new();
            let mut stale_reasons = BTreeMap::new();
            let mut restart = BTreeSet::new();
            for pod in &pods {
                match pod_injected(pod).revision() {
                    Some(revision) => *counts.entry((revision.to_string(), proxy_version(pod))).or_default() += 1,
                    None => uninjected += 1,
                }
                if let PodRevisionState::Stale { reason, .. } = pod_state(&ns, pod, &mesh) {
                    stale_pods.push(pod.name.clone());
                    stale_reasons.insert(pod.name.clone(), reason);
                    restart.insert(workload(pod, &snapshot.replica_set_owners));
                }
            }
            let proxies = live_counts.as_ref().map(|c| c.get(&ns.name).copied().unwrap_or_default());
            NamespaceStatus {
                proxies,
                labels: ns
                    .labels
                    .iter()
                    .filter(|(k, _)| *k == keys::REV || *k == keys::INJECTION)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                intended_revision: requested.as_deref().and_then(|r| mesh.resolve(r)).map(str::to_string),
                requested: match namespace_injection(&ns.labels) {
                    NamespaceInjection::Disabled { .. } => None,
                    _ => requested,
                },
                namespace: ns.name,
                pods: pods.len(),
                injected: counts
                    .into_iter()
                    .map(|((revision, proxy_version), pods)| RevisionPods { revision, proxy_version, pods })
                    .collect(),
                uninjected,
                stale_pods,
                stale_reasons,
                restart: restart.into_iter().collect(),
            }
        })
        .collect()
}

/// The distinct reasons of a namespace's stale pods.
fn why(row: &NamespaceStatus) -> Cell {
    let reasons: BTreeSet<&str> = row.stale_reasons.values().map(String::as_str).collect();
    if reasons.is_empty() {
        Cell::new("-", Tone::Dim)
    } else {
        Cell::from(reasons.into_iter().collect::<Vec<_>>().join("; "))
    }
}

/// `status`' PROXIES column: of a namespace's pods with a proxy, how many are connected, live,
/// to an istiod of the revision their labels ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyCount {
    pub on_intended: usize,
    pub total: usize,
}

/// PROXIES per namespace, from one reading of every pod against the live status.
pub fn proxy_counts(
    pods: &[PodView],
    namespaces: &[NamespaceView],
    mesh: &Mesh,
    live: &LiveStatus,
) -> BTreeMap<String, ProxyCount> {
    let mut counts: BTreeMap<String, ProxyCount> = BTreeMap::new();
    for row in meshkit::istio::proxy_rows(pods, namespaces, mesh, live) {
        if row.verdict == meshkit::istio::Verdict::External {
            continue;
        }
        let count = counts.entry(row.namespace.clone()).or_default();
        count.total += 1;
        if row.intended.is_some() && row.revision == row.intended {
            count.on_intended += 1;
        }
    }
    counts
}

/// `2/3`: connected to the intended revision, of all; `?` when not known.
fn proxies_cell(count: Option<ProxyCount>) -> Cell {
    match count {
        None => Cell::new("?", Tone::Dim),
        Some(c) if c.total == 0 => Cell::new("-", Tone::Dim),
        Some(c) => Cell::new(
            format!("{}/{}", c.on_intended, c.total),
            if c.on_intended == c.total { Tone::Good } else { Tone::Warn },
        ),
    }
}

pub fn table(rows: &[NamespaceStatus]) -> Table {
    let mut table =
        Table::new(&["NAMESPACE", "LABELS", "INTENDED", "PODS", "INJECTED", "PROXIES", "STALE", "WHY", "RESTART"]);
    for row in rows {
        let labels = if row.labels.is_empty() {
            Cell::new("-", Tone::Dim)
        } else {
            Cell::from(row.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
        };
        let intended = match (&row.requested, &row.intended_revision) {
            (None, _) => Cell::new("none", Tone::Dim),
            (Some(via), Some(rev)) if via == rev => Cell::from(rev.as_str()),
            (Some(via), Some(rev)) => Cell::from(format!("{via} → {rev}")),
            (Some(via), None) => Cell::new(format!("{via} (missing)"), Tone::Bad),
        };
        let mut injected: Vec<String> = row
            .injected
            .iter()
            .map(|r| {
                format!(
                    "{}:{} ({})",
                    r.revision,
                    r.pods,
                    r.proxy_version.as_ref().map(|v| v.to_string()).unwrap_or("?".into())
                )
            })
            .collect();
        if row.uninjected > 0 {
            injected.push(format!("none:{}", row.uninjected));
        }
        let stale = row.stale_pods.len();
        table.push(vec![
            Cell::from(row.namespace.as_str()),
            labels,
            intended,
            Cell::from(row.pods.to_string()),
            Cell::from(if injected.is_empty() { "-".to_string() } else { injected.join(", ") }),
            proxies_cell(row.proxies),
            Cell::new(stale.to_string(), if stale > 0 { Tone::Warn } else { Tone::Good }),
            why(row),
            Cell::from(if row.restart.is_empty() { "-".to_string() } else { row.restart.join(",") }),
        ]);
    }
    table
}

/// `kubectl meshmigrate status`: fetch, decide, render.
pub async fn run(
    kube: &meshkit::args::KubeArgs,
    output: meshkit::render::OutputArgs,
    scope: &Scope,
) -> Result<meshkit::Exit> {
    let cluster = Cluster::connect(kube).await?;
    let (snapshot, live) = tokio::join!(fetch(&cluster, scope), meshkit::fetch::live_status(&cluster));
    if let Some(line) = live.unreadable_summary() {
        crate::spec::SPEC.warn(format_args!("{line}; PROXIES shows ? where it is not known"));
    }
    let snapshot = Snapshot { live: Some(live), ..snapshot? };
    let rows = decide(&snapshot, scope);
    meshkit::render::Renderer::new(output).print(&rows, || table(&rows))?;
    Ok(meshkit::Exit::Ok)
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
