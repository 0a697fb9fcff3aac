//! `set`, `generate` and `remove`: plan (pure, from a snapshot) → apply → report.

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use meshkit::cluster::Cluster;
use meshkit::install::handover::{self, Handover};
use meshkit::istio::tag_objects::{self, CanonicalInjectorError, DEFAULT_VALIDATOR, MANAGER, TagObjects, TagSpec};
use meshkit::istio::{NamespaceInjection, WebhookConfigView, injection_overlaps, keys, namespace_injection};
use meshkit::{Error, Result};
use serde::Serialize;

use crate::ownership;
use crate::snapshot::Snapshot;

pub use crate::legacy_injector::DEACTIVATED_ANNOTATION;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetRequest {
    pub tag: String,
    pub revision: String,
    pub overwrite: bool,
    pub auto_inject: bool,
    /// Change objects another manager owns, handing Helm's over (see [`crate::ownership`]).
    pub take_ownership: bool,
}

#[derive(Debug, Clone)]
pub struct SetPlan {
    pub objects: TagObjects,
    /// The revision the tag pointed at before, if it existed.
    pub previous: Option<String>,
    /// A legacy (unrevisioned) injector that would inject alongside the new default: switched off
    /// after the new objects are in place.
    pub deactivate: Option<String>,
    /// Why the change needs a yes, if it does.
    pub question: Option<String>,
    pub warnings: Vec<String>,
    /// Objects to take from their manager before the change (`--take-ownership`).
    pub handovers: Vec<Handover>,
}

/// DNS-1123 label: what Istio accepts as a tag and Kubernetes as part of object names.
pub fn validate_tag(tag: &str) -> Result<()> {
    meshkit::istio::names::validate("tag", tag)
}

/// Decide what `set` (or `generate`, with `for_generate`) does; refuses anything unsafe.
pub fn plan_set(snapshot: &Snapshot, request: &SetRequest, for_generate: bool) -> Result<SetPlan> {
    let mesh = snapshot.mesh();
    let (tag, revision) = (request.tag.as_str(), request.revision.as_str());
    let installed: Vec<&str> = mesh.installed_revisions().map(|r| r.name.as_str()).collect();
    // `default` may share its name with a legacy unrevisioned install: replacing it is what
    // `set default` is for.
    if installed.contains(&tag) && tag != keys::DEFAULT_TAG {
        return Err(Error::refused(
            format!("cannot use {tag:?} as a tag: a revision of that name is installed"),
            "a tag named like a revision makes two control planes claim the same objects (istio/istio#56128); pick another name",
        ));
    }
    if !installed.contains(&revision) {
        let hint = match mesh.tags.get(revision) {
            Some(t) => format!("{revision} is a tag (pointing at {}); --revision takes a revision", t.revision),
            None if installed.is_empty() => "no revision is installed".to_string(),
            None => format!("installed revisions: {}", installed.join(", ")),
        };
        return Err(Error::not_found(format!("revision {revision:?} is not installed"), hint));
    }
    let webhooks = snapshot.webhooks();
    let canonical = tag_objects::canonical_injector(&snapshot.mutating, revision, &snapshot.istio_namespace).map_err(
        |e| match e {
            CanonicalInjectorError::Missing { .. } => Error::not_found(
                e.to_string(),
                "its istiod install looks incomplete; reinstall the revision before tagging it",
            ),
            CanonicalInjectorError::Several { .. } => Error::refused(e.to_string(), "delete the stray one, then retry"),
        },
    )?;
    let previous = mesh.tags.get(tag).map(|t| t.revision.clone());
    let mut warnings = Vec::new();
    if let Some(previous) = previous.as_deref().filter(|p| *p != revision) {
        if !request.overwrite {
            return Err(Error::refused(
                format!("tag {tag} already points at revision {previous}"),
                format!("pass --overwrite to point it at {revision}"),
            ));
        }
        if for_generate {
            warnings.push(format!("tag {tag} currently points at revision {previous}"));
        }
    }
    let live_validator = snapshot.validating.iter().find(|v| v.metadata.name.as_deref() == Some(DEFAULT_VALIDATOR));
    let spec = TagSpec { tag, revision, istio_namespace: &snapshot.istio_namespace, auto_inject: request.auto_inject };
    let mut objects =
        tag_objects::build(spec, canonical, live_validator).map_err(|e| Error::refused(e.to_string(), ""))?;
    let mut handovers = Vec::new();
    if !for_generate {
        let change = if previous.is_some() { "move it" } else { "write it" };
        let (taken, caveats) =
            ownership::check(ownership::tag_objects(snapshot, tag), tag, change, request.take_ownership)?;
        handovers = taken;
        warnings.extend(caveats);
        if objects.validator.is_some()
            && let Some(left) = ownership::default_validator(snapshot)
                .and_then(|(manager, _)| ownership::validator_left_to_owner(&manager, revision))
        {
            objects.validator = None;
            warnings.push(left);
        }
    }

    let new_name = objects.webhook.metadata.name.clone().unwrap_or_default();
    let deactivate = (tag == keys::DEFAULT_TAG && !for_generate)
        .then(|| {
            webhooks
                .iter()
                .find(|w| {
                    w.label(keys::TAG).is_none()
                        && w.label(keys::REV).unwrap_or(keys::DEFAULT_REVISION) == keys::DEFAULT_REVISION
                        && revision != keys::DEFAULT_REVISION
                        && !w.is_deactivated()
                })
                .map(|w| w.name.clone())
        })
        .flatten();
    let mut after: Vec<WebhookConfigView> =
        webhooks.into_iter().filter(|w| w.name != new_name && Some(&w.name) != deactivate.as_ref()).collect();
    after.push(WebhookConfigView::from(&objects.webhook));
    let names: BTreeSet<String> =
        mesh.revisions.keys().chain(mesh.tags.keys()).cloned().chain([tag.to_string()]).collect();
    let prefix = format!("{new_name}/");
    if let Some(overlap) = injection_overlaps(&after, &names)
        .into_iter()
        .find(|o| o.first.starts_with(&prefix) || o.second.starts_with(&prefix))
    {
        let message = format!("setting tag {tag} would inject some pods twice: {}", overlap.describe());
        if for_generate {
            warnings.push(message);
        } else {
            return Err(Error::refused(message, "remove or retarget the other webhook first (Istio's IST0139)"));
        }
    }
    for ns in &snapshot.namespaces {
        if let NamespaceInjection::Default { shadowed: Some(rev) } = namespace_injection(&ns.labels)
            && rev == tag
        {
            warnings.push(format!(
                "namespace {} is labelled istio.io/rev={tag} but istio-injection=enabled wins: it keeps the default revision",
                ns.name
            ));
        }
    }
    let mut reasons = Vec::new();
    if tag == keys::DEFAULT_TAG
        && let Some(previous) = previous.as_deref().filter(|p| *p != revision)
    {
        let users: Vec<&str> = snapshot
            .namespaces
            .iter()
            .filter(|ns| namespace_injection(&ns.labels).requested() == Some(keys::DEFAULT_TAG))
            .map(|ns| ns.name.as_str())
            .collect();
        reasons.push(format!(
            "move the default revision from {previous} to {revision} (namespaces using it: {})",
            if users.is_empty() { "none".to_string() } else { users.join(", ") }
        ));
    }
    if let Some(legacy) = &deactivate {
        reasons.push(format!(
            "switch off the legacy injector {legacy}, which would otherwise inject alongside the new default"
        ));
    }
    let question = (!reasons.is_empty() && !for_generate).then(|| format!("{}?", capitalise(&reasons.join(" and "))));
    Ok(SetPlan { objects, previous, deactivate, question, warnings, handovers })
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

/// Objects and users of a tag that `remove` deletes or warns about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemovePlan {
    pub webhooks: Vec<String>,
    pub validators: Vec<String>,
    pub services: Vec<String>,
    /// Namespaces and pods that still select the tag.
    pub users: Vec<String>,
    /// A legacy injector `set default` switched off, to switch back on.
    pub reactivate: Option<String>,
    /// Objects to take from their manager before deleting them (`--take-ownership`).
    pub handovers: Vec<Handover>,
    pub warnings: Vec<String>,
}

pub fn plan_remove(snapshot: &Snapshot, tag: &str, take_ownership: bool) -> Result<RemovePlan> {
    let mesh = snapshot.mesh();
    let has_tag = |labels: Option<&std::collections::BTreeMap<String, String>>| {
        labels.and_then(|l| l.get(keys::TAG)).map(String::as_str) == Some(tag)
    };
    let mut plan = RemovePlan {
        webhooks: snapshot
            .mutating
            .iter()
            .filter(|m| has_tag(m.metadata.labels.as_ref()))
            .filter_map(|m| m.metadata.name.clone())
            .collect(),
        validators: snapshot
            .validating
            .iter()
            .filter(|v| {
                has_tag(v.metadata.labels.as_ref())
                    || (tag == keys::DEFAULT_TAG && v.metadata.name.as_deref() == Some(DEFAULT_VALIDATOR))
            })
            .filter_map(|v| v.metadata.name.clone())
            .collect(),
        services: snapshot
            .services
            .iter()
            .filter(|s| s.labels.get(keys::TAG).map(String::as_str) == Some(tag))
            .map(|s| s.name.clone())
            .collect(),
        ..Default::default()
    };
    if plan.webhooks.is_empty() && plan.validators.is_empty() && plan.services.is_empty() {
        let known: Vec<&str> = mesh.tags.keys().map(String::as_str).collect();
        return Err(Error::not_found(
            format!("no revision tag named {tag:?}"),
            if known.is_empty() {
                "there are no tags".to_string()
            } else {
                format!("existing tags: {}", known.join(", "))
            },
        ));
    }
    for ns in &snapshot.namespaces {
        match namespace_injection(&ns.labels) {
            NamespaceInjection::Rev { name } if name == tag => plan.users.push(format!("namespace {}", ns.name)),
            NamespaceInjection::Default { .. } if tag == keys::DEFAULT_TAG => {
                plan.users.push(format!("namespace {} (istio-injection=enabled)", ns.name))
            }
            _ => {}
        }
    }
    // A pod's own labels only count in a namespace without injection labels.
    let labelled: BTreeSet<&str> = snapshot
        .namespaces
        .iter()
        .filter(|ns| namespace_injection(&ns.labels) != NamespaceInjection::Unlabelled)
        .map(|ns| ns.name.as_str())
        .collect();
    for pod in snapshot.pods.iter().filter(|p| !labelled.contains(p.namespace.as_str())) {
        let inject = pod.labels.get(keys::SIDECAR_INJECT).map(String::as_str);
        let by_label = pod.labels.get(keys::REV).map(String::as_str) == Some(tag) && inject != Some("false");
        let by_opt_in = tag == keys::DEFAULT_TAG && !pod.labels.contains_key(keys::REV) && inject == Some("true");
        if by_label || by_opt_in {
            plan.users.push(format!("pod {}/{}", pod.namespace, pod.name));
        }
    }
    let (handovers, caveats) =
        ownership::check(ownership::tag_objects(snapshot, tag), tag, "remove it", take_ownership)?;
    plan.handovers = handovers;
    plan.warnings = caveats;
    if let Some((manager, _)) = ownership::default_validator(snapshot).filter(|_| tag == keys::DEFAULT_TAG)
        && manager.is_foreign()
    {
        plan.validators.retain(|v| v != DEFAULT_VALIDATOR);
        plan.warnings.push(format!("{DEFAULT_VALIDATOR} is managed by {manager}, so it was left alone"));
    }
    if tag == keys::DEFAULT_TAG {
        plan.reactivate = snapshot
            .mutating
            .iter()
            .find(|m| m.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(DEACTIVATED_ANNOTATION)))
            .and_then(|m| m.metadata.name.clone());
    }
    Ok(plan)
}

/// How to send changes: for real, shown only (client), or validated by the server without
/// persisting — kubectl's meaning, shared by every plugin.
pub use meshkit::cli::DryRun;

/// Applies the tag's objects with server-side apply under our field manager, then switches off a
/// legacy injector if the plan says so: never before the new objects are in place.
pub async fn apply_set(cluster: &Cluster, plan: &SetPlan, dry_run: DryRun) -> Result<()> {
    if dry_run == DryRun::Client {
        return Ok(());
    }
    let mut params = PatchParams::apply(MANAGER).force();
    if dry_run == DryRun::Server {
        params = params.dry_run();
    }
    let client = cluster.client();
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let services: Api<Service> = Api::namespaced(client.clone(), &cluster.istio_namespace);
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client);
    for handover in &plan.handovers {
        for note in handover::hand_over(cluster, handover, MANAGER, dry_run).await? {
            eprintln!("kubectl-revtag: {note}");
        }
    }
    let objects = &plan.objects;
    let name =
        |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| meta.name.clone().unwrap_or_default();
    let webhook = name(&objects.webhook.metadata);
    cluster
        .call(
            &format!("apply mutatingwebhookconfiguration {webhook}"),
            mutating.patch(&webhook, &params, &Patch::Apply(&objects.webhook)),
        )
        .await?;
    let service = name(&objects.service.metadata);
    cluster
        .call(
            &format!("apply service {service} in namespace {}", cluster.istio_namespace),
            services.patch(&service, &params, &Patch::Apply(&objects.service)),
        )
        .await?;
    if let Some(validator) = &objects.validator {
        let vname = name(&validator.metadata);
        cluster
            .call(
                &format!("apply validatingwebhookconfiguration {vname}"),
                validating.patch(&vname, &params, &Patch::Apply(validator)),
            )
            .await?;
    }
    if let Some(legacy) = &plan.deactivate {
        crate::legacy_injector::switch(cluster, legacy, true, dry_run).await?;
    }
    Ok(())
}

pub async fn apply_remove(cluster: &Cluster, plan: &RemovePlan, dry_run: DryRun) -> Result<()> {
    if dry_run == DryRun::Client {
        return Ok(());
    }
    let client = cluster.client();
    let params = DeleteParams { dry_run: dry_run == DryRun::Server, ..Default::default() };
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let services: Api<Service> = Api::namespaced(client, &cluster.istio_namespace);
    for handover in &plan.handovers {
        for note in handover::hand_over(cluster, handover, MANAGER, dry_run).await? {
            eprintln!("kubectl-revtag: {note}");
        }
    }
    // The legacy injector comes back before the tag's injector goes, so injection never lapses.
    if let Some(legacy) = &plan.reactivate {
        crate::legacy_injector::switch(cluster, legacy, false, dry_run).await?;
    }
    for name in &plan.webhooks {
        ignore_missing(
            cluster.call(&format!("delete mutatingwebhookconfiguration {name}"), mutating.delete(name, &params)).await,
        )?;
    }
    for name in &plan.validators {
        ignore_missing(
            cluster
                .call(&format!("delete validatingwebhookconfiguration {name}"), validating.delete(name, &params))
                .await,
        )?;
    }
    for name in &plan.services {
        ignore_missing(cluster.call(&format!("delete service {name}"), services.delete(name, &params)).await)?;
    }
    Ok(())
}

/// Writes the objects `remove` deletes to a backup archive first (see [`meshkit::backup`]).
pub async fn back_up_removal(
    cluster: &Cluster,
    snapshot: &Snapshot,
    plan: &RemovePlan,
    path: &std::path::Path,
) -> Result<usize> {
    let mut objects: Vec<(serde_json::Value, &str)> = Vec::new();
    for m in snapshot.mutating.iter().filter(|m| m.metadata.name.as_ref().is_some_and(|n| plan.webhooks.contains(n))) {
        objects.push((
            value(m, "MutatingWebhookConfiguration", "admissionregistration.k8s.io/v1"),
            "mutatingwebhookconfigurations",
        ));
    }
    for v in
        snapshot.validating.iter().filter(|v| v.metadata.name.as_ref().is_some_and(|n| plan.validators.contains(n)))
    {
        objects.push((
            value(v, "ValidatingWebhookConfiguration", "admissionregistration.k8s.io/v1"),
            "validatingwebhookconfigurations",
        ));
    }
    let services: Api<Service> = Api::namespaced(cluster.client(), &cluster.istio_namespace);
    for name in &plan.services {
        let what = format!("get service {name} in namespace {}", cluster.istio_namespace);
        if let Some(service) = cluster.call(&what, services.get_opt(name)).await? {
            objects.push((value(&service, "Service", "v1"), "services"));
        }
    }
    let tool = format!("kubectl-revtag {} remove", env!("CARGO_PKG_VERSION"));
    meshkit::backup::write(cluster, &snapshot.mesh(), &tool, path, &objects).await
}

/// An API object as JSON with its kind, as an archive stores it (list items come without one).
fn value(object: &impl Serialize, kind: &str, api_version: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    value["kind"] = kind.into();
    value["apiVersion"] = api_version.into();
    value
}

/// Deleting what is already gone is success: a rerun after an interruption converges.
fn ignore_missing<T>(outcome: Result<T>) -> Result<()> {
    match outcome {
        Ok(_) | Err(Error::Api { code: 404, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[path = "tag_tests.rs"]
mod tests;
