//! `restore`: verify the whole archive, then server-side apply its objects phase by phase
//! ([`crate::order`]) under the field manager `kubectl-meshbackup`, and report each object.
//!
//! Apply is an upsert, so a rerun after an interruption converges: what was applied comes back
//! unchanged, the rest is created or updated. Whether an object was created, updated or left
//! unchanged is read from one list per kind before the phase (fingerprints of the stripped live
//! objects) against the stripped answer to the apply.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use meshkit::archive::{Entry, Manifest, ObjectKey, fingerprint, strip};
use meshkit::args::KubeArgs;
use meshkit::cli::DryRun;
use meshkit::cluster::Cluster;
use meshkit::render::{Cell, Renderer, Table, Tone};
use meshkit::{Error, Exit, Result};
use serde::Serialize;

use crate::order::{self, Batch, Phase, Selection};

pub const FIELD_MANAGER: &str = "kubectl-meshbackup";
/// How long a restored CRD may take to be Established before the restore stops.
const CRD_TIMEOUT: Duration = Duration::from_secs(120);
/// Applies sent together within a phase.
const IN_FLIGHT: usize = 8;

pub struct Options {
    pub only: Vec<String>,
    /// Client: show the plan, send nothing; server: the apiserver checks every object.
    pub dry_run: meshkit::cli::DryRun,
    pub force_conflicts: bool,
    pub yes: bool,
}

impl Options {
    pub fn from_matches(m: &meshkit::cli::Matches) -> Result<Options> {
        Ok(Options {
            only: m.values("only").to_vec(),
            dry_run: m.dry_run()?,
            force_conflicts: m.has("force-conflicts"),
            yes: m.has("yes"),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Client dry run: what would be applied.
    WouldApply,
    Created,
    Updated,
    Unchanged,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub phase: Phase,
    pub object: String,
    pub result: Outcome,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conflict: bool,
}

/// The outcome of one apply, from the fingerprint before (if the object existed) and after.
pub fn outcome(before: Option<&String>, after: &str) -> Outcome {
    match before {
        None => Outcome::Created,
        Some(before) if before == after => Outcome::Unchanged,
        Some(_) => Outcome::Updated,
    }
}

pub async fn run(kube: &KubeArgs, file: &Path, options: Options, renderer: &Renderer) -> Result<Exit> {
    // Everything is verified before the cluster is even contacted.
    let manifest = meshkit::archive::verify_file(file)?;
    let selection =
        Selection { kinds: order::parse_only(&options.only, &manifest)?, namespace: kube.namespace.clone() };
    let batches = order::plan(&manifest, &selection);
    let total: usize = batches.iter().map(|b| b.entries.len()).sum();
    if total == 0 {
        return Err(Error::not_found(
            format!("nothing to restore: no object in {} matches the selection", file.display()),
            "check -n and --only; `kubectl meshbackup inspect FILE` lists what the archive holds",
        ));
    }
    if options.dry_run == DryRun::Client {
        let rows: Vec<Row> = batches
            .iter()
            .flat_map(|b| {
                b.entries.iter().map(|i| Row {
                    phase: b.phase,
                    object: manifest.objects[*i].key().to_string(),
                    result: Outcome::WouldApply,
                    message: String::new(),
                    conflict: false,
                })
            })
            .collect();
        crate::spec::SPEC
            .note(format_args!("(dry run) {total} object(s) would be applied, in this order; nothing was sent"));
        renderer.print(&rows, || table(&rows))?;
        return Ok(Exit::Ok);
    }
    let server = options.dry_run == DryRun::Server;
    let cluster = Cluster::connect(kube).await?;
    if !server {
        let question = format!("Restore {total} object(s) from {} into {}?", file.display(), cluster.target);
        if meshkit::confirm::confirm(&question, options.yes)? == meshkit::confirm::Answer::No {
            return Err(Error::NotConfirmed { what: format!("restore {total} object(s)"), hint: String::new() });
        }
    }
    let mut rows = Vec::with_capacity(total);
    let apply_all = async {
        for batch in &batches {
            let what = if server { "checking (server dry run)" } else { "applying" };
            crate::spec::SPEC.note(format_args!("{what} {} {}", batch.entries.len(), batch.phase.describe()));
            let applied = apply_batch(&cluster, file, &manifest, batch, &options, &mut rows).await?;
            if batch.phase == Phase::Crds && !server {
                wait_established(&cluster, &applied).await?;
            }
        }
        Ok(())
    };
    meshkit::kube::lock::guarded(&cluster, options.dry_run, apply_all).await?;
    let count = |o| rows.iter().filter(|r| r.result == o).count();
    let failed = count(Outcome::Failed);
    crate::spec::SPEC.note(format_args!(
        "{}{} created, {} updated, {} unchanged, {failed} failed",
        options.dry_run.prefix(),
        count(Outcome::Created),
        count(Outcome::Updated),
        count(Outcome::Unchanged),
    ));
    renderer.print(&rows, || table(&rows))?;
    if failed == 0 {
        return Ok(Exit::Ok);
    }
    crate::spec::SPEC.note(format_args!("error: {failed} of {total} object(s) were not restored"));
    if rows.iter().any(|r| r.conflict) {
        crate::spec::SPEC.note(format_args!(
            "hint: objects changed since the backup conflict with their new owners; \
             rerun with --force-conflicts to take the archived values over"
        ));
    } else {
        crate::spec::SPEC.note(format_args!("hint: fix the cause shown per object and rerun; the restore converges"));
    }
    Ok(Exit::Failed)
}

fn api_of(cluster: &Cluster, entry: &Entry) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(entry.group(), entry.version(), &entry.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &entry.resource);
    match &entry.namespace {
        Some(ns) => Api::namespaced_with(cluster.client(), ns, &resource),
        None => Api::all_with(cluster.client(), &resource),
    }
}

/// Applies one phase; returns the names of the objects applied without failure.
async fn apply_batch(
    cluster: &Cluster,
    file: &Path,
    manifest: &Manifest,
    batch: &Batch,
    options: &Options,
    rows: &mut Vec<Row>,
) -> Result<Vec<String>> {
    let before = live_fingerprints(cluster, manifest, batch).await?;
    let mut params = PatchParams::apply(FIELD_MANAGER);
    if options.force_conflicts {
        params = params.force();
    }
    if options.dry_run == DryRun::Server {
        params = params.dry_run();
    }
    let wanted: HashSet<&str> = batch.entries.iter().map(|i| manifest.objects[*i].path.as_str()).collect();
    let mut applied = Vec::new();
    let mut reader = meshkit::archive::open(file)?;
    let objects = reader.objects(manifest, |e| wanted.contains(e.path.as_str()))?;
    // Objects of one phase do not depend on each other: several applies are in flight at once,
    // reported in archive order.
    let mut answers = stream::iter(objects)
        .map(|item| async {
            let (entry, object) = item?;
            let what = format!("apply {}", entry.key());
            let answer =
                cluster.call(&what, api_of(cluster, entry).patch(&entry.name, &params, &Patch::Apply(&object))).await;
            Ok::<_, Error>((entry, answer))
        })
        .buffered(IN_FLIGHT);
    while let Some(next) = answers.next().await {
        let (entry, answer) = next?;
        let key = entry.key();
        let row = |result, message: String, conflict| Row {
            phase: batch.phase,
            object: key.to_string(),
            result,
            message,
            conflict,
        };
        match answer {
            Ok(answer) => {
                let mut after = serde_json::to_value(&answer).map_err(|e| Error::Output(e.into()))?;
                strip(&mut after);
                rows.push(row(outcome(before.get(&key), &fingerprint(&after)), String::new(), false));
                applied.push(entry.name.clone());
            }
            // Without the cluster nothing else can succeed: stop, and let a rerun finish. Without
            // the permission, stop at the first refusal, naming it, rather than once per object.
            Err(
                err @ (Error::Unreachable { .. }
                | Error::Timeout { .. }
                | Error::Unauthorized { .. }
                | Error::Forbidden { .. }
                | Error::Kubeconfig { .. }),
            ) => return Err(err),
            Err(Error::Api { code: 409, message, .. }) => rows.push(row(Outcome::Failed, message, true)),
            Err(Error::Api { code: 404, message, .. }) if batch.phase == Phase::CustomResources => {
                rows.push(row(Outcome::Failed, format!("{message} (is its CRD in the cluster?)"), false))
            }
            Err(err) => rows.push(row(Outcome::Failed, err.to_string(), false)),
        }
    }
    Ok(applied)
}

/// Fingerprints of the live objects of the batch's kinds: one paginated list per kind and
/// namespace (or cluster-wide), whatever the number of objects. A kind the server does not serve
/// yet has no live objects.
async fn live_fingerprints(
    cluster: &Cluster,
    manifest: &Manifest,
    batch: &Batch,
) -> Result<BTreeMap<ObjectKey, String>> {
    let mut scopes: BTreeMap<(&str, &str, &str, &str), HashSet<Option<&str>>> = BTreeMap::new();
    for entry in batch.entries.iter().map(|i| &manifest.objects[*i]) {
        let kind = (entry.group(), entry.version(), entry.kind.as_str(), entry.resource.as_str());
        scopes.entry(kind).or_default().insert(entry.namespace.as_deref());
    }
    let mut live = BTreeMap::new();
    for ((group, version, kind, plural), namespaces) in scopes {
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let apis: Vec<Api<DynamicObject>> = if namespaces.len() == 1 && !namespaces.contains(&None) {
            namespaces.iter().flatten().map(|ns| Api::namespaced_with(cluster.client(), ns, &resource)).collect()
        } else {
            vec![Api::all_with(cluster.client(), &resource)]
        };
        for api in apis {
            let listed = cluster
                .list_each(&api, None, &format!("list {plural}.{group}"), |object: DynamicObject| {
                    let mut value = serde_json::to_value(&object).map_err(|e| Error::Output(e.into()))?;
                    value["apiVersion"] = serde_json::json!(resource.api_version);
                    value["kind"] = serde_json::json!(kind);
                    strip(&mut value);
                    live.insert(ObjectKey::of(&value), fingerprint(&value));
                    Ok(())
                })
                .await;
            match listed {
                Err(Error::Api { code: 404, .. }) => {}
                other => other?,
            }
        }
    }
    Ok(live)
}

/// Waits until every restored CRD is Established and its names accepted, so that the custom
/// resources after it can be applied.
async fn wait_established(cluster: &Cluster, names: &[String]) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(cluster.client());
    let started = Instant::now();
    for name in names {
        loop {
            let crd = cluster.call(&format!("get customresourcedefinition {name}"), api.get(name)).await?;
            let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
            let is_true = |kind: &str| conditions.iter().any(|c| c.type_ == kind && c.status == "True");
            if is_true("Established") && is_true("NamesAccepted") {
                break;
            }
            if started.elapsed() > CRD_TIMEOUT {
                return Err(Error::refused(
                    format!(
                        "CRD {name} is not Established after {}s; its custom resources were not restored",
                        CRD_TIMEOUT.as_secs()
                    ),
                    "check `kubectl get crd NAME -o yaml` (status.conditions), then rerun the restore",
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

pub fn table(rows: &[Row]) -> Table {
    let mut table = Table::new(&["RESULT", "OBJECT", "MESSAGE"]);
    for row in rows {
        let (word, tone) = match row.result {
            Outcome::WouldApply => ("would apply", Tone::Dim),
            Outcome::Created => ("created", Tone::Good),
            Outcome::Updated => ("updated", Tone::Warn),
            Outcome::Unchanged => ("unchanged", Tone::Dim),
            Outcome::Failed if row.conflict => ("conflict", Tone::Bad),
            Outcome::Failed => ("failed", Tone::Bad),
        };
        table.push(vec![Cell::new(word, tone), row.object.as_str().into(), row.message.as_str().into()]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_compares_fingerprints_before_and_after() {
        assert_eq!(outcome(None, "a"), Outcome::Created);
        assert_eq!(outcome(Some(&"a".to_string()), "a"), Outcome::Unchanged);
        assert_eq!(outcome(Some(&"a".to_string()), "b"), Outcome::Updated);
    }

    #[test]
    fn conflicts_are_named_as_such() {
        let row = |result, conflict| Row {
            phase: Phase::CustomResources,
            object: "x".into(),
            result,
            message: String::new(),
            conflict,
        };
        let table = table(&[row(Outcome::Failed, true), row(Outcome::Failed, false), row(Outcome::Unchanged, false)]);
        let words: Vec<&str> = table.rows.iter().map(|r| r[0].text.as_str()).collect();
        assert_eq!(words, ["conflict", "failed", "unchanged"]);
    }
}
