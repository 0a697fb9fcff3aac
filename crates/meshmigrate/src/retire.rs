//! `retire REV`: the old control plane removed safely. Refused while anything still uses REV
//! (a tag, the default, a namespace's labels, an injected pod, a gateway); otherwise everything it
//! will delete is written to a backup archive (meshbackup's format) first, then the objects labelled
//! `istio.io/rev=REV` are deleted as `istioctl uninstall --revision` does: webhooks first, so no
//! new pod is sent to the istiod that is going away. CRDs, the Istio namespace and every other
//! revision's objects are left alone. A rerun after an interruption deletes what is left.

use crate::gateway::GatewayView;
use crate::journal::{Action, State};
pub use crate::retire_helm::ReleaseView;
pub use crate::retire_owned::Owned;
use meshkit::cluster::Cluster;
use meshkit::istio::proxy_status::LiveStatus;
use meshkit::istio::{Injected, Intended, Mesh, NamespaceView, PodView, keys, pod_injected, pod_intended};
use meshkit::{Error, Result};

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
    /// Helm releases the owned objects name (see [`crate::retire_helm`]).
    pub releases: Vec<ReleaseView>,
    /// Objects of the revision's release that belong to another revision now.
    pub protected: Vec<Owned>,
    /// Who is connected to each istiod now: proxies of VMs and other clusters use a revision too.
    pub live: LiveStatus,
}

/// What a retirement does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Delete these, in this order.
    pub delete: Vec<Owned>,
    /// Objects of the revision's Helm release that moved to another revision: kept, and freed from
    /// the release's claim before its records go.
    pub protect: Vec<Owned>,
    /// The revision's Helm releases, whose records are deleted as `helm uninstall` deletes them.
    pub releases: Vec<ReleaseView>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Retire(Plan),
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
    // A Succeeded or Failed pod will not run again: it does not keep a revision in use.
    let injected = snapshot
        .pods
        .iter()
        .filter(|p| !p.finished)
        .filter(|p| matches!(pod_injected(p), Injected::Revision { revision: r } if r == revision))
        .count();
    if injected > 0 {
        users.push(format!("{injected} pod(s) injected by {revision}"));
    }
    let connected = snapshot.live.connected_to(revision);
    if connected > 0 {
        users.push(format!("{connected} proxy(ies) connected to its istiod now"));
    }
    for gateway in &snapshot.gateways {
        let namespace = NamespaceView::find_in(&snapshot.namespaces, &gateway.namespace);
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
    crate::retire_helm::check_owners(revision, &snapshot.owned, &snapshot.releases)?;
    let mut delete: Vec<Owned> =
        snapshot.owned.iter().filter(|o| !crate::retire_helm::kept(revision, o, &snapshot.releases)).cloned().collect();
    delete.sort_by(|a, b| (a.kind_index, &a.namespace, &a.name).cmp(&(b.kind_index, &b.namespace, &b.name)));
    let releases = snapshot.releases.iter().filter(|r| r.revision.as_deref() == Some(revision)).cloned().collect();
    Ok(Decision::Retire(Plan { delete, protect: snapshot.protected.clone(), releases }))
}

pub async fn fetch(cluster: &Cluster, revision: &str) -> Result<Snapshot> {
    let live = async { Ok(meshkit::fetch::live_status(cluster).await) };
    let (control_plane, mut owned, pods, (gateways, namespaces), journal, live) = tokio::try_join!(
        meshkit::fetch::control_plane(cluster),
        crate::retire_owned::owned(cluster, revision),
        meshkit::kube::pods::list(cluster, None, Some(keys::INJECTED_POD_LABEL), "list pods", |_| true),
        crate::gateway::fetch_all(cluster),
        crate::journal::Journal::read(cluster),
        live,
    )?;
    if let Some(line) = live.unreadable_summary() {
        crate::spec::SPEC
            .warn(format_args!("{line}; proxies outside this cluster's pods (VMs, other clusters) are not known"));
    }
    let retired_before = journal.entries.iter().any(|e| {
        e.action == Action::Retire
            && e.state == State::Done
            && e.workload.as_deref() == Some(&format!("revision/{revision}"))
    });
    let (releases, protected) = crate::retire_helm::fetch(cluster, revision, &mut owned).await?;
    let mesh = control_plane.mesh();
    Ok(Snapshot { mesh, namespaces, pods, gateways, owned, retired_before, releases, protected, live })
}

#[cfg(test)]
#[path = "retire_tests.rs"]
mod tests;
