//! `retire REV`: the old control plane removed safely. Refused while anything still uses REV
//! (a tag, the default, a namespace's labels, an injected pod, a gateway); otherwise everything it
//! will delete is written to a backup archive (meshbackup's format) first, then the objects labelled
//! `istio.io/rev=REV` are deleted as `istioctl uninstall --revision` does: webhooks first, so no
//! new pod is sent to the istiod that is going away. CRDs, the Istio namespace and every other
//! revision's objects are left alone. A rerun after an interruption deletes what is left.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind};
use meshkit::archive::{Header, PendingFile, Writer};
use meshkit::cluster::Cluster;
use meshkit::istio::{Injected, Intended, Mesh, NamespaceView, PodView, keys, pod_injected, pod_intended};
use meshkit::render::{Cell, OutputArgs, Renderer, Table, Tone};
use meshkit::{Error, Exit, Result};
use serde::Serialize;
use serde_json::Value;

use crate::gateway::GatewayView;
use crate::journal::{Action, Entry, InjectionLabels, State};

/// What an install of one revision owns, in the order it is deleted: webhooks first (no new pod
/// goes to the istiod that is leaving), then its identity and RBAC while the Deployment that names
/// its Helm release still exists (a rerun after an interruption can still find them), then the rest.
const OWNED: &[(&str, &str, &str, &str, bool)] = &[
    ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", false),
    ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", false),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    ("apps", "v1", "Deployment", "deployments", true),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "ConfigMap", "configmaps", true),
];

/// Istio's istiod chart labels its RBAC and ServiceAccount with the Helm release, not the revision.
const INSTANCE: &str = "app.kubernetes.io/instance";

/// The Helm releases of `revision`'s istiod objects (`app=istiod`, labelled with the revision).
pub fn releases(revision: &str, objects: &[Value]) -> std::collections::BTreeSet<String> {
    objects
        .iter()
        .map(|o| &o["metadata"]["labels"])
        .filter(|l| l["app"] == "istiod" && l[keys::REV] == revision)
        .filter_map(|l| l[INSTANCE].as_str().map(String::from))
        .collect()
}

/// Whether an object found through a release belongs to `revision`: not a tag's, not labelled with
/// another revision.
pub fn belongs(revision: &str, object: &Value) -> bool {
    let labels = &object["metadata"]["labels"];
    labels[keys::TAG].is_null() && labels[keys::REV].as_str().is_none_or(|r| r == revision)
}

/// One object the revision owns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Owned {
    /// Index into [`OWNED`].
    #[serde(skip)]
    pub kind_index: usize,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// The object as read, for the backup.
    #[serde(skip)]
    pub object: Value,
}

/// Everything the decision reads.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub mesh: Mesh,
    pub namespaces: Vec<NamespaceView>,
    pub pods: Vec<PodView>,
    pub gateways: Vec<GatewayView>,
    pub owned: Vec<Owned>,
    /// Whether the journal records a finished retirement of this revision.
    pub retired_before: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Delete these, in this order.
    Retire(Vec<Owned>),
    /// Nothing of REV is left and the journal says it was retired: a rerun with nothing to do.
    AlreadyRetired,
}

/// Who still uses `revision`, each as `kind/name` with why.
pub fn users(revision: &str, snapshot: &Snapshot) -> Vec<String> {
    let mesh = &snapshot.mesh;
    let mut users = Vec::new();
    for tag in mesh.tags.values().filter(|t| t.revision == revision) {
        users.push(format!("tag/{}", tag.name));
    }
    if mesh.default_revision() == Some(revision) && !mesh.tags.contains_key(keys::DEFAULT_TAG) {
        users.push("the default revision".into());
    }
    for namespace in &snapshot.namespaces {
        if let Intended::Sidecar { via, revision: Some(target) } = pod_intended(namespace, &Default::default(), mesh)
            && target == revision
            && via != keys::DEFAULT_TAG
        {
            users.push(format!("namespace/{} (istio.io/rev={via})", namespace.name));
        }
    }
    let injected = snapshot
        .pods
        .iter()
        .filter(|p| matches!(pod_injected(p), Injected::Revision { revision: r } if r == revision))
        .count();
    if injected > 0 {
        users.push(format!("{injected} pod(s) injected by {revision}"));
    }
    for gateway in &snapshot.gateways {
        let namespace = snapshot
            .namespaces
            .iter()
            .find(|n| n.name == gateway.namespace)
            .cloned()
            .unwrap_or_else(|| NamespaceView { name: gateway.namespace.clone(), labels: Default::default() });
        if let Intended::Sidecar { revision: Some(target), .. } =
            pod_intended(&namespace, &gateway.template_labels, mesh)
            && target == revision
        {
            users.push(format!("gateway {}/{}", gateway.namespace, gateway.name));
        }
    }
    users
}

/// Decide: refuse an unknown revision or one still in use; otherwise what to delete, in order.
pub fn decide(revision: &str, snapshot: &Snapshot) -> Result<Decision> {
    let installed = snapshot.mesh.revisions.get(revision).is_some_and(|r| r.installed());
    if !installed && snapshot.owned.is_empty() {
        if snapshot.retired_before {
            return Ok(Decision::AlreadyRetired);
        }
        let known: Vec<&str> = snapshot.mesh.installed_revisions().map(|r| r.name.as_str()).collect();
        return Err(Error::not_found(
            format!("revision {revision:?} is not installed and owns nothing"),
            format!("installed revisions: {}", if known.is_empty() { "none".into() } else { known.join(", ") }),
        ));
    }
    let users = users(revision, snapshot);
    if !users.is_empty() {
        let shown: Vec<&str> = users.iter().take(5).map(String::as_str).collect();
        let more =
            if users.len() > shown.len() { format!(" and {} more", users.len() - shown.len()) } else { String::new() };
        return Err(Error::refused(
            format!("revision {revision} is still in use: {}{more}", shown.join(", ")),
            "move them to another revision first (kubectl revtag set TAG --revision REV --overwrite; \
             kubectl meshmigrate namespace NS --to REV --restart --wait); `kubectl meshmigrate status` shows who uses what",
        ));
    }
    let mut owned = snapshot.owned.clone();
    owned.sort_by(|a, b| (a.kind_index, &a.namespace, &a.name).cmp(&(b.kind_index, &b.namespace, &b.name)));
    Ok(Decision::Retire(owned))
}

fn resource(index: usize) -> ApiResource {
    let (group, version, kind, plural, _) = OWNED[index];
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn api(cluster: &Cluster, index: usize) -> Api<DynamicObject> {
    if OWNED[index].4 {
        Api::namespaced_with(cluster.client(), &cluster.istio_namespace, &resource(index))
    } else {
        Api::all_with(cluster.client(), &resource(index))
    }
}

/// The objects of every owned kind `selector` selects: one label-selected list per kind.
async fn list_owned(cluster: &Cluster, selector: &str) -> Result<Vec<Owned>> {
    let lists = futures::future::try_join_all((0..OWNED.len()).map(|index| async move {
        let what = format!("list {}", OWNED[index].3);
        let items = cluster.list(&api(cluster, index), Some(selector), &what).await?;
        Ok::<_, Error>(
            items
                .into_iter()
                .map(|item| {
                    let mut object = serde_json::to_value(&item).unwrap_or_default();
                    object["apiVersion"] = Value::from(resource(index).api_version);
                    object["kind"] = Value::from(OWNED[index].2);
                    Owned {
                        kind_index: index,
                        kind: OWNED[index].2.to_string(),
                        namespace: item.metadata.namespace.clone(),
                        name: item.metadata.name.clone().unwrap_or_default(),
                        object,
                    }
                })
                .collect::<Vec<_>>(),
        )
    }))
    .await?;
    Ok(lists.into_iter().flatten().collect())
}

/// What the revision owns: everything labelled with it (tags aside: a tag in use refuses anyway),
/// and the RBAC and ServiceAccount of its istiod's Helm release.
async fn owned(cluster: &Cluster, revision: &str) -> Result<Vec<Owned>> {
    let mut owned = list_owned(cluster, &format!("{}={revision},!{}", keys::REV, keys::TAG)).await?;
    let objects: Vec<Value> = owned.iter().map(|o| o.object.clone()).collect();
    for release in releases(revision, &objects) {
        for found in list_owned(cluster, &format!("{},{INSTANCE}={release}", keys::ISTIOD_SELECTOR)).await? {
            let seen = owned
                .iter()
                .any(|o| (o.kind_index, &o.namespace, &o.name) == (found.kind_index, &found.namespace, &found.name));
            if !seen && belongs(revision, &found.object) {
                owned.push(found);
            }
        }
    }
    Ok(owned)
}

pub async fn fetch(cluster: &Cluster, revision: &str) -> Result<Snapshot> {
    let pods: Api<Pod> = Api::all(cluster.client());
    let (control_plane, owned, pods, (gateways, namespaces), journal) = tokio::try_join!(
        meshkit::fetch::control_plane(cluster),
        owned(cluster, revision),
        cluster.list_map(&pods, Some(keys::INJECTED_POD_LABEL), "list pods", |p: &Pod| PodView::from(p)),
        crate::gateway::fetch_all(cluster),
        crate::journal::Journal::read(cluster),
    )?;
    let retired_before = journal.entries.iter().any(|e| {
        e.action == Action::Retire
            && e.state == State::Done
            && e.workload.as_deref() == Some(&format!("revision/{revision}"))
    });
    Ok(Snapshot { mesh: control_plane.mesh(), namespaces, pods, gateways, owned, retired_before })
}

pub struct RetireArgs {
    pub revision: String,
    pub file: Option<PathBuf>,
    pub dry_run: meshkit::cli::DryRun,
    pub yes: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    revision: String,
    backup: Option<String>,
    deleted: Vec<Owned>,
    dry_run: bool,
}

/// Deletes `owned` in order (webhooks first), sent with `params`; already gone is fine.
async fn delete_owned(cluster: &Cluster, owned: &[Owned], params: &DeleteParams) -> Result<()> {
    for object in owned {
        let name = &object.name;
        let what = format!("delete {} {name}", OWNED[object.kind_index].3);
        match cluster.call(&what, api(cluster, object.kind_index).delete(name, params)).await {
            Ok(_) | Err(Error::Api { code: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        if !params.dry_run {
            eprintln!("kubectl-meshmigrate: deleted {} {name}", object.kind.to_ascii_lowercase());
        }
    }
    Ok(())
}

pub async fn run(kube: &meshkit::args::KubeArgs, output: OutputArgs, args: &RetireArgs) -> Result<Exit> {
    let cluster = Cluster::connect(kube).await?;
    let snapshot = fetch(&cluster, &args.revision).await?;
    let owned = match decide(&args.revision, &snapshot)? {
        Decision::AlreadyRetired => {
            eprintln!("kubectl-meshmigrate: revision {} is already retired; nothing to do", args.revision);
            let report = Report {
                revision: args.revision.clone(),
                backup: None,
                deleted: vec![],
                dry_run: args.dry_run.is_dry(),
            };
            Renderer::new(output).print(&report, || table(&report))?;
            return Ok(Exit::Ok);
        }
        Decision::Retire(owned) => owned,
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    let path = args.file.clone().unwrap_or_else(|| {
        PathBuf::from(format!("istio-retire-{}-{}.tar.gz", args.revision, now.strftime("%Y%m%dT%H%M%SZ")))
    });
    if args.dry_run == meshkit::cli::DryRun::Server {
        delete_owned(&cluster, &owned, &DeleteParams { dry_run: true, ..DeleteParams::default() }).await?;
        eprintln!("kubectl-meshmigrate: the apiserver accepted every deletion (server dry run); nothing was deleted");
    }
    if args.dry_run.is_dry() {
        let report = Report { revision: args.revision.clone(), backup: None, deleted: owned, dry_run: true };
        Renderer::new(output).print(&report, || table(&report))?;
        return Ok(Exit::Ok);
    }
    let question = format!(
        "Delete the {} objects of revision {} (backed up to {} first)?",
        owned.len(),
        args.revision,
        path.display()
    );
    if meshkit::confirm::confirm(&question, args.yes)? == meshkit::confirm::Answer::No {
        return Err(Error::NotConfirmed { what: question, hint: "nothing was changed".into() });
    }
    let user = crate::relabel::whoami(&cluster).await;
    let lock = crate::lock::acquire(&cluster, &user).await?;
    let outcome = retire(&cluster, &user, &args.revision, &owned, &path, now, &snapshot.mesh).await;
    let released = lock.release().await;
    outcome?;
    released?;
    let report = Report {
        revision: args.revision.clone(),
        backup: Some(path.display().to_string()),
        deleted: owned,
        dry_run: false,
    };
    Renderer::new(output).print(&report, || table(&report))?;
    Ok(Exit::Ok)
}

/// Journal (pending) → backup → delete → journal (done).
async fn retire(
    cluster: &Cluster,
    user: &str,
    revision: &str,
    owned: &[Owned],
    path: &std::path::Path,
    now: k8s_openapi::jiff::Timestamp,
    mesh: &Mesh,
) -> Result<()> {
    let workload = format!("revision/{revision}");
    let id = crate::relabel::with_journal(cluster, |journal| {
        let id = format!("{:06}", journal.next_id());
        journal.entries.push(Entry {
            id: id.clone(),
            time: now.to_string(),
            user: user.to_string(),
            action: Action::Retire,
            namespace: cluster.istio_namespace.clone(),
            from: InjectionLabels::default(),
            to: InjectionLabels::default(),
            state: State::Pending,
            undoes: None,
            workload: Some(workload.clone()),
        });
        id
    })
    .await?;
    backup(cluster, owned, path, now, mesh).await?;
    delete_owned(cluster, owned, &DeleteParams::default()).await?;
    crate::relabel::with_journal(cluster, |journal| {
        if let Some(entry) = journal.entries.iter_mut().find(|e| e.id == id) {
            entry.state = State::Done;
        }
    })
    .await?;
    Ok(())
}

/// Everything about to be deleted, in meshbackup's archive format (`kubectl meshbackup inspect`
/// verifies it, `restore` puts it back). Written to a temporary file and renamed; never over an
/// existing file.
async fn backup(
    cluster: &Cluster,
    owned: &[Owned],
    path: &std::path::Path,
    now: k8s_openapi::jiff::Timestamp,
    mesh: &Mesh,
) -> Result<()> {
    let version = cluster.call("get the server version", cluster.client().apiserver_version()).await?;
    let pending = PendingFile::create(path, false)?;
    let mut writer = Writer::new(pending).map_err(Error::Output)?;
    for object in owned {
        let mut value = object.object.clone();
        meshkit::archive::strip(&mut value);
        writer.add(&value, OWNED[object.kind_index].3)?;
    }
    let tool = format!("kubectl-meshmigrate {} retire", env!("CARGO_PKG_VERSION"));
    let header = Header::describe(cluster, version.git_version, mesh, tool, &now.to_string(), false);
    let (file, manifest) = writer.finish(header).map_err(Error::Output)?;
    file.persist()?;
    eprintln!("kubectl-meshmigrate: backed up {} objects to {}", manifest.objects.len(), path.display());
    Ok(())
}

fn table(report: &Report) -> Table {
    let verb = if report.dry_run { "would delete" } else { "deleted" };
    let mut table = Table::new(&["KIND", "NAMESPACE", "NAME", "RESULT"]);
    for object in &report.deleted {
        table.push(vec![
            Cell::from(object.kind.as_str()),
            Cell::from(object.namespace.as_deref().unwrap_or("")),
            Cell::from(object.name.as_str()),
            Cell::new(verb, if report.dry_run { Tone::Warn } else { Tone::Good }),
        ]);
    }
    table
}

#[cfg(test)]
#[path = "retire_tests.rs"]
mod tests;
