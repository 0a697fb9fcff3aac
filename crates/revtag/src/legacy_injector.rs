//! Switching a legacy (unrevisioned) injector off when `set default` makes a revisioned default,
//! and back on, exactly as it was, when `remove default` removes it: its selectors are kept in an
//! annotation on it meanwhile.

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiSelector;
use kube::Api;
use kube::api::PostParams;
use meshkit::cli::DryRun;
use meshkit::cluster::Cluster;
use meshkit::istio::keys;
use meshkit::istio::tag_objects::MANAGER;
use meshkit::{Error, Result};
use serde::{Deserialize, Serialize};

/// Where `set default` records the selectors of a legacy injector it switches off, so that
/// `remove default` can switch it back on exactly as it was.
pub const DEACTIVATED_ANNOTATION: &str = "revtag.meshkit.dev/deactivated-selectors";

#[derive(Serialize, Deserialize)]
struct SavedSelectors {
    name: String,
    namespace_selector: Option<ApiSelector>,
    object_selector: Option<ApiSelector>,
}

/// Switches a legacy injector off (recording its selectors in an annotation first) or back on
/// (restoring them).
pub async fn switch(cluster: &Cluster, name: &str, off: bool, dry_run: DryRun) -> Result<()> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(cluster.client());
    let mut config = cluster.call(&format!("get mutatingwebhookconfiguration {name}"), api.get(name)).await?;
    let annotations = config.metadata.annotations.get_or_insert_with(Default::default);
    let webhooks = config.webhooks.get_or_insert_with(Vec::new);
    if off {
        if annotations.contains_key(DEACTIVATED_ANNOTATION) {
            return Ok(());
        }
        let saved: Vec<SavedSelectors> = webhooks
            .iter()
            .map(|w| SavedSelectors {
                name: w.name.clone(),
                namespace_selector: w.namespace_selector.clone(),
                object_selector: w.object_selector.clone(),
            })
            .collect();
        annotations
            .insert(DEACTIVATED_ANNOTATION.into(), serde_json::to_string(&saved).map_err(std::io::Error::other)?);
        let never = || {
            Some(ApiSelector {
                match_labels: Some([(keys::DEACTIVATED.0.to_string(), keys::DEACTIVATED.1.to_string())].into()),
                match_expressions: None,
            })
        };
        for w in webhooks.iter_mut() {
            w.namespace_selector = never();
            w.object_selector = never();
        }
    } else {
        let Some(saved) = annotations.remove(DEACTIVATED_ANNOTATION) else { return Ok(()) };
        let saved: Vec<SavedSelectors> = serde_json::from_str(&saved).map_err(|e| {
            Error::refused(
                format!("annotation {DEACTIVATED_ANNOTATION} on {name} is not ours to read: {e}"),
                "restore its selectors by hand",
            )
        })?;
        for w in webhooks.iter_mut() {
            if let Some(s) = saved.iter().find(|s| s.name == w.name) {
                w.namespace_selector = s.namespace_selector.clone();
                w.object_selector = s.object_selector.clone();
            }
        }
    }
    let mut params = PostParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    params.dry_run = dry_run == DryRun::Server;
    let what = if off { "switch off" } else { "switch back on" };
    cluster.call(&format!("{what} the injector {name}"), api.replace(name, &params, &config)).await?;
    Ok(())
}
