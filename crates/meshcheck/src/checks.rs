//! Decide: every check is a pure function of the snapshot (and the options).

use std::collections::{BTreeMap, BTreeSet};

use meshkit::istio::support::{MAX_PROXY_LAG, Support, kubernetes_support, support_window};
use meshkit::istio::{
    Injected, IstioVersion, Mesh, NamespaceInjection, NamespaceView, PodRevisionState, injection_overlaps, keys,
    namespace_injection, pod_injected, pod_state, proxy_version,
};

use crate::report::{Finding, Report};
use crate::snapshot::Snapshot;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--to-version 1.Y`: the Istio being upgraded to.
    pub to_version: Option<IstioVersion>,
    /// `--revision REV`: the revision name the canary will get.
    pub revision: Option<String>,
}

pub fn precheck(snapshot: &Snapshot, options: &Options) -> Report {
    let mesh = snapshot.mesh();
    let findings = vec![
        kubernetes_version(snapshot, &mesh, options),
        permissions(snapshot),
        revision_name_free(&mesh, options),
        tags_resolve(&mesh),
        namespaces_resolve(snapshot, &mesh),
        both_injection_labels(snapshot),
        no_overlaps(snapshot, &mesh),
        injector_services_exist(snapshot),
        proxies_not_newer(snapshot, &mesh),
        proxies_within_skew(snapshot, &mesh),
        injected_by_installed_revisions(snapshot, &mesh),
        injected_namespaces_have_proxies(snapshot, &mesh),
    ];
    Report { findings }
}

pub fn verify(snapshot: &Snapshot) -> Report {
    let mesh = snapshot.mesh();
    let findings = vec![
        istiods_available(&mesh),
        webhooks_have_ca_bundles(snapshot),
        webhook_services_ready(snapshot),
        tags_resolve(&mesh),
        namespaces_resolve(snapshot, &mesh),
        pods_on_intended_revision(snapshot, &mesh),
        revisions_in_use(snapshot, &mesh),
    ];
    Report { findings }
}

fn namespace_of(snapshot: &Snapshot, name: &str) -> NamespaceView {
    snapshot
        .namespaces
        .iter()
        .find(|n| n.name == name)
        .cloned()
        .unwrap_or_else(|| NamespaceView { name: name.to_string(), labels: Default::default() })
}

fn kubernetes_version(snapshot: &Snapshot, mesh: &Mesh, options: &Options) -> Finding {
    const CODE: &str = "MC0101";
    let Some((_, minor)) = snapshot.kubernetes else {
        return Finding::skipped(
            CODE,
            format!("the server reports an unreadable version {:?}", snapshot.kubernetes_version),
        );
    };
    let target =
        options.to_version.clone().or_else(|| mesh.installed_revisions().filter_map(|r| r.version.clone()).max());
    let Some(target) = target else {
        return Finding::skipped(CODE, "no Istio installed and no --to-version given");
    };
    let istio = format!("{}.{}", target.major, target.minor);
    let window = support_window(&target);
    let range = window.map(|w| format!("1.{}–1.{}", w.supported.0, w.supported.1)).unwrap_or_default();
    match kubernetes_support(&target, minor) {
        Support::Supported => {
            Finding::pass_with(CODE, format!("Kubernetes 1.{minor} is supported by Istio {istio} ({range})"))
        }
        Support::TestedOnly => Finding::warn(
            CODE,
            format!("Kubernetes 1.{minor} was tested with Istio {istio} but is not supported (supported: {range})"),
            vec![],
        ),
        Support::Unsupported => Finding::fail(
            CODE,
            format!("Kubernetes 1.{minor} is not supported by Istio {istio} (supported: {range})"),
            vec![],
        ),
        Support::Unknown => Finding::warn(
            CODE,
            format!(
                "Istio {istio} is not in this meshcheck's support table; check istio.io's support status for Kubernetes 1.{minor}"
            ),
            vec![],
        ),
    }
}

fn permissions(snapshot: &Snapshot) -> Finding {
    const CODE: &str = "MC0201";
    let Some(permissions) = &snapshot.permissions else {
        return Finding::skipped(CODE, "permissions were not reviewed");
    };
    let missing: Vec<String> = permissions.iter().filter(|p| !p.allowed).map(|p| p.describe()).collect();
    Finding::none_of(CODE, missing, |n| {
        format!("{n} of {} permissions an upgrade needs are missing", permissions.len())
    })
}

fn revision_name_free(mesh: &Mesh, options: &Options) -> Finding {
    const CODE: &str = "MC0301";
    let Some(revision) = &options.revision else { return Finding::skipped(CODE, "no --revision given") };
    if mesh.installed_revisions().any(|r| &r.name == revision) {
        Finding::fail(CODE, format!("revision {revision} is already installed"), vec![format!("revision/{revision}")])
    } else if mesh.tags.contains_key(revision) {
        Finding::fail(CODE, format!("{revision} is the name of a revision tag"), vec![format!("tag/{revision}")])
    } else {
        Finding::pass_with(CODE, format!("revision name {revision} is free"))
    }
}

fn tags_resolve(mesh: &Mesh) -> Finding {
    let dangling: Vec<String> = mesh
        .tags
        .values()
        .filter(|t| mesh.resolve(&t.name).is_none())
        .map(|t| format!("tag/{} → revision {}", t.name, t.revision))
        .collect();
    Finding::none_of("MC0302", dangling, |n| format!("{n} tag(s) point at a revision that is not installed"))
}

fn namespaces_resolve(snapshot: &Snapshot, mesh: &Mesh) -> Finding {
    let lost: Vec<String> = snapshot
        .namespaces
        .iter()
        .filter_map(|ns| {
            let requested = namespace_injection(&ns.labels).requested()?.to_string();
            mesh.resolve(&requested).is_none().then(|| format!("namespace/{} → {requested}", ns.name))
        })
        .collect();
    Finding::none_of("MC0303", lost, |n| {
        format!("{n} namespace(s) ask for a revision or tag that does not exist; new pods there get no sidecar")
    })
}

fn both_injection_labels(snapshot: &Snapshot) -> Finding {
    let both: Vec<String> = snapshot
        .namespaces
        .iter()
        .filter_map(|ns| match namespace_injection(&ns.labels) {
            NamespaceInjection::Default { shadowed: Some(rev) } => {
                Some(format!("namespace/{} (istio-injection=enabled hides istio.io/rev={rev})", ns.name))
            }
            _ => None,
        })
        .collect();
    Finding::none_of("MC0401", both, |n| format!("{n} namespace(s) carry both labels"))
}

fn no_overlaps(snapshot: &Snapshot, mesh: &Mesh) -> Finding {
    let mut names: BTreeSet<String> = mesh.revisions.keys().chain(mesh.tags.keys()).cloned().collect();
    names.extend(snapshot.namespaces.iter().filter_map(|ns| ns.labels.get(keys::REV).cloned()));
    let overlaps: Vec<String> = injection_overlaps(&snapshot.mutating, &names).iter().map(|o| o.describe()).collect();
    Finding::none_of("MC0402", overlaps, |n| format!("{n} pair(s) of injector webhooks overlap"))
}

fn injector_services_exist(snapshot: &Snapshot) -> Finding {
    let prefix = format!("{}/", snapshot.istio_namespace);
    let services: BTreeSet<&str> = snapshot.services.iter().map(|s| s.name.as_str()).collect();
    let mut missing = BTreeSet::new();
    for config in &snapshot.mutating {
        for entry in config.injectors() {
            if let Some(service) = entry.service.as_deref().and_then(|s| s.strip_prefix(&prefix))
                && !services.contains(service)
            {
                missing.insert(format!("mutatingwebhookconfiguration/{} → service {}{service}", config.name, prefix));
            }
        }
    }
    Finding::none_of("MC0403", missing.into_iter().collect(), |n| {
        format!("{n} webhook(s) call a Service that does not exist")
    })
}

/// `(pod, injected revision, proxy version, control-plane version)` for every injected pod whose
/// versions are both known.
fn versioned_proxies(snapshot: &Snapshot, mesh: &Mesh) -> Vec<(String, IstioVersion, IstioVersion)> {
    snapshot
        .pods
        .iter()
        .filter_map(|pod| {
            let revision = pod_injected(pod).revision()?.to_string();
            let proxy = proxy_version(pod)?;
            let control = mesh.revisions.get(&revision)?.version.clone()?;
            Some((format!("pod/{}/{} ({revision})", pod.namespace, pod.name), proxy, control))
        })
        .collect()
}

fn proxies_not_newer(snapshot: &Snapshot, mesh: &Mesh) -> Finding {
    let newer: Vec<String> = versioned_proxies(snapshot, mesh)
        .into_iter()
        .filter(|(_, proxy, control)| proxy.minor_version() > control.minor_version())
        .map(|(pod, proxy, control)| format!("{pod}: proxy {proxy}, control plane {control}"))
        .collect();
    Finding::none_of("MC0501", newer, |n| format!("{n} proxy(ies) are newer than their control plane"))
}

fn proxies_within_skew(snapshot: &Snapshot, mesh: &Mesh) -> Finding {
    let behind: Vec<String> = versioned_proxies(snapshot, mesh)
        .into_iter()
        .filter(|(_, proxy, control)| proxy.major == control.major && control.minor > proxy.minor + MAX_PROXY_LAG)
        .map(|(pod, proxy, control)| format!("{pod}: proxy {proxy}, control plane {control}"))
        .collect();
    Finding::none_of("MC0502", behind, |n| {
        format!("{n} proxy(ies) lag their control plane by more than {MAX_PROXY_LAG} minors")
    })
}

fn injected_by_installed_revisions(snapshot: &Snapshot, mesh: &Mesh) -> Finding {
    let orphans: Vec<String> = snapshot
        .pods
        .iter()
        .filter_map(|pod| {
            let revision = pod_injected(pod).revision()?.to_string();
            (!mesh.revisions.get(&revision).is_some_and(|r| r.installed()))
                .then(|| format!("pod/{}/{} (injected by {revision})", pod.namespace, pod.name))
        })
        .collect();
    Finding::none_of("MC0503", orphans, |n| format!("{n} pod(s) were injected by a revision that is gone"))
}

fn injected_namespaces_have_proxies(snapshot: &Snapshot, mesh: &Mesh) -> Finding {
    let missing: Vec<String> = snapshot
        .pods
        .iter()
        .filter(|pod| pod_injected(pod) == Injected::NotInjected)
        .filter(|pod| {
            matches!(
                pod_state(&namespace_of(snapshot, &pod.namespace), pod, mesh),
                PodRevisionState::Stale { injected: None, .. }
            )
        })
        .map(|pod| format!("pod/{}/{}", pod.namespace, pod.name))
        .collect();
    Finding::none_of("MC0504", missing, |n| format!("{n} pod(s) should have a sidecar and do not"))
}

fn istiods_available(mesh: &Mesh) -> Finding {
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
    Finding::none_of("MC0601", down, |n| format!("{n} istiod problem(s)"))
}

fn webhooks_have_ca_bundles(snapshot: &Snapshot) -> Finding {
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
    Finding::none_of("MC0602", missing, |n| format!("{n} webhook configuration(s) have no caBundle"))
}

fn webhook_services_ready(snapshot: &Snapshot) -> Finding {
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
    Finding::none_of("MC0603", unready, |n| format!("{n} webhook Service(s) have no ready endpoints"))
}

fn pods_on_intended_revision(snapshot: &Snapshot, mesh: &Mesh) -> Finding {
    let stale: Vec<String> = snapshot
        .pods
        .iter()
        .filter_map(|pod| match pod_state(&namespace_of(snapshot, &pod.namespace), pod, mesh) {
            PodRevisionState::Stale { injected, intended } => Some(format!(
                "pod/{}/{}: has {}, wants {}",
                pod.namespace,
                pod.name,
                injected.map(|r| format!("a sidecar from {r}")).unwrap_or("no sidecar".into()),
                intended.map(|r| format!("one from {r}")).unwrap_or("none".into()),
            )),
            _ => None,
        })
        .collect();
    Finding::none_of("MC0604", stale, |n| format!("{n} pod(s) need a restart"))
}

fn revisions_in_use(snapshot: &Snapshot, mesh: &Mesh) -> Finding {
    let mut used: BTreeSet<&str> = mesh.tags.values().map(|t| t.revision.as_str()).collect();
    for ns in &snapshot.namespaces {
        if let Some(revision) = namespace_injection(&ns.labels).requested().and_then(|r| mesh.resolve(r)) {
            used.insert(revision);
        }
    }
    let injected: Vec<String> =
        snapshot.pods.iter().filter_map(|p| pod_injected(p).revision().map(str::to_string)).collect();
    used.extend(injected.iter().map(String::as_str));
    let unused: Vec<String> = mesh
        .installed_revisions()
        .filter(|r| !used.contains(r.name.as_str()) && Some(r.name.as_str()) != mesh.default_revision())
        .map(|r| format!("revision/{}", r.name))
        .collect();
    Finding::none_of("MC0605", unused, |n| format!("{n} revision(s) are not used by any tag, namespace or pod"))
}

#[cfg(test)]
mod tests;
