//! Decide: every check is a pure function of the snapshot (and the options).

use std::collections::{BTreeMap, BTreeSet};

use meshkit::install::Manager;
use meshkit::istio::apis;
use meshkit::istio::support::{MAX_PROXY_LAG, Support, kubernetes_support, support_window};
use meshkit::istio::{
    Injected, IstioVersion, Mesh, NamespaceInjection, NamespaceView, PodRevisionState, injection_overlaps, keys,
    namespace_injection, pod_injected, pod_state, proxy_version,
};

use meshkit::istio::Requests;

mod defaults;
mod live;

use crate::catalogue::{self, Check};
use crate::report::{Finding, Installation, Report};
use crate::snapshot::Snapshot;

/// What Istio's chart requests for istiod when values do not say otherwise.
const DEFAULT_ISTIOD_REQUESTS: Requests = Requests { cpu_millis: 500, memory_bytes: 2048 * 1024 * 1024 };

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--to-version 1.Y`: the Istio being upgraded to.
    pub to_version: Option<IstioVersion>,
    /// `--revision REV`: the revision name the canary will get.
    pub revision: Option<String>,
    /// `verify --stale-after`: how long a proxy may leave a push unacknowledged (default 1m).
    pub stale_after: Option<std::time::Duration>,
}

pub fn precheck(snapshot: &Snapshot, options: &Options) -> Report {
    let mesh = snapshot.mesh();
    let findings = vec![
        kubernetes_version(snapshot, &mesh, options),
        permissions(snapshot),
        revision_name_free(&mesh, options),
        tags_resolve(&mesh),
        namespaces_resolve(snapshot, &mesh),
        no_operator_leftovers(snapshot),
        defaults::default_agrees(&catalogue::MC0305, snapshot),
        defaults::no_leftovers(&catalogue::MC0306, snapshot, &mesh),
        both_injection_labels(snapshot),
        no_overlaps(snapshot, &mesh),
        injector_services_exist(snapshot),
        gateway_api_versions(snapshot),
        gateway_api_bundle_minimums(snapshot, &mesh, options),
        stored_versions_served(snapshot, target_version(&mesh, options).as_ref()),
        no_deprecated_annotations(snapshot),
        no_superseded_api_versions(snapshot),
        proxies_not_newer(snapshot, &mesh),
        proxies_within_skew(snapshot, &mesh),
        injected_by_installed_revisions(snapshot, &mesh),
        injected_namespaces_have_proxies(snapshot, &mesh),
        room_for_istiod(snapshot),
    ];
    Report { findings, installation: Some(installation(snapshot, &mesh)) }
}

pub fn verify(snapshot: &Snapshot, options: &Options) -> Report {
    let mesh = snapshot.mesh();
    let live = live::Live::read(snapshot, &mesh);
    let findings = vec![
        istiods_available(&mesh),
        webhooks_have_ca_bundles(snapshot),
        webhook_services_ready(snapshot),
        tags_resolve(&mesh),
        namespaces_resolve(snapshot, &mesh),
        pods_on_intended_revision(snapshot, &mesh),
        revisions_in_use(snapshot, &mesh),
        defaults::default_agrees(&catalogue::MC0606, snapshot),
        defaults::no_leftovers(&catalogue::MC0607, snapshot, &mesh),
        live::connected_to_injector(&catalogue::MC0608, live.as_ref()),
        live::in_sync(&catalogue::MC0609, live.as_ref(), options.stale_after),
    ];
    Report { findings, installation: Some(installation(snapshot, &mesh)) }
}

fn namespace_of(snapshot: &Snapshot, name: &str) -> NamespaceView {
    NamespaceView::find_in(&snapshot.namespaces, name)
}

/// `, managed by helm:istio-system/istiod-1-30-3`, or nothing when no installer left its marks.
fn managed(manager: &Manager) -> String {
    match manager {
        Manager::None => String::new(),
        m => format!(", managed by {m}"),
    }
}

/// What is installed, for the report's header.
fn installation(snapshot: &Snapshot, mesh: &Mesh) -> Installation {
    let default = mesh.default_revision();
    Installation {
        revisions: mesh
            .installed_revisions()
            .map(|r| {
                let version = r.version.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "unknown version".into());
                let default = if default == Some(r.name.as_str()) { ", default" } else { "" };
                format!("{} ({version}{default}{})", r.name, managed(&r.managed_by))
            })
            .collect(),
        tags: mesh
            .tags
            .values()
            .map(|t| match &t.managed_by {
                Manager::None => format!("{} → {}", t.name, t.revision),
                m => format!("{} → {} (managed by {m})", t.name, t.revision),
            })
            .collect(),
        helm_releases: snapshot.helm_releases.clone().unwrap_or_else(|why| vec![format!("unknown ({why})")]),
        istio_operators: snapshot.istio_operators.clone().unwrap_or_else(|why| vec![format!("unknown ({why})")]),
    }
}

/// `--to-version`, else the newest installed revision's version.
fn target_version(mesh: &Mesh, options: &Options) -> Option<IstioVersion> {
    options.to_version.clone().or_else(|| mesh.installed_revisions().filter_map(|r| r.version.clone()).max())
}

fn kubernetes_version(snapshot: &Snapshot, mesh: &Mesh, options: &Options) -> Finding {
    const CODE: &Check = &catalogue::MC0101;
    let Some((_, minor)) = snapshot.kubernetes else {
        return Finding::skipped(
            CODE,
            format!("the server reports an unreadable version {:?}", snapshot.kubernetes_version),
        );
    };
    let Some(target) = target_version(mesh, options) else {
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
    const CODE: &Check = &catalogue::MC0201;
    let Some(permissions) = &snapshot.permissions else {
        return Finding::skipped(CODE, "permissions were not reviewed");
    };
    let missing: Vec<String> = permissions.iter().filter(|p| !p.allowed).map(|p| p.describe()).collect();
    Finding::none_of(CODE, missing, |n| {
        format!("{n} of {} permissions an upgrade needs are missing", permissions.len())
    })
}

fn revision_name_free(mesh: &Mesh, options: &Options) -> Finding {
    const CODE: &Check = &catalogue::MC0301;
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
    Finding::none_of(&catalogue::MC0302, dangling, |n| format!("{n} tag(s) point at a revision that is not installed"))
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
    Finding::none_of(&catalogue::MC0303, lost, |n| {
        format!("{n} namespace(s) ask for a revision or tag that does not exist; new pods there get no sidecar")
    })
}

fn no_operator_leftovers(snapshot: &Snapshot) -> Finding {
    let operators = match &snapshot.istio_operators {
        Ok(operators) => operators,
        Err(why) => return Finding::skipped(&catalogue::MC0304, why.clone()),
    };
    let leftovers: Vec<String> = operators.iter().map(|o| format!("istiooperator/{o}")).collect();
    Finding::none_of(&catalogue::MC0304, leftovers, |n| format!("{n} IstioOperator resource(s) remain"))
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
    Finding::none_of(&catalogue::MC0401, both, |n| format!("{n} namespace(s) carry both labels"))
}

fn no_overlaps(snapshot: &Snapshot, mesh: &Mesh) -> Finding {
    let mut names: BTreeSet<String> = mesh.revisions.keys().chain(mesh.tags.keys()).cloned().collect();
    names.extend(snapshot.namespaces.iter().filter_map(|ns| ns.labels.get(keys::REV).cloned()));
    let overlaps: Vec<String> = injection_overlaps(&snapshot.mutating, &names).iter().map(|o| o.describe()).collect();
    Finding::none_of(&catalogue::MC0402, overlaps, |n| format!("{n} pair(s) of injector webhooks overlap"))
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
    Finding::none_of(&catalogue::MC0403, missing.into_iter().collect(), |n| {
        format!("{n} webhook(s) call a Service that does not exist")
    })
}

fn gateway_api_versions(snapshot: &Snapshot) -> Finding {
    const CODE: &Check = &catalogue::MC0404;
    let crds = match &snapshot.gateway_crds {
        Ok(crds) => crds,
        Err(why) => return Finding::skipped(CODE, why.clone()),
    };
    if crds.is_empty() {
        return Finding::pass_with(CODE, "the Gateway API is not installed");
    }
    let lacking = |kinds: &[&str], version: &str| -> Vec<String> {
        crds.iter()
            .filter(|c| kinds.contains(&c.kind.as_str()) && !c.served.iter().any(|v| v == version))
            .map(|c| format!("crd/{} does not serve {version} (serves {})", c.kind, c.served.join(", ")))
            .collect()
    };
    // Istio reads these through v1beta1 (IST0156) and is moving them to v1 (IST0172).
    let errors = lacking(&["Gateway", "GatewayClass", "HTTPRoute", "ReferenceGrant"], "v1beta1");
    let warnings = lacking(&["Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute"], "v1");
    let bundles: std::collections::BTreeSet<&str> = crds.iter().filter_map(|c| c.bundle_version.as_deref()).collect();
    let bundle = bundles.into_iter().collect::<Vec<_>>().join(", ");
    if !errors.is_empty() {
        Finding::fail(
            CODE,
            format!("Gateway API CRDs (bundle {bundle}) lack versions Istio reads"),
            [errors, warnings].concat(),
        )
    } else if !warnings.is_empty() {
        Finding::warn(CODE, format!("Gateway API CRDs (bundle {bundle}) do not serve v1 yet"), warnings)
    } else {
        Finding::pass_with(CODE, format!("Gateway API bundle {bundle}"))
    }
}

fn stored_versions_served(snapshot: &Snapshot, target: Option<&IstioVersion>) -> Finding {
    const CODE: &Check = &catalogue::MC0405;
    let crds = match &snapshot.istio_crds {
        Ok(crds) => crds,
        Err(why) => return Finding::skipped(CODE, why.clone()),
    };
    let mut unserved = Vec::new();
    for crd in crds {
        for version in &crd.stored {
            if !crd.served.contains(version) {
                unserved.push(format!("crd/{}: stored as {version}, which it no longer serves", crd.name));
            } else if let Some(target) = target
                && let Some(served) = apis::served_by(target, &crd.name)
                && !served.contains(&version.as_str())
            {
                unserved.push(format!(
                    "crd/{}: stored as {version}, which Istio {}.{} does not serve",
                    crd.name, target.major, target.minor
                ));
            }
        }
    }
    if crds.is_empty() {
        return Finding::pass_with(CODE, "no Istio CRDs are installed");
    }
    Finding::none_of(CODE, unserved, |n| format!("{n} stored version(s) are no longer served"))
}

fn gateway_api_bundle_minimums(snapshot: &Snapshot, mesh: &Mesh, options: &Options) -> Finding {
    const CODE: &Check = &catalogue::MC0407;
    let crds = match &snapshot.gateway_crds {
        Ok(crds) => crds,
        Err(why) => return Finding::skipped(CODE, why.clone()),
    };
    if crds.is_empty() {
        return Finding::pass_with(CODE, "the Gateway API is not installed");
    }
    let Some(target) = target_version(mesh, options) else {
        return Finding::skipped(CODE, "no Istio installed and no --to-version given");
    };
    let istio = format!("{}.{}", target.major, target.minor);
    if !apis::gateway_api_minimums_known(&target) {
        return Finding::pass_with(CODE, format!("no Gateway API minimums recorded for Istio {istio}"));
    }
    let below: Vec<String> = crds
        .iter()
        .filter_map(|crd| {
            let (a, b, c) = apis::gateway_api_minimum(&target, &crd.name)?;
            let installed = crd.bundle_version.as_deref().and_then(apis::parse_bundle_version);
            match installed {
                Some(found) if found >= (a, b, c) => None,
                Some(_) => Some(format!(
                    "crd/{} is bundle {}; Istio {istio} needs v{a}.{b}.{c}",
                    crd.name,
                    crd.bundle_version.as_deref().unwrap_or_default()
                )),
                None => Some(format!("crd/{} has no readable bundle-version; Istio {istio} ignores it", crd.name)),
            }
        })
        .collect();
    Finding::none_of(CODE, below, |n| format!("Istio {istio} would ignore {n} Gateway API CRD(s) and their objects"))
}

fn no_superseded_api_versions(snapshot: &Snapshot) -> Finding {
    const CODE: &Check = &catalogue::MC0408;
    let (crds, objects) = match (&snapshot.istio_crds, &snapshot.istio_objects) {
        (Ok(crds), Ok(objects)) => (crds, objects),
        (Err(why), _) | (_, Err(why)) => return Finding::skipped(CODE, why.clone()),
    };
    let mut found: Vec<String> = crds
        .iter()
        .filter_map(|crd| {
            let release = apis::removed_in(&crd.group)?;
            Some(format!("crd/{}: API group removed in Istio {release}; nothing reads it", crd.name))
        })
        .collect();
    for object in objects {
        let Some(crd) = crds.iter().find(|c| c.name == object.crd) else { continue };
        let old: Vec<String> = object
            .written
            .iter()
            .filter(|(api_version, _)| {
                let version = api_version.rsplit('/').next().unwrap_or_default();
                apis::superseded(version, &crd.served)
            })
            .map(|(api_version, writer)| format!("{api_version} by {writer}"))
            .collect();
        if !old.is_empty() {
            let kind = crd.kind.to_ascii_lowercase();
            found.push(format!("{kind}/{}/{}: written as {}", object.namespace, object.name, old.join(", ")));
        }
    }
    Finding::none_of(CODE, found, |n| format!("{n} Istio object(s) or CRD(s) use superseded or removed APIs"))
}

fn no_deprecated_annotations(snapshot: &Snapshot) -> Finding {
    use meshkit::istio::deprecated::{deprecated_annotations, set_by_istio_charts};
    let (mut found, mut charts) = (Vec::new(), 0);
    for pod in &snapshot.pods {
        let deprecated = deprecated_annotations("Pod", pod.annotations.keys());
        if deprecated.is_empty() {
            continue;
        }
        if set_by_istio_charts(pod) {
            charts += 1;
        } else {
            found.push(format!("pod/{}/{}: {}", pod.namespace, pod.name, deprecated.join(", ")));
        }
    }
    let finding =
        Finding::none_of(&catalogue::MC0406, found, |n| format!("{n} pod(s) carry deprecated Istio annotations"));
    match (finding.outcome, charts) {
        (crate::report::Outcome::Pass, 1..) => Finding::pass_with(
            &catalogue::MC0406,
            format!(
                "{charts} pod(s) of Istio's own charts (istiod, gateways) carry them: their charts set them, nothing to do"
            ),
        ),
        _ => finding,
    }
}

fn room_for_istiod(snapshot: &Snapshot) -> Finding {
    const CODE: &Check = &catalogue::MC0505;
    let nodes = match &snapshot.nodes {
        Ok(nodes) => nodes,
        Err(why) => return Finding::skipped(CODE, why.clone()),
    };
    if nodes.is_empty() {
        return Finding::skipped(
            CODE,
            "the cluster has no nodes to place an istiod on (a control plane without workers?)",
        );
    }
    let wanted = snapshot
        .istiods
        .iter()
        .map(|i| i.requests)
        .max_by_key(|r| (r.cpu_millis, r.memory_bytes))
        .filter(|r| r.cpu_millis > 0 || r.memory_bytes > 0)
        .unwrap_or(DEFAULT_ISTIOD_REQUESTS);
    let mut used: BTreeMap<&str, Requests> = BTreeMap::new();
    for pod in snapshot.pods.iter().filter(|p| !p.finished) {
        if let Some(node) = pod.node.as_deref() {
            let entry = used.entry(node).or_default();
            entry.cpu_millis += pod.requests.cpu_millis;
            entry.memory_bytes += pod.requests.memory_bytes;
        }
    }
    let mib = |bytes: u64| bytes / (1024 * 1024);
    let free: Vec<(String, u64, u64)> = nodes
        .iter()
        .filter(|n| n.schedulable)
        .map(|n| {
            let u = used.get(n.name.as_str()).copied().unwrap_or_default();
            (
                n.name.clone(),
                n.allocatable.cpu_millis.saturating_sub(u.cpu_millis),
                n.allocatable.memory_bytes.saturating_sub(u.memory_bytes),
            )
        })
        .collect();
    let need = format!("{}m CPU and {}Mi memory", wanted.cpu_millis, mib(wanted.memory_bytes));
    match free.iter().find(|(_, cpu, memory)| *cpu >= wanted.cpu_millis && *memory >= wanted.memory_bytes) {
        Some((node, cpu, memory)) => Finding::pass_with(
            CODE,
            format!("node {node} has {cpu}m CPU and {}Mi memory free; istiod asks {need}", mib(*memory)),
        ),
        None => Finding::fail(
            CODE,
            format!("no schedulable node has {need} free"),
            free.iter().map(|(n, cpu, memory)| format!("node/{n}: {cpu}m CPU, {}Mi free", mib(*memory))).collect(),
        ),
    }
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
    Finding::none_of(&catalogue::MC0501, newer, |n| format!("{n} proxy(ies) are newer than their control plane"))
}

fn proxies_within_skew(snapshot: &Snapshot, mesh: &Mesh) -> Finding {
    let behind: Vec<String> = versioned_proxies(snapshot, mesh)
        .into_iter()
        .filter(|(_, proxy, control)| proxy.major == control.major && control.minor > proxy.minor + MAX_PROXY_LAG)
        .map(|(pod, proxy, control)| format!("{pod}: proxy {proxy}, control plane {control}"))
        .collect();
    Finding::none_of(&catalogue::MC0502, behind, |n| {
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
    Finding::none_of(&catalogue::MC0503, orphans, |n| format!("{n} pod(s) were injected by a revision that is gone"))
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
    Finding::none_of(&catalogue::MC0504, missing, |n| format!("{n} pod(s) should have a sidecar and do not"))
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
    Finding::none_of(&catalogue::MC0601, down, |n| format!("{n} istiod problem(s)"))
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
    Finding::none_of(&catalogue::MC0602, missing, |n| format!("{n} webhook configuration(s) have no caBundle"))
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
    Finding::none_of(&catalogue::MC0603, unready, |n| format!("{n} webhook Service(s) have no ready endpoints"))
}

fn pods_on_intended_revision(snapshot: &Snapshot, mesh: &Mesh) -> Finding {
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
    Finding::none_of(&catalogue::MC0604, stale, |n| format!("{n} pod(s) need a restart"))
}

fn revisions_in_use(snapshot: &Snapshot, mesh: &Mesh) -> Finding {
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
    Finding::none_of(&catalogue::MC0605, unused, |n| {
        format!("{n} revision(s) are not used by any tag, namespace or pod")
    })
}

#[cfg(test)]
mod tests;
