//! `kubectl revtag list`: fetch → decide → render.

use std::collections::{BTreeMap, BTreeSet};

use meshkit::args::KubeArgs;
use meshkit::cli::Matches;
use meshkit::cluster::{Cluster, block_on};
use meshkit::install::Manager;
use meshkit::istio::{IstioVersion, NamespaceInjection, NamespaceView, keys, namespace_injection};
use meshkit::render::{Cell, OutputArgs, Renderer, Table, Tone};
use meshkit::{Error, Exit, Result};
use serde::Serialize;

use crate::snapshot::{Needs, Snapshot};

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
    /// Who manages the tag's objects (or the revision's, on a row without a tag).
    pub managed_by: Manager,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub rows: Vec<Row>,
    pub warnings: Vec<String>,
}

/// Decide: the rows, from the snapshot alone. `only_namespace` limits the namespaces shown (`-n`).
pub fn decide(snapshot: &Snapshot, only_namespace: Option<&str>) -> Result<Listing> {
    let mesh = snapshot.mesh();
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
        if only_namespace.is_some_and(|only| only != ns.name) {
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
            managed_by: tag.managed_by.clone(),
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
            managed_by: revision.managed_by.clone(),
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
            managed_by: Manager::None,
        });
    }
    listing.rows.sort_by(|a, b| (&a.revision, &a.tag).cmp(&(&b.revision, &b.tag)));
    Ok(listing)
}

/// A foreign manager is worth a glance: changes made here behind its back get reverted.
pub fn manager_cell(manager: &Manager) -> Cell {
    match manager {
        Manager::None => Cell::new("-", Tone::Dim),
        m if m.is_foreign() => Cell::new(m.to_string(), Tone::Warn),
        m => Cell::from(m.to_string()),
    }
}

pub fn table(rows: &[Row]) -> Table {
    let mut table = Table::new(&["TAG", "REVISION", "VERSION", "MANAGED-BY", "NAMESPACES"]);
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
        table.push(vec![tag, revision, version, manager_cell(&row.managed_by), Cell::from(namespaces.join(","))]);
    }
    table
}

/// `list` takes no arguments; `-n` narrows the namespaces shown.
pub fn run(kube: &KubeArgs, output: OutputArgs, m: &Matches) -> Result<Exit> {
    m.at_most(0, "no arguments")?;
    block_on(async {
        let cluster = Cluster::connect(kube).await?;
        let snapshot = Snapshot::fetch(&cluster, Needs::default()).await?;
        let listing = decide(&snapshot, kube.namespace.as_deref())?;
        crate::common::warn(&listing.warnings);
        Renderer::new(output).print(&listing.rows, || table(&listing.rows))?;
        Ok(Exit::Ok)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::testing::{istiod, mwc, ns, two_revisions};

    fn snapshot() -> Snapshot {
        let mut snapshot = two_revisions();
        snapshot.mutating.extend([
            mwc("istio-revision-tag-canary", "1-31-1", Some("canary"), "istio-system"),
            mwc("istio-revision-tag-old", "1-29-0", Some("old"), "istio-system"),
            mwc("istio-sidecar-injector-other", "other", None, "other-mesh"),
        ]);
        snapshot.namespaces = vec![
            ns("legacy", &[("istio-injection", "enabled")]),
            ns("both", &[("istio-injection", "enabled"), ("istio.io/rev", "1-31-1")]),
            ns("off", &[("istio-injection", "disabled"), ("istio.io/rev", "canary")]),
            ns("on-canary", &[("istio.io/rev", "canary")]),
            ns("pinned", &[("istio.io/rev", "1-31-1")]),
            ns("on-default", &[("istio.io/rev", "default")]),
            ns("lost", &[("istio.io/rev", "1-28-0")]),
        ];
        snapshot
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
        let listing = decide(&snapshot(), None).unwrap();
        let default = row(&listing, Some("default"), "1-30-3");
        assert_eq!(default.namespaces, ["on-default"]);
        assert_eq!(default.injection_label_namespaces, ["both", "legacy"]);
        assert_eq!(default.version.unwrap().to_string(), "1.30.3");
    }

    #[test]
    fn namespaces_are_counted_where_they_really_inject() {
        let listing = decide(&snapshot(), None).unwrap();
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
        let listing = decide(&snapshot(), None).unwrap();
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
        let listing = decide(&snapshot(), None).unwrap();
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
        let listing = decide(&snapshot(), Some("legacy")).unwrap();
        assert_eq!(row(&listing, Some("default"), "1-30-3").injection_label_namespaces, ["legacy"]);
        assert!(row(&listing, Some("canary"), "1-31-1").namespaces.is_empty());
    }

    #[test]
    fn no_istio_is_said_plainly() {
        let err = decide(&Snapshot { istio_namespace: "istio-system".into(), ..Default::default() }, None).unwrap_err();
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
        let listing = decide(&snap, None).unwrap();
        assert_eq!(listing.rows.len(), 1);
        assert_eq!(listing.rows[0].tag, None);
    }

    #[test]
    fn table_marks_missing_revisions_and_injection_label_users() {
        let listing = decide(&snapshot(), None).unwrap();
        let text = Renderer { format: meshkit::render::Format::Table, no_headers: false, color: false }
            .table_text(&table(&listing.rows));
        assert!(text.starts_with("TAG       REVISION"), "{text}");
        assert!(text.contains("1-29-0 (missing)"), "{text}");
        assert!(text.contains("on-default,both (istio-injection),legacy (istio-injection)"), "{text}");
    }
}
