//! Verify: istiod available, webhooks served, pods on their revision, revisions still used.

use std::collections::{BTreeMap, BTreeSet};

use meshkit::istio::{PodRevisionState, namespace_injection, pod_injected, pod_state};

use super::Context;
use super::check::Check;
use super::namespace_of;
use super::report::Finding;

pub fn istiods_available(check: &'static Check, cx: &Context) -> Finding {
    let mesh = cx.mesh;
    let mut down = Vec::new();
    for revision in mesh.installed_revisions() {
        if revision.istiods.is_empty() {
            down.push(format!("revision/{} has no istiod Deployment", revision.name));
        }
        for istiod in &revision.istiods {
            if istiod.ready_replicas < istiod.replicas.max(1) {
                down.push(format!(
                    "deployment/{}/{} ({}/{} ready)",
                    istiod.namespace, istiod.name, istiod.ready_replicas, istiod.replicas
                ));
            }
        }
    }
    Finding::none_of(check, down, |n| format!("{n} istiod problem(s)"))
}

pub fn webhooks_have_ca_bundles(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let prefix = format!("{}/", snapshot.istio_namespace);
    let ours = |w: &meshkit::istio::WebhookView| {
        w.url.is_some() || w.service.as_deref().is_some_and(|s| s.starts_with(&prefix))
    };
    let mut missing = Vec::new();
    for (kind, configs) in
        [("mutatingwebhookconfiguration", &snapshot.mutating), ("validatingwebhookconfiguration", &snapshot.validating)]
    {
        for config in configs {
            if config.webhooks.iter().any(|w| ours(w) && !w.has_ca_bundle) {
                missing.push(format!("{kind}/{}", config.name));
            }
        }
    }
    Finding::none_of(check, missing, |n| format!("{n} webhook configuration(s) have no caBundle"))
}

pub fn webhook_services_ready(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let prefix = format!("{}/", snapshot.istio_namespace);
    let mut callers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for config in snapshot.mutating.iter().chain(&snapshot.validating) {
        for entry in &config.webhooks {
            if let Some(service) = entry.service.as_deref().and_then(|s| s.strip_prefix(&prefix)) {
                callers.entry(service.to_string()).or_default().insert(config.name.clone());
            }
        }
    }
    let unready: Vec<String> = callers
        .into_iter()
        .filter(|(service, _)| snapshot.ready_endpoints.get(service).copied().unwrap_or(0) == 0)
        .map(|(service, configs)| {
            format!("service/{}{service} (called by {})", prefix, configs.into_iter().collect::<Vec<_>>().join(", "))
        })
        .collect();
    Finding::none_of(check, unready, |n| format!("{n} webhook Service(s) have no ready endpoints"))
}

pub fn pods_on_intended_revision(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let mesh = cx.mesh;
    // Succeeded and Failed pods never restart: they pin nothing and are never stale.
    let stale: Vec<String> = snapshot
        .pods
        .iter()
        .filter(|pod| !pod.finished)
        .filter_map(|pod| match pod_state(&namespace_of(snapshot, &pod.namespace), pod, mesh) {
            PodRevisionState::Stale { reason, .. } => Some(format!("pod/{}/{}: {reason}", pod.namespace, pod.name)),
            _ => None,
        })
        .collect();
    Finding::none_of(check, stale, |n| format!("{n} pod(s) need a restart"))
}

pub fn revisions_in_use(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let mesh = cx.mesh;
    let mut used: BTreeSet<&str> = mesh.tags.values().map(|t| t.revision.as_str()).collect();
    for ns in &snapshot.namespaces {
        if let Some(revision) = namespace_injection(&ns.labels).requested().and_then(|r| mesh.resolve(r)) {
            used.insert(revision);
        }
    }
    let injected: Vec<String> = snapshot
        .pods
        .iter()
        .filter(|p| !p.finished)
        .filter_map(|p| pod_injected(p).revision().map(str::to_string))
        .collect();
    used.extend(injected.iter().map(String::as_str));
    let unused: Vec<String> = mesh
        .installed_revisions()
        .filter(|r| !used.contains(r.name.as_str()) && Some(r.name.as_str()) != mesh.default_revision())
        .map(|r| format!("revision/{}", r.name))
        .collect();
    Finding::none_of(check, unused, |n| format!("{n} revision(s) are not used by any tag, namespace or pod"))
}
