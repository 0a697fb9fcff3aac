//! `kubectl revtag remove TAG`: fetch → decide (`plan_remove`, pure) → ask → back up → apply →
//! render.

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::DeleteParams;
use meshkit::args::KubeArgs;
use meshkit::cli::{DryRun, Matches};
use meshkit::cluster::{Cluster, block_on};
use meshkit::install::handover::{self, Handover};
use meshkit::istio::tag_objects::{DEFAULT_VALIDATOR, MANAGER};
use meshkit::istio::{NamespaceInjection, keys, namespace_injection, pod_requested};
use meshkit::render::{OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};
use serde::Serialize;

use crate::common::{tag_argument, warn};
use crate::legacy_injector::DEACTIVATED_ANNOTATION;
use crate::ownership;
use crate::snapshot::{Needs, Snapshot};
use crate::spec::SPEC;

/// `remove`'s command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveArgs {
    pub tag: String,
    pub yes: bool,
    pub dry_run: DryRun,
    pub ignore_not_found: bool,
    pub take_ownership: bool,
    pub backup: Option<PathBuf>,
}

impl RemoveArgs {
    pub fn from_matches(m: &Matches) -> Result<RemoveArgs> {
        let backup = m.value("backup").map(PathBuf::from);
        if let Some(path) = &backup {
            meshkit::args::check_output_path(path, false)?;
        }
        Ok(RemoveArgs {
            tag: tag_argument(m)?,
            yes: m.has("yes"),
            dry_run: m.dry_run()?,
            ignore_not_found: m.has("ignore-not-found"),
            take_ownership: m.has("take-ownership"),
            backup,
        })
    }
}

pub fn run(kube: &KubeArgs, output: OutputArgs, args: &RemoveArgs) -> Result<Exit> {
    let renderer = Renderer::new(output);
    block_on(async {
        let cluster = Cluster::connect(kube).await?;
        let snapshot = Snapshot::fetch(&cluster, Needs { validating: true, pods: true }).await?;
        let plan = match plan_remove(&snapshot, &args.tag, args.take_ownership) {
            Err(Error::NotFound { .. }) if args.ignore_not_found => {
                return render(&renderer, &args.tag, None, args.dry_run);
            }
            other => other?,
        };
        warn(&plan.warnings);
        if !plan.users.is_empty() {
            SPEC.warn(format_args!("tag {} is still used by: {}", args.tag, plan.users.join(", ")));
            if !args.dry_run.is_dry() {
                let question = format!("Remove tag {} anyway? New pods there will get no sidecar from it", args.tag);
                meshkit::confirm::ask(&question, args.yes)?;
            }
        }
        if let Some(path) = args.backup.as_deref().filter(|_| !args.dry_run.is_dry()) {
            let written = back_up_removal(&cluster, &snapshot, &plan, path).await?;
            SPEC.note(format_args!("backed up {written} objects to {}", path.display()));
        }
        meshkit::kube::lock::guarded(&cluster, args.dry_run, apply_remove(&cluster, &plan, args.dry_run)).await?;
        render(&renderer, &args.tag, Some(&plan), args.dry_run)
    })
}

/// What `remove` did, for `-o json|yaml`.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Removed {
    tag: String,
    found: bool,
    removed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    legacy_injector_reactivated: Option<String>,
    dry_run: &'static str,
}

/// What was removed (`plan`), or that the tag was not there (`None`, with `--ignore-not-found`).
fn render(renderer: &Renderer, tag: &str, plan: Option<&RemovePlan>, dry_run: DryRun) -> Result<Exit> {
    let Some(plan) = plan else {
        let result = Removed { tag: tag.to_string(), found: false, ..Removed::default() };
        renderer.print_human(&result, |_| format!("revision tag {tag:?} does not exist; nothing to remove\n"))?;
        return Ok(Exit::Ok);
    };
    let removed: Vec<String> = plan
        .webhooks
        .iter()
        .map(|n| format!("mutatingwebhookconfiguration/{n}"))
        .chain(plan.validators.iter().map(|n| format!("validatingwebhookconfiguration/{n}")))
        .chain(plan.services.iter().map(|n| format!("service/{n}")))
        .collect();
    let result = Removed {
        tag: tag.to_string(),
        found: true,
        removed,
        legacy_injector_reactivated: plan.reactivate.clone(),
        dry_run: dry_run.word(),
    };
    renderer.print_human(&result, |_| {
        let prefix = dry_run.prefix();
        let mut text = format!("{prefix}revision tag {tag:?} removed ({})\n", result.removed.join(", "));
        if let Some(legacy) = &result.legacy_injector_reactivated {
            text.push_str(&format!("{prefix}legacy injector {legacy:?} switched back on\n"));
        }
        text
    })?;
    Ok(Exit::Ok)
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
        if pod_requested(&pod.labels) == Some(tag) {
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
            SPEC.note(note);
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
