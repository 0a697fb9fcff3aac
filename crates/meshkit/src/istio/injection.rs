//! Which revision should inject a pod, which one did, and whether the pod is stale.
//!
//! Istio decides injection purely through webhook selectors; these rules are that decision,
//! written out:
//!
//! | namespace labels                      | pod labels                         | sidecar from         |
//! |---------------------------------------|------------------------------------|----------------------|
//! | `istio-injection=enabled` (+ any rev) | inject≠false (pod rev ignored)     | `default`            |
//! | `istio-injection=<other>`             | anything                           | none                 |
//! | `istio.io/rev=X`                      | inject≠false (pod rev ignored)     | X                    |
//! | neither                               | `istio.io/rev=X`, inject≠false     | X                    |
//! | neither                               | inject=true, no rev                | `default`            |
//! | neither                               | neither label                      | `default` if auto-injection is on and the namespace is not a system one |
//!
//! A tag name resolves to its revision through the mesh inventory.

use serde::Serialize;

use super::{Labels, Mesh, NamespaceView, PodView, keys};

/// What a namespace's labels ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "camelCase")]
pub enum NamespaceInjection {
    /// `istio-injection=enabled`: the default revision. `shadowed` is an `istio.io/rev` value the
    /// legacy label overrides.
    Default { shadowed: Option<String> },
    /// `istio-injection` set to anything but `enabled` turns injection off.
    Disabled { value: String },
    /// `istio.io/rev=X`, X a revision or a tag.
    Rev { name: String },
    /// No injection label.
    Unlabelled,
}

impl NamespaceInjection {
    /// The `istio.io/rev`-style name this namespace asks for, if it asks for one.
    pub fn requested(&self) -> Option<&str> {
        match self {
            NamespaceInjection::Default { .. } => Some(keys::DEFAULT_TAG),
            NamespaceInjection::Rev { name } => Some(name),
            _ => None,
        }
    }
}

pub fn namespace_injection(labels: &Labels) -> NamespaceInjection {
    let rev = labels.get(keys::REV).cloned();
    match labels.get(keys::INJECTION).map(String::as_str) {
        Some("enabled") => NamespaceInjection::Default { shadowed: rev },
        Some(other) => NamespaceInjection::Disabled { value: other.to_string() },
        None => match rev {
            Some(name) => NamespaceInjection::Rev { name },
            None => NamespaceInjection::Unlabelled,
        },
    }
}

/// Why a pod gets no sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NoSidecar {
    /// The namespace has `istio-injection` set to something other than `enabled`.
    NamespaceDisabled,
    /// The pod has `sidecar.istio.io/inject=false`.
    PodOptOut,
    /// Nothing selects it.
    NotSelected,
    /// istiod's handler skips it although a webhook selects it: a `sidecar.istio.io/inject=false`
    /// annotation (without the label, which wins), or a namespace it never injects.
    HandlerSkips,
}

/// Whether istiod's injection handler skips this pod whatever its webhooks select.
pub fn handler_skips(namespace: &str, pod: &PodView) -> bool {
    keys::NEVER_INJECTED_NAMESPACES.contains(&namespace)
        || (!pod.labels.contains_key(keys::SIDECAR_INJECT)
            && pod.annotations.get(keys::SIDECAR_INJECT).map(String::as_str) == Some("false"))
}

/// The sidecar a pod should have, from the labels alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Intended {
    None {
        reason: NoSidecar,
    },
    /// `via` is the name as written in a label (a tag or a revision); `revision` is where it
    /// resolves, `None` when it names nothing installed.
    Sidecar {
        via: String,
        revision: Option<String>,
    },
}

impl Intended {
    pub fn revision(&self) -> Option<&str> {
        match self {
            Intended::Sidecar { revision, .. } => revision.as_deref(),
            Intended::None { .. } => None,
        }
    }
}

/// The revision or tag a pod's own labels ask for, which counts only in a namespace without
/// injection labels: `istio.io/rev=X` (unless `sidecar.istio.io/inject=false`), or the default
/// for `sidecar.istio.io/inject=true` without a revision. Auto-injection of unlabelled pods is
/// not a request (see [`pod_intended`]).
pub fn pod_requested(pod_labels: &Labels) -> Option<&str> {
    let inject = pod_labels.get(keys::SIDECAR_INJECT).map(String::as_str);
    match pod_labels.get(keys::REV) {
        _ if inject == Some("false") => None,
        Some(rev) => Some(rev),
        None if inject == Some("true") => Some(keys::DEFAULT_TAG),
        None => None,
    }
}

pub fn pod_intended(namespace: &NamespaceView, pod_labels: &Labels, mesh: &Mesh) -> Intended {
    let opted_out = pod_labels.get(keys::SIDECAR_INJECT).map(String::as_str) == Some("false");
    let sidecar =
        |via: &str| Intended::Sidecar { via: via.to_string(), revision: mesh.resolve(via).map(str::to_string) };
    let none = |reason| Intended::None { reason };
    match namespace_injection(&namespace.labels) {
        NamespaceInjection::Disabled { .. } => none(NoSidecar::NamespaceDisabled),
        _ if opted_out => none(NoSidecar::PodOptOut),
        NamespaceInjection::Default { .. } => sidecar(keys::DEFAULT_TAG),
        NamespaceInjection::Rev { name } => sidecar(&name),
        NamespaceInjection::Unlabelled => {
            let auto_injected = mesh.auto_inject
                && !pod_labels.contains_key(keys::SIDECAR_INJECT)
                && !keys::NEVER_INJECTED_NAMESPACES.contains(&namespace.name.as_str());
            match pod_requested(pod_labels) {
                Some(name) => sidecar(name),
                None if auto_injected => sidecar(keys::DEFAULT_TAG),
                None => none(NoSidecar::NotSelected),
            }
        }
    }
}

/// Where a pod opts out of injection, if it does: Istio's webhooks skip pods labelled
/// `sidecar.istio.io/inject=false` (object selector), and its webhook handler also skips pods
/// annotated so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum OptOut {
    Label,
    Annotation,
}

pub fn pod_opt_out(pod: &PodView) -> Option<OptOut> {
    let off = |map: &Labels| map.get(keys::SIDECAR_INJECT).map(String::as_str) == Some("false");
    if off(&pod.labels) {
        Some(OptOut::Label)
    } else if off(&pod.annotations) {
        Some(OptOut::Annotation)
    } else {
        None
    }
}

/// The sidecar a pod actually has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Injected {
    NotInjected,
    /// Injected by this revision (never a tag: the injector records the real revision).
    Revision {
        revision: String,
    },
    /// A proxy container without the injector's annotations (hand-written or foreign).
    Unknown,
}

impl Injected {
    pub fn revision(&self) -> Option<&str> {
        match self {
            Injected::Revision { revision } => Some(revision),
            _ => None,
        }
    }
}

/// Whether pods with these annotations are injected with the gateway template: the Deployments
/// of Istio's gateway chart, and any other injected gateway.
pub fn asks_for_gateway_template(annotations: &Labels) -> bool {
    annotations.get(keys::INJECT_TEMPLATES).is_some_and(|t| t.split(',').any(|t| t.trim() == keys::GATEWAY_TEMPLATE))
}

pub fn pod_injected(pod: &PodView) -> Injected {
    if let Some(rev) = pod.annotations.get(keys::REV).filter(|r| !r.is_empty()) {
        return Injected::Revision { revision: rev.clone() };
    }
    if let Some(status) = pod.annotations.get(keys::SIDECAR_STATUS) {
        let revision = serde_json::from_str::<serde_json::Value>(status)
            .ok()
            .and_then(|v| v.get("revision")?.as_str().map(str::to_string))
            .filter(|r| !r.is_empty())
            // Injectors from before revisions existed wrote no revision.
            .unwrap_or_else(|| keys::DEFAULT_REVISION.to_string());
        return Injected::Revision { revision };
    }
    let has_proxy = pod.containers.iter().chain(&pod.init_containers).any(|c| c.name == keys::PROXY_CONTAINER);
    if has_proxy { Injected::Unknown } else { Injected::NotInjected }
}

/// Whether a pod's sidecar matches what its labels ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum PodRevisionState {
    UpToDate,
    /// A restart would change its sidecar: add, remove or move it to another revision, or give
    /// it the proxy its revision injects now.
    Stale {
        injected: Option<String>,
        intended: Option<String>,
        /// In a phrase: `revision moved 1-30-3 → 1-31-1`, `proxy 1.30.2, revision 1-30-3 now injects 1.30.3`.
        reason: String,
    },
    /// The labels name a tag or revision that is not installed, or the proxy is not Istio's:
    /// nothing to compare against.
    Unresolved,
}

pub fn pod_state(namespace: &NamespaceView, pod: &PodView, mesh: &Mesh) -> PodRevisionState {
    let intended = match pod_intended(namespace, &pod.labels, mesh) {
        Intended::Sidecar { .. } if handler_skips(&namespace.name, pod) => {
            Intended::None { reason: NoSidecar::HandlerSkips }
        }
        other => other,
    };
    let injected = pod_injected(pod);
    let wanted = match &intended {
        Intended::Sidecar { revision: None, .. } => return PodRevisionState::Unresolved,
        other => other.revision(),
    };
    if injected == Injected::Unknown {
        return PodRevisionState::Unresolved;
    }
    let stale = |reason: String| PodRevisionState::Stale {
        injected: injected.revision().map(str::to_string),
        intended: wanted.map(str::to_string),
        reason,
    };
    match (injected.revision(), wanted) {
        (now, wanted) if now == wanted => {
            let injects = now.and_then(|r| mesh.injects.get(r));
            let changed = injects
                .and_then(|i| super::injects::stale_image(pod, i).or_else(|| super::injects::stale_template(pod, i)));
            changed.map_or(PodRevisionState::UpToDate, stale)
        }
        (Some(now), Some(wanted)) => stale(format!("revision moved {now} → {wanted}")),
        (None, Some(wanted)) => stale(format!("no sidecar; its labels ask for one from {wanted}")),
        (Some(now), None) => stale(format!("a sidecar from {now}; its labels ask for none")),
        (None, None) => PodRevisionState::UpToDate,
    }
}

#[cfg(test)]
#[path = "injection_tests.rs"]
mod tests;
