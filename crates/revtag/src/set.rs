//! `kubectl revtag set TAG --revision REV`: fetch → decide (`plan_set`, pure) → ask → apply →
//! render. `generate` prints the same plan's objects instead (see `generate.rs`).

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};
use meshkit::args::KubeArgs;
use meshkit::cli::{DryRun, Matches};
use meshkit::cluster::{Cluster, block_on};
use meshkit::install::handover::{self, Handover};
use meshkit::istio::tag_objects::{self, CanonicalInjectorError, DEFAULT_VALIDATOR, MANAGER, TagObjects, TagSpec};
use meshkit::istio::{NamespaceInjection, WebhookConfigView, injection_overlaps, keys, namespace_injection};
use meshkit::render::{Format, OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};

use crate::common::{tag_argument, warn};
use crate::ownership;
use crate::snapshot::{Needs, Snapshot};
use crate::spec::SPEC;

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

impl SetRequest {
    /// `TAG --revision REV` and the switches `set` and `generate` share, checked.
    pub fn from_matches(m: &Matches) -> Result<SetRequest> {
        let tag = tag_argument(m)?;
        let revision = m.value("revision").ok_or_else(|| {
            Error::usage(
                format!("`kubectl revtag {}` needs --revision", m.command.name),
                format!("e.g. `kubectl revtag {} {tag} --revision 1-31-1`", m.command.name),
            )
        })?;
        meshkit::istio::names::validate("revision", revision)?;
        Ok(SetRequest {
            tag,
            revision: revision.to_string(),
            overwrite: m.has("overwrite"),
            auto_inject: m.has("auto-inject-namespaces"),
            take_ownership: m.has("take-ownership"),
        })
    }
}

/// `set`'s command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetArgs {
    pub request: SetRequest,
    pub yes: bool,
    pub dry_run: DryRun,
}

impl SetArgs {
    pub fn from_matches(m: &Matches) -> Result<SetArgs> {
        Ok(SetArgs { request: SetRequest::from_matches(m)?, yes: m.has("yes"), dry_run: m.dry_run()? })
    }
}

pub fn run(kube: &KubeArgs, output: OutputArgs, args: &SetArgs) -> Result<Exit> {
    block_on(async {
        let cluster = Cluster::connect(kube).await?;
        let snapshot = Snapshot::fetch(&cluster, Needs { validating: true, pods: false }).await?;
        let plan = plan_set(&snapshot, &args.request, false)?;
        warn(&plan.warnings);
        if let Some(question) = plan.question.as_deref().filter(|_| !args.dry_run.is_dry()) {
            meshkit::confirm::ask(question, args.yes)?;
        }
        meshkit::kube::lock::guarded(&cluster, args.dry_run, apply_set(&cluster, &plan, args.dry_run)).await?;
        render(&Renderer::new(output), args, &plan)?;
        Ok(Exit::Ok)
    })
}

/// A sentence on a terminal; the objects as sent with `-o json|yaml`.
fn render(renderer: &Renderer, args: &SetArgs, plan: &SetPlan) -> Result<()> {
    if renderer.format != Format::Table {
        return renderer.print_manifests(&manifests(&plan.objects)?);
    }
    let (request, prefix) = (&args.request, args.dry_run.prefix());
    let what = match plan.previous.as_deref() {
        None => format!("created, pointing at revision {:?}", request.revision),
        Some(previous) if previous == request.revision => {
            format!("already points at revision {:?}; its objects are up to date", request.revision)
        }
        Some(previous) => format!("now points at revision {:?} (was {previous:?})", request.revision),
    };
    let mut text = format!("{prefix}revision tag {:?} {what}\n", request.tag);
    if let Some(legacy) = &plan.deactivate {
        text.push_str(&format!(
            "{prefix}legacy injector {legacy:?} switched off (`kubectl revtag remove default` switches it back on)\n"
        ));
    }
    meshkit::render::print_text(&text);
    Ok(())
}

/// The tag's objects, in the order they are applied.
pub fn manifests(objects: &TagObjects) -> Result<Vec<serde_json::Value>> {
    let mut values = vec![to_value(&objects.webhook)?, to_value(&objects.service)?];
    if let Some(validator) = &objects.validator {
        values.push(to_value(validator)?);
    }
    Ok(values)
}

fn to_value(object: &impl serde::Serialize) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(object).map_err(std::io::Error::other)?)
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
            SPEC.note(note);
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
