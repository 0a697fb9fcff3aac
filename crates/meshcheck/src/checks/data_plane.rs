//! Precheck: proxy versions against their control plane, injection, and room for a second istiod.

use std::collections::BTreeMap;

use meshkit::istio::support::MAX_PROXY_LAG;
use meshkit::istio::{
    Injected, IstioVersion, Mesh, PodRevisionState, Requests, pod_injected, pod_state, proxy_version,
};

use super::Context;
use super::check::Check;
use super::namespace_of;
use super::report::Finding;
use crate::snapshot::Snapshot;

/// What Istio's chart requests for istiod when values do not say otherwise.
const DEFAULT_ISTIOD_REQUESTS: Requests = Requests { cpu_millis: 500, memory_bytes: 2048 * 1024 * 1024 };

pub fn proxies_not_newer(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let mesh = cx.mesh;
    let newer: Vec<String> = versioned_proxies(snapshot, mesh)
        .into_iter()
        .filter(|(_, proxy, control)| proxy.minor_version() > control.minor_version())
        .map(|(pod, proxy, control)| format!("{pod}: proxy {proxy}, control plane {control}"))
        .collect();
    Finding::none_of(check, newer, |n| format!("{n} proxy(ies) are newer than their control plane"))
}

pub fn proxies_within_skew(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let mesh = cx.mesh;
    let behind: Vec<String> = versioned_proxies(snapshot, mesh)
        .into_iter()
        .filter(|(_, proxy, control)| proxy.major == control.major && control.minor > proxy.minor + MAX_PROXY_LAG)
        .map(|(pod, proxy, control)| format!("{pod}: proxy {proxy}, control plane {control}"))
        .collect();
    Finding::none_of(check, behind, |n| {
        format!("{n} proxy(ies) lag their control plane by more than {MAX_PROXY_LAG} minors")
    })
}

pub fn injected_by_installed_revisions(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let mesh = cx.mesh;
    let orphans: Vec<String> = snapshot
        .pods
        .iter()
        .filter_map(|pod| {
            let revision = pod_injected(pod).revision()?.to_string();
            (!mesh.revisions.get(&revision).is_some_and(|r| r.installed()))
                .then(|| format!("pod/{}/{} (injected by {revision})", pod.namespace, pod.name))
        })
        .collect();
    Finding::none_of(check, orphans, |n| format!("{n} pod(s) were injected by a revision that is gone"))
}

pub fn injected_namespaces_have_proxies(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let mesh = cx.mesh;
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
    Finding::none_of(check, missing, |n| format!("{n} pod(s) should have a sidecar and do not"))
}

pub fn room_for_istiod(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let nodes = match &snapshot.nodes {
        Ok(nodes) => nodes,
        Err(why) => return Finding::skipped(check, why.clone()),
    };
    if nodes.is_empty() {
        return Finding::skipped(
            check,
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
            check,
            format!("node {node} has {cpu}m CPU and {}Mi memory free; istiod asks {need}", mib(*memory)),
        ),
        None => Finding::fail(
            check,
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
