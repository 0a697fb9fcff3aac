//! `diff`: the live cluster against an archive, object by object, with unified YAML diffs. Exit
//! codes follow `kubectl diff`: 0 no differences, 1 differences, above 1 an error.
//!
//! The live side is read exactly as `create` reads it (same sources, same stripping), keeping only
//! a fingerprint per object; the archive is streamed. Only changed objects are fetched in full.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use meshkit::archive::{Entry, Manifest, ObjectKey, fingerprint, strip};
use meshkit::args::KubeArgs;
use meshkit::cluster::Cluster;
use meshkit::render::{Renderer, Tone, paint};
use meshkit::{Error, Exit, Result};
use serde::Serialize;
use serde_json::Value;
use similar::TextDiff;

use crate::sources;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// In the cluster, not in the archive.
    Added,
    /// In the archive, no longer in the cluster.
    Removed,
    /// In both, different.
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    pub change: Change,
    pub object: String,
    /// Unified diff from the archive (`---`) to the cluster (`+++`), for changed objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// Pairs archived and live fingerprints by object.
pub fn classify(
    archived: &BTreeMap<ObjectKey, String>,
    live: &BTreeMap<ObjectKey, String>,
) -> Vec<(ObjectKey, Change)> {
    let mut out = Vec::new();
    for (key, archived_print) in archived {
        match live.get(key) {
            None => out.push((key.clone(), Change::Removed)),
            Some(live_print) if live_print != archived_print => out.push((key.clone(), Change::Changed)),
            Some(_) => {}
        }
    }
    out.extend(live.keys().filter(|k| !archived.contains_key(*k)).map(|k| (k.clone(), Change::Added)));
    out.sort();
    out
}

/// A unified diff between two YAML texts, labelled the way `diff -u` labels files.
pub fn unified(object: &str, archived: &str, live: &str) -> String {
    TextDiff::from_lines(archived, live)
        .unified_diff()
        .context_radius(3)
        .header(&format!("archive/{object}"), &format!("live/{object}"))
        .to_string()
}

/// kubectl diff's codes: 1 means differences only, so an error that exits 1 elsewhere (a failed
/// request) is reported here and exits 3.
pub async fn run(kube: &KubeArgs, file: &Path, renderer: &Renderer) -> Result<Exit> {
    match compare(kube, file, renderer).await {
        Err(err) if err.exit() == Exit::Failed => {
            meshkit::error::report(&format!("kubectl-{}", crate::spec::SPEC.plugin), &err);
            Ok(Exit::Unreachable)
        }
        other => other,
    }
}

async fn compare(kube: &KubeArgs, file: &Path, renderer: &Renderer) -> Result<Exit> {
    let manifest = meshkit::archive::verify_file(file)?;
    let mut archived = BTreeMap::new();
    let mut reader = meshkit::archive::open(file)?;
    for item in reader.objects(&manifest, |_| true)? {
        let (entry, object) = item?;
        archived.insert(entry.key(), fingerprint(&object));
    }
    let kube = KubeArgs { istio_namespace: Some(manifest.header.istio_namespace.clone()), ..kube.clone() };
    let cluster = Cluster::connect(&kube).await?;
    let live = live_fingerprints(&cluster, &manifest).await?;
    let changes = classify(&archived, &live);
    let differences = describe(&cluster, file, &manifest, &changes).await?;
    let counts = |change| differences.iter().filter(|d| d.change == change).count();
    crate::spec::SPEC.note(format_args!(
        "{} changed, {} added, {} removed since the backup ({} objects compared)",
        counts(Change::Changed),
        counts(Change::Added),
        counts(Change::Removed),
        archived.len().max(live.len())
    ));
    renderer.print_human(&differences, |color| human(&differences, color))?;
    Ok(if differences.is_empty() { Exit::Ok } else { Exit::Failed })
}

/// The live objects, stripped and fingerprinted; the archive's namespaces are looked at even when
/// nothing else would select them, so that a namespace that lost its labels shows as changed.
async fn live_fingerprints(cluster: &Cluster, manifest: &Manifest) -> Result<BTreeMap<ObjectKey, String>> {
    let custom = sources::discover(cluster).await?;
    let plan = sources::plan(&manifest.header.istio_namespace, custom, manifest.header.includes_secrets);
    let archived_namespaces: BTreeSet<String> = manifest
        .objects
        .iter()
        .filter(|e| e.kind == "Namespace" && e.group().is_empty())
        .map(|e| e.name.clone())
        .collect();
    let mut live = BTreeMap::new();
    sources::collect(
        cluster,
        &plan,
        &archived_namespaces,
        |_, object| {
            live.insert(ObjectKey::of(&object), fingerprint(&object));
            Ok(())
        },
        |_, _| {},
    )
    .await?;
    Ok(live)
}

/// Diff texts for the changed objects: the archived YAML against the live object read at the
/// archived version.
async fn describe(
    cluster: &Cluster,
    file: &Path,
    manifest: &Manifest,
    changes: &[(ObjectKey, Change)],
) -> Result<Vec<Difference>> {
    let changed: HashSet<&ObjectKey> = changes.iter().filter(|(_, c)| *c == Change::Changed).map(|(k, _)| k).collect();
    let mut diffs: BTreeMap<ObjectKey, String> = BTreeMap::new();
    let mut reader = meshkit::archive::open(file)?;
    for item in reader.objects(manifest, |e| changed.contains(&e.key()))? {
        let (entry, archived) = item?;
        let live = get_live(cluster, entry).await?;
        let text = unified(&entry.key().to_string(), &to_yaml(&archived)?, &to_yaml(&live.unwrap_or(Value::Null))?);
        diffs.insert(entry.key(), text);
    }
    Ok(changes
        .iter()
        .map(|(key, change)| Difference { change: *change, object: key.to_string(), diff: diffs.remove(key) })
        .collect())
}

async fn get_live(cluster: &Cluster, entry: &Entry) -> Result<Option<Value>> {
    let gvk = GroupVersionKind::gvk(entry.group(), entry.version(), &entry.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &entry.resource);
    let api: Api<DynamicObject> = match &entry.namespace {
        Some(ns) => Api::namespaced_with(cluster.client(), ns, &resource),
        None => Api::all_with(cluster.client(), &resource),
    };
    let what = format!("get {}", entry.key());
    let Some(object) = cluster.call(&what, api.get_opt(&entry.name)).await? else { return Ok(None) };
    let mut value = serde_json::to_value(&object).map_err(|e| Error::Output(e.into()))?;
    if entry.kind == "Namespace" && entry.group().is_empty() {
        let labels = object.metadata.labels.clone().unwrap_or_default().into_iter().collect();
        return Ok(Some(sources::namespace_record(&entry.name, &labels)));
    }
    strip(&mut value);
    Ok(Some(value))
}

fn to_yaml(value: &Value) -> Result<String> {
    if value.is_null() {
        return Ok(String::new());
    }
    serde_saphyr::to_string(value).map_err(|e| Error::Output(std::io::Error::other(e)))
}

fn human(differences: &[Difference], color: bool) -> String {
    let mut text = String::new();
    for difference in differences {
        let (word, tone) = match difference.change {
            Change::Added => ("added", Tone::Good),
            Change::Removed => ("removed", Tone::Bad),
            Change::Changed => ("changed", Tone::Warn),
        };
        let _ = writeln!(text, "{} {}", paint(word, tone, color), difference.object);
        if let Some(diff) = &difference.diff {
            for line in diff.lines() {
                let tone = match line.chars().next() {
                    Some('+') if !line.starts_with("+++") => Tone::Good,
                    Some('-') if !line.starts_with("---") => Tone::Bad,
                    _ => Tone::Plain,
                };
                let _ = writeln!(text, "{}", paint(line, tone, color));
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &str, name: &str) -> ObjectKey {
        ObjectKey {
            group: "networking.istio.io".into(),
            kind: kind.into(),
            namespace: "shop".into(),
            name: name.into(),
        }
    }

    #[test]
    fn objects_are_added_removed_changed_or_equal() {
        let archived: BTreeMap<ObjectKey, String> = [
            (key("VirtualService", "same"), "1"),
            (key("VirtualService", "edited"), "2"),
            (key("Gateway", "gone"), "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        let live: BTreeMap<ObjectKey, String> = [
            (key("VirtualService", "same"), "1"),
            (key("VirtualService", "edited"), "9"),
            (key("Sidecar", "new"), "4"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        let changes: Vec<(String, Change)> =
            classify(&archived, &live).into_iter().map(|(k, c)| (k.to_string(), c)).collect();
        assert_eq!(
            changes,
            [
                ("gateway.networking.istio.io/shop/gone".to_string(), Change::Removed),
                ("sidecar.networking.istio.io/shop/new".to_string(), Change::Added),
                ("virtualservice.networking.istio.io/shop/edited".to_string(), Change::Changed),
            ]
        );
        assert!(classify(&archived, &archived).is_empty());
    }

    #[test]
    fn diffs_are_unified_from_archive_to_live() {
        let text = unified("x", "spec:\n  hosts:\n  - a\n", "spec:\n  hosts:\n  - b\n");
        assert_eq!(text, "--- archive/x\n+++ live/x\n@@ -1,3 +1,3 @@\n spec:\n   hosts:\n-  - a\n+  - b\n");
        let human = human(
            &[
                Difference { change: Change::Changed, object: "x".into(), diff: Some(text) },
                Difference { change: Change::Removed, object: "y".into(), diff: None },
            ],
            false,
        );
        assert!(human.starts_with("changed x\n--- archive/x\n") && human.ends_with("removed y\n"), "{human}");
    }
}
