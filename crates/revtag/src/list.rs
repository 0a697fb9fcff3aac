//! `kubectl revtag list`: fetch → decide → render.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Api;
use meshkit::args::KubeArgs;
use meshkit::cluster::Cluster;
use meshkit::istio::{
    IstioVersion, IstiodView, Mesh, NamespaceInjection, NamespaceView, ServiceView, WebhookConfigView, keys,
    namespace_injection,
};
use meshkit::render::{Cell, Renderer, Table, Tone};
use meshkit::{Error, Exit, Result};
use serde::Serialize;

/// The objects `list` needs, as plain data.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub istio_namespace: String,
    pub istiods: Vec<IstiodView>,
    pub webhooks: Vec<WebhookConfigView>,
    pub services: Vec<ServiceView>,
    /// Namespaces carrying `istio.io/rev` or `istio-injection`.
    pub namespaces: Vec<NamespaceView>,
    /// Only show namespace usage in this namespace (`-n`).
    pub only_namespace: Option<String>,
}

/// Five label-selected, paginated lists, sent at once; no per-namespace requests.
pub async fn fetch(cluster: &Cluster, kube: &KubeArgs) -> Result<Snapshot> {
    let client = cluster.client();
    let ns = &cluster.istio_namespace;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client);
    let (list_deployments, list_services) =
        (format!("list deployments in namespace {ns}"), format!("list services in namespace {ns}"));
    let (istiods, webhooks, services, revisioned, legacy) = tokio::try_join!(
        cluster.list(&deployments, Some("app=istiod"), &list_deployments),
        cluster.list(&webhooks, Some(keys::REV), "list mutatingwebhookconfigurations"),
        cluster.list(&services, Some(keys::REV), &list_services),
        cluster.list(&namespaces, Some(keys::REV), "list namespaces"),
        cluster.list(&namespaces, Some(keys::INJECTION), "list namespaces"),
    )?;
    let mut by_name = BTreeMap::new();
    for namespace in revisioned.iter().chain(&legacy) {
        let view = NamespaceView::from(namespace);
        by_name.insert(view.name.clone(), view);
    }
    Ok(Snapshot {
        istio_namespace: ns.clone(),
        istiods: istiods.iter().map(IstiodView::from).collect(),
        webhooks: webhooks.iter().map(WebhookConfigView::from).collect(),
        services: services.iter().map(ServiceView::from).collect(),
        namespaces: by_name.into_values().collect(),
        only_namespace: kube.namespace.clone(),
    })
}

/// One line of the listing: a tag, or a revision used without a tag (or not used at all), or a
/// name that namespaces point at but that nothing installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub tag: Option<String>,
    pub revision: String,
    pub version: Option<IstioVersion>,
    /// False when no istiod and no injector of the revision exist (a dangling tag, or a label
    /// pointing nowhere).
    pub revision_installed: bool,
    /// Namespaces labelled `istio.io/rev=<tag or revision>` that really use it.
    pub namespaces: Vec<String>,
    /// Namespaces using it through `istio-injection=enabled` (only the default tag or revision).
    pub injection_label_namespaces: Vec<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub rows: Vec<Row>,
    pub warnings: Vec<String>,
}

/// Keeps only the webhooks that call a service in the Istio namespace we were pointed at (or a
/// URL), so a second control plane in another namespace does not leak into the listing.
fn belongs_to(webhook: &WebhookConfigView, istio_namespace: &str) -> bool {
    let prefix = format!("{istio_namespace}/");
    let mut injectors = webhook.injectors().peekable();
    injectors.peek().is_none()
        || injectors.any(|w| w.url.is_some() || w.service.as_deref().is_some_and(|s| s.starts_with(&prefix)))
}

pub fn decide(snapshot: &Snapshot) -> Result<Listing> {
    let webhooks: Vec<WebhookConfigView> =
        snapshot.webhooks.iter().filter(|w| belongs_to(w, &snapshot.istio_namespace)).cloned().collect();
    let mesh = Mesh::discover(&snapshot.istiods, &webhooks, &snapshot.services);
    if mesh.is_empty() {
        return Err(Error::not_found(
            format!(
                "no Istio control plane found: no istiod Deployment and no revision webhooks in namespace {}",
                snapshot.istio_namespace
            ),
            "install Istio first, or point --istio-namespace at where it is installed",
        ));
    }
    let mut listing = Listing::default();
    // Which row (keyed by the name written in labels) each namespace belongs to.
    let mut by_label: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut by_injection_label: Vec<String> = Vec::new();
    let mut namespaces: Vec<&NamespaceView> = snapshot.namespaces.iter().collect();
    namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    for ns in namespaces {
        if snapshot.only_namespace.as_ref().is_some_and(|only| only != &ns.name) {
            continue;
        }
        match namespace_injection(&ns.labels) {
            NamespaceInjection::Default { shadowed } => {
                by_injection_label.push(ns.name.clone());
                if let Some(rev) = shadowed {
                    listing.warnings.push(format!(
                        "namespace {}: istio-injection=enabled overrides istio.io/rev={rev}; its pods use the default revision",
                        ns.name
                    ));
                }
            }
            NamespaceInjection::Rev { name } => by_label.entry(name).or_default().push(ns.name.clone()),
            NamespaceInjection::Disabled { .. } | NamespaceInjection::Unlabelled => {}
        }
    }

    for tag in mesh.tags.values() {
        let revision = mesh.revisions.get(&tag.revision);
        let installed = revision.is_some_and(|r| r.installed());
        if !installed {
            listing.warnings.push(format!(
                "tag {} points at revision {}, which is not installed: pods using it cannot be injected",
                tag.name, tag.revision
            ));
        }
        let injection =
            if tag.name == keys::DEFAULT_TAG { std::mem::take(&mut by_injection_label) } else { Vec::new() };
        listing.rows.push(Row {
            tag: Some(tag.name.clone()),
            revision: tag.revision.clone(),
            version: revision.and_then(|r| r.version.clone()),
            revision_installed: installed,
            namespaces: by_label.remove(&tag.name).unwrap_or_default(),
            injection_label_namespaces: injection,
        });
    }
    for revision in mesh.installed_revisions() {
        let namespaces = by_label.remove(&revision.name).unwrap_or_default();
        let injection =
            if revision.name == keys::DEFAULT_REVISION { std::mem::take(&mut by_injection_label) } else { Vec::new() };
        let tagged = !mesh.tags_of(&revision.name).is_empty();
        if tagged && namespaces.is_empty() && injection.is_empty() {
            continue;
        }
        listing.rows.push(Row {
            tag: None,
            revision: revision.name.clone(),
            version: revision.version.clone(),
            revision_installed: true,
            namespaces,
            injection_label_namespaces: injection,
        });
    }
    // Labels naming nothing installed still deserve a line: those namespaces get no sidecars.
    if !by_injection_label.is_empty() {
        by_label.entry(keys::DEFAULT_TAG.to_string()).or_default();
    }
    for (name, namespaces) in by_label {
        let injection = if name == keys::DEFAULT_TAG { std::mem::take(&mut by_injection_label) } else { Vec::new() };
        let all: BTreeSet<&String> = namespaces.iter().chain(&injection).collect();
        listing.warnings.push(format!(
            "no tag or revision named {name} exists, yet namespaces {} point at it: new pods there get no sidecar",
            all.into_iter().cloned().collect::<Vec<_>>().join(", ")
        ));
        listing.rows.push(Row {
            tag: None,
            revision: name,
            version: None,
            revision_installed: false,
            namespaces,
            injection_label_namespaces: injection,
        });
    }
    listing.rows.sort_by(|a, b| (&a.revision, &a.tag).cmp(&(&b.revision, &b.tag)));
    Ok(listing)
}

pub fn table(rows: &[Row]) -> Table {
    let mut table = Table::new(&["TAG", "REVISION", "VERSION", "NAMESPACES"]);
    for row in rows {
        let tag = match &row.tag {
            Some(tag) => Cell::from(tag.as_str()),
            None => Cell::new("-", Tone::Dim),
        };
        let revision = if row.revision_installed {
            Cell::from(row.revision.as_str())
        } else {
            Cell::new(format!("{} (missing)", row.revision), Tone::Bad)
        };
        let version = match &row.version {
            Some(v) => Cell::from(v.to_string()),
            None => Cell::new("-", Tone::Dim),
        };
        let namespaces: Vec<String> = row
            .namespaces
            .iter()
            .cloned()
            .chain(row.injection_label_namespaces.iter().map(|ns| format!("{ns} (istio-injection)")))
            .collect();
        table.push(vec![tag, revision, version, Cell::from(namespaces.join(","))]);
    }
    table
}

pub async fn run(cluster: &Cluster, kube: &KubeArgs, renderer: Renderer) -> Result<Exit> {
    let snapshot = fetch(cluster, kube).await?;
    let listing = decide(&snapshot)?;
    for warning in &listing.warnings {
        eprintln!("kubectl-revtag: warning: {warning}");
    }
    renderer.print(&listing.rows, || table(&listing.rows))?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshkit::istio::WebhookView;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn istiod(rev: &str, version: &str) -> IstiodView {
        IstiodView {
            namespace: "istio-system".into(),
            name: format!("istiod-{rev}"),
            labels: labels(&[("app", "istiod"), ("istio.io/rev", rev)]),
            image: Some(format!("docker.io/istio/pilot:{version}")),
            replicas: 1,
            ready_replicas: 1,
        }
    }

    fn webhook(name: &str, pairs: &[(&str, &str)], service_ns: &str) -> WebhookConfigView {
        WebhookConfigView {
            name: name.into(),
            labels: labels(pairs),
            webhooks: vec![WebhookView {
                name: "rev.namespace.sidecar-injector.istio.io".into(),
                service: Some(format!("{service_ns}/istiod")),
                ..Default::default()
            }],
        }
    }

    fn ns(name: &str, pairs: &[(&str, &str)]) -> NamespaceView {
        NamespaceView { name: name.into(), labels: labels(pairs) }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            istio_namespace: "istio-system".into(),
            istiods: vec![istiod("1-30-3", "1.30.3"), istiod("1-31-1", "1.31.1")],
            webhooks: vec![
                webhook("istio-sidecar-injector-1-30-3", &[("istio.io/rev", "1-30-3")], "istio-system"),
                webhook("istio-sidecar-injector-1-31-1", &[("istio.io/rev", "1-31-1")], "istio-system"),
                webhook(
                    "istio-revision-tag-default",
                    &[("istio.io/rev", "1-30-3"), ("istio.io/tag", "default")],
                    "istio-system",
                ),
                webhook(
                    "istio-revision-tag-canary",
                    &[("istio.io/rev", "1-31-1"), ("istio.io/tag", "canary")],
                    "istio-system",
                ),
                webhook(
                    "istio-revision-tag-old",
                    &[("istio.io/rev", "1-29-0"), ("istio.io/tag", "old")],
                    "istio-system",
                ),
                webhook("istio-sidecar-injector-other", &[("istio.io/rev", "other")], "other-mesh"),
            ],
            services: vec![],
            namespaces: vec![
                ns("legacy", &[("istio-injection", "enabled")]),
                ns("both", &[("istio-injection", "enabled"), ("istio.io/rev", "1-31-1")]),
                ns("off", &[("istio-injection", "disabled"), ("istio.io/rev", "canary")]),
                ns("on-canary", &[("istio.io/rev", "canary")]),
                ns("pinned", &[("istio.io/rev", "1-31-1")]),
                ns("on-default", &[("istio.io/rev", "default")]),
                ns("lost", &[("istio.io/rev", "1-28-0")]),
            ],
            only_namespace: None,
        }
    }

    fn row(listing: &Listing, tag: Option<&str>, revision: &str) -> Row {
        listing
            .rows
            .iter()
            .find(|r| r.tag.as_deref() == tag && r.revision == revision)
            .unwrap_or_else(|| panic!("no row {tag:?} {revision}: {:#?}", listing.rows))
            .clone()
    }

    #[test]
    fn default_tag_shows_istio_injection_namespaces() {
        let listing = decide(&snapshot()).unwrap();
        let default = row(&listing, Some("default"), "1-30-3");
        assert_eq!(default.namespaces, ["on-default"]);
        assert_eq!(default.injection_label_namespaces, ["both", "legacy"]);
        assert_eq!(default.version.unwrap().to_string(), "1.30.3");
    }

    #[test]
    fn namespaces_are_counted_where_they_really_inject() {
        let listing = decide(&snapshot()).unwrap();
        assert_eq!(row(&listing, Some("canary"), "1-31-1").namespaces, ["on-canary"], "disabled namespace excluded");
        assert_eq!(row(&listing, None, "1-31-1").namespaces, ["pinned"], "revision used directly gets a row");
        assert!(
            listing
                .warnings
                .iter()
                .any(|w| w.contains("namespace both: istio-injection=enabled overrides istio.io/rev=1-31-1"))
        );
    }

    #[test]
    fn dangling_tags_and_labels_pointing_nowhere_are_marked() {
        let listing = decide(&snapshot()).unwrap();
        let old = row(&listing, Some("old"), "1-29-0");
        assert!(!old.revision_installed);
        assert_eq!(old.version, None);
        let lost = row(&listing, None, "1-28-0");
        assert!(!lost.revision_installed);
        assert_eq!(lost.namespaces, ["lost"]);
        assert!(listing.warnings.iter().any(|w| w.contains("tag old points at revision 1-29-0")));
        assert!(listing.warnings.iter().any(|w| w.contains("no tag or revision named 1-28-0")));
    }

    #[test]
    fn other_control_planes_and_unused_tagged_revisions_stay_out() {
        let listing = decide(&snapshot()).unwrap();
        assert!(listing.rows.iter().all(|r| r.revision != "other"));
        assert!(
            listing.rows.iter().all(|r| !(r.tag.is_none() && r.revision == "1-30-3")),
            "1-30-3 has a tag and no direct users"
        );
        let revisions: Vec<_> = listing.rows.iter().map(|r| (r.revision.as_str(), r.tag.as_deref())).collect();
        assert_eq!(
            revisions,
            [
                ("1-28-0", None),
                ("1-29-0", Some("old")),
                ("1-30-3", Some("default")),
                ("1-31-1", None),
                ("1-31-1", Some("canary"))
            ]
        );
    }

    #[test]
    fn namespace_flag_limits_the_namespaces_shown() {
        let mut snap = snapshot();
        snap.only_namespace = Some("legacy".into());
        let listing = decide(&snap).unwrap();
        assert_eq!(row(&listing, Some("default"), "1-30-3").injection_label_namespaces, ["legacy"]);
        assert!(row(&listing, Some("canary"), "1-31-1").namespaces.is_empty());
    }

    #[test]
    fn no_istio_is_said_plainly() {
        let err = decide(&Snapshot { istio_namespace: "istio-system".into(), ..Default::default() }).unwrap_err();
        assert_eq!(err.exit(), Exit::NotFound);
        assert!(err.to_string().starts_with("no Istio control plane found"), "{err}");
    }

    #[test]
    fn untagged_revision_without_users_still_shows() {
        let snap = Snapshot {
            istio_namespace: "istio-system".into(),
            istiods: vec![istiod("1-31-1", "1.31.1")],
            ..Default::default()
        };
        let listing = decide(&snap).unwrap();
        assert_eq!(listing.rows.len(), 1);
        assert_eq!(listing.rows[0].tag, None);
    }

    #[test]
    fn table_marks_missing_revisions_and_injection_label_users() {
        let listing = decide(&snapshot()).unwrap();
        let text = Renderer { format: meshkit::render::Format::Table, no_headers: false, color: false }
            .table_text(&table(&listing.rows));
        assert!(text.starts_with("TAG       REVISION"), "{text}");
        assert!(text.contains("1-29-0 (missing)"), "{text}");
        assert!(text.contains("on-default,both (istio-injection),legacy (istio-injection)"), "{text}");
    }
}
