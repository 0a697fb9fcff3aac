//! Taking objects over from the Helm release that rendered them, so that the release's next
//! `helm upgrade` or `helm uninstall` leaves them alone: the release gets a new record without
//! them (the old record stays in its history), and the live objects lose Helm's marks and gain
//! `helm.sh/resource-policy: keep`. Nothing is taken from Sail or GitOps: they would revert it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::json;

use super::helm::{self, ObjectKey, RELEASE_KEY, RELEASE_SECRET_TYPE, Release};
use super::owner::{HELM_CHART_LABELS, HELM_KEEP, HELM_RELEASE_NAME, HELM_RELEASE_NAMESPACE, HELM_RESOURCE_POLICY};
use super::owner::{MANAGED_BY, Manager};
use crate::cli::DryRun;
use crate::cluster::Cluster;
use crate::{Error, Result};

/// Objects one manager owns that a change is about to take from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub manager: Manager,
    pub objects: Vec<ObjectKey>,
    /// Revision tags whose objects these are: dropped from the release's `revisionTags`.
    pub tags: Vec<String>,
}

impl Handover {
    /// Groups objects by their foreign manager; objects nobody else manages need no handover.
    pub fn group(items: impl IntoIterator<Item = (Manager, ObjectKey)>, tags: &[&str]) -> Vec<Handover> {
        let mut by_manager: Vec<Handover> = Vec::new();
        for (manager, object) in items.into_iter().filter(|(m, _)| m.is_foreign()) {
            match by_manager.iter_mut().find(|h| h.manager == manager) {
                Some(h) => h.objects.push(object),
                None => by_manager.push(Handover {
                    manager,
                    objects: vec![object],
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                }),
            }
        }
        by_manager
    }

    pub fn describe_objects(&self) -> String {
        self.objects.iter().map(ObjectKey::to_string).collect::<Vec<_>>().join(", ")
    }

    /// What stays true after the handover that a user should know.
    pub fn caveat(&self) -> String {
        match &self.manager {
            Manager::Helm { release, .. } => format!(
                "Helm release {release} no longer renders {}: do not list {} in its values again (a `helm upgrade` \
                 would then refuse on their ownership), and `helm rollback {release}` to an earlier revision \
                 would take them back",
                self.describe_objects(),
                if self.tags.is_empty() { "them".to_string() } else { self.tags.join(", ") },
            ),
            other => format!(
                "{} still manages {} and will revert this change: {}",
                other,
                self.describe_objects(),
                other.the_owners_way()
            ),
        }
    }
}

/// Hands the objects over (see the module). Idempotent: a release that no longer renders them
/// gets no new record, and marks already gone are not patched again. Returns what was done.
pub async fn hand_over(cluster: &Cluster, handover: &Handover, plugin: &str, dry_run: DryRun) -> Result<Vec<String>> {
    let Manager::Helm { release, namespace } = &handover.manager else { return Ok(Vec::new()) };
    let mut done = Vec::new();
    if dry_run == DryRun::Client {
        return Ok(done);
    }
    if let Some(note) = rewrite_release(cluster, release, namespace, handover, plugin, dry_run).await? {
        done.push(note);
    }
    for object in &handover.objects {
        strip_marks(cluster, object, namespace, plugin, dry_run).await?;
    }
    Ok(done)
}

async fn rewrite_release(
    cluster: &Cluster,
    release: &str,
    namespace: &str,
    handover: &Handover,
    plugin: &str,
    dry_run: DryRun,
) -> Result<Option<String>> {
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), namespace);
    let what = format!("list the records of Helm release {release} in namespace {namespace}");
    let records = cluster.list(&secrets, Some(&helm::release_selector(release)), &what).await?;
    let mut decoded = Vec::new();
    for secret in &records {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let Some(data) = secret.data.as_ref().and_then(|d| d.get(RELEASE_KEY)) else { continue };
        let record = Release::decode(&name, &data.0)
            .map_err(|e| Error::refused(e.to_string(), "repair or delete that record with helm, then retry"))?;
        decoded.push(record);
    }
    let Some(current) = decoded.iter().max_by_key(|r| r.version()) else {
        return Err(Error::not_found(
            format!("Helm release {release} in namespace {namespace} has no release record"),
            "its objects name a release Helm does not know: remove their meta.helm.sh annotations by hand",
        ));
    };
    if current.status().starts_with("pending") {
        return Err(Error::refused(
            format!("Helm release {release} is {} (a helm command is running or was interrupted)", current.status()),
            format!("wait for it, or finish it with `helm rollback {release} -n {namespace}`, then retry"),
        ));
    }
    let tags: Vec<&str> = handover.tags.iter().map(String::as_str).collect();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let description = format!("{plugin}: handed over {}", handover.describe_objects());
    // Compared by what the record renders, not by its text: Helm's own manifest text is not
    // byte for byte what a rewrite of it would be.
    if !current.claims(&handover.objects, &tags) {
        return Ok(None);
    }
    let next = current.without(&handover.objects, &tags, &description, &now);
    let params = PostParams { dry_run: dry_run == DryRun::Server, field_manager: Some(plugin.to_string()) };
    let record = |r: &Release, extra: (&str, String)| {
        let mut labels = r.secret_labels();
        labels.insert(extra.0.to_string(), extra.1);
        Secret {
            metadata: ObjectMeta {
                name: Some(helm::secret_name(r.name(), r.version())),
                namespace: Some(namespace.to_string()),
                labels: Some(labels),
                ..Default::default()
            },
            type_: Some(RELEASE_SECRET_TYPE.into()),
            data: Some(BTreeMap::from([(RELEASE_KEY.to_string(), ByteString(r.encode()))])),
            ..Default::default()
        }
    };
    let unix = k8s_openapi::jiff::Timestamp::now().as_second().to_string();
    let new_name = helm::secret_name(release, next.version());
    cluster
        .call(
            &format!("write record {new_name} of Helm release {release}"),
            secrets.create(&params, &record(&next, ("createdAt", unix.clone()))),
        )
        .await?;
    // The record it replaces is kept, marked superseded, as `helm upgrade` leaves it.
    let old_name = helm::secret_name(release, current.version());
    let mut old = record(&current.superseded(), ("modifiedAt", unix));
    let live = records.iter().find(|s| s.metadata.name.as_deref() == Some(old_name.as_str()));
    old.metadata.resource_version = live.and_then(|s| s.metadata.resource_version.clone());
    cluster
        .call(
            &format!("mark record {old_name} of Helm release {release} superseded"),
            secrets.replace(&old_name, &params, &old),
        )
        .await?;
    Ok(Some(format!(
        "Helm release {release}: revision {} no longer renders {} (revision {} kept in its history)",
        next.version(),
        handover.describe_objects(),
        current.version()
    )))
}

/// The API of the kinds a handover moves (revision-tag objects and the default validator).
fn api_of(cluster: &Cluster, object: &ObjectKey, release_namespace: &str) -> Result<Api<DynamicObject>> {
    let (group, version, plural) = match object.kind.as_str() {
        "MutatingWebhookConfiguration" => ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations"),
        "ValidatingWebhookConfiguration" => ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations"),
        "Service" => ("", "v1", "services"),
        other => {
            return Err(Error::refused(
                format!("cannot hand over a {other} ({}) from Helm", object.name),
                "only revision-tag objects and validators are handed over",
            ));
        }
    };
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, &object.kind), plural);
    Ok(if object.kind == "Service" {
        let namespace = object.namespace.as_deref().unwrap_or(release_namespace);
        Api::namespaced_with(cluster.client(), namespace, &resource)
    } else {
        Api::all_with(cluster.client(), &resource)
    })
}

/// Removes Helm's claim from a live object (release annotations and chart labels) and marks it
/// `helm.sh/resource-policy: keep`; already gone is fine.
pub async fn strip_marks(
    cluster: &Cluster,
    object: &ObjectKey,
    release_namespace: &str,
    plugin: &str,
    dry_run: DryRun,
) -> Result<()> {
    let api = api_of(cluster, object, release_namespace)?;
    let mut labels: serde_json::Map<String, serde_json::Value> =
        HELM_CHART_LABELS.iter().map(|l| (l.to_string(), serde_json::Value::Null)).collect();
    labels.insert(MANAGED_BY.into(), plugin.into());
    let patch = json!({"metadata": {
        "annotations": {HELM_RELEASE_NAME: null, HELM_RELEASE_NAMESPACE: null, HELM_RESOURCE_POLICY: HELM_KEEP},
        "labels": labels,
    }});
    let mut params = PatchParams { field_manager: Some(plugin.to_string()), ..Default::default() };
    params.dry_run = dry_run == DryRun::Server;
    let outcome = cluster
        .call(&format!("take {object} over from Helm"), api.patch(&object.name, &params, &Patch::Merge(&patch)))
        .await;
    match outcome {
        Ok(_) | Err(Error::Api { code: 404, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
