//! Why a pod is (or would be) injected, and by which revision, as the apiserver decides it: every
//! injector entry's namespace and object selectors evaluated against the namespace's and the
//! pod's labels (what `istioctl x check-inject` does), then the opt-outs istiod's webhook handler
//! applies after the selectors, then whether the pod's sidecar is stale and why.

use serde::Serialize;

use super::{Labels, Mesh, NamespaceView, PodRevisionState, PodView, SelectorOp, WebhookConfigView, keys};

/// One injector configuration's answer for a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAnswer {
    /// The MutatingWebhookConfiguration.
    pub configuration: String,
    /// The entry that selects the pod, if one does.
    pub entry: Option<String>,
    /// The revision its configuration belongs to (`istio.io/rev`), and its tag if it is a tag's.
    pub revision: Option<String>,
    pub tag: Option<String>,
    pub selects: bool,
    /// Through which labels, or why not.
    pub reason: String,
}

/// Everything `explain` says about one pod (or about a new pod with the given labels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub namespace: String,
    /// `None`: a new pod with no labels in this namespace.
    pub pod: Option<String>,
    /// The revision that injects it on its next creation; `None`: it gets no sidecar.
    pub injects: Option<String>,
    /// In a phrase: `namespace label istio.io/rev=prod-canary (tag prod-canary → 1-31-1)`.
    pub via: Option<String>,
    /// Opt-outs that apply (each stops injection).
    pub opt_outs: Vec<String>,
    /// More than one configuration selects it: the pod would be injected twice (an error).
    pub conflict: bool,
    pub webhooks: Vec<WebhookAnswer>,
    /// The revision that injected the pod as it runs now.
    pub injected: Option<String>,
    /// `upToDate`, `stale`, `unresolved` (labels name nothing installed), or `new`.
    pub state: String,
    pub stale_reason: Option<String>,
}

fn requirement_labels(selector: &super::LabelSelector, labels: &Labels, whose: &str) -> impl Iterator<Item = String> {
    selector
        .requirements
        .iter()
        .filter(|r| matches!(r.op, SelectorOp::In | SelectorOp::Exists))
        .filter_map(move |r| labels.get(&r.key).map(|v| format!("{whose} label {}={v}", r.key)))
}

fn answer(config: &WebhookConfigView, namespace: &Labels, pod: &Labels) -> WebhookAnswer {
    let mut why_not = Vec::new();
    let mut aimed_seen = false;
    let mut chosen = None;
    for entry in config.injectors() {
        let ns_ok = entry.namespace_selector.matches(namespace);
        let pod_ok = entry.object_selector.matches(pod);
        if ns_ok && pod_ok {
            let through: Vec<String> = requirement_labels(&entry.namespace_selector, namespace, "namespace")
                .filter(|l| !l.contains("kubernetes.io/metadata.name"))
                .chain(requirement_labels(&entry.object_selector, pod, "pod"))
                .collect();
            let reason = if through.is_empty() {
                "no injection label: the entry selects every namespace not excluded (auto-injection)".to_string()
            } else {
                through.join(" and ")
            };
            chosen = Some((entry.name.clone(), reason));
            break;
        }
        // What stopped it: a label the entry's selectors exclude. An entry whose positive
        // requirements hold was aimed at this pod; only those explain it when there are some.
        let positive_hold = |selector: &super::LabelSelector, labels: &Labels| {
            selector
                .requirements
                .iter()
                .filter(|r| matches!(r.op, SelectorOp::In | SelectorOp::Exists))
                .all(|r| labels.get(&r.key).is_some_and(|v| r.op == SelectorOp::Exists || r.values.contains(v)))
        };
        let aimed = positive_hold(&entry.namespace_selector, namespace) && positive_hold(&entry.object_selector, pod);
        if aimed && !aimed_seen {
            aimed_seen = true;
            why_not.clear();
        } else if aimed_seen && !aimed {
            continue;
        }
        for (selector, labels, whose, ok) in
            [(&entry.namespace_selector, namespace, "namespace", ns_ok), (&entry.object_selector, pod, "pod", pod_ok)]
        {
            if ok {
                continue;
            }
            for r in &selector.requirements {
                let value = labels.get(&r.key);
                let blocked = match r.op {
                    SelectorOp::NotIn => value.is_some_and(|v| r.values.contains(v)),
                    SelectorOp::DoesNotExist => value.is_some(),
                    _ => false,
                };
                if blocked {
                    why_not.push(format!("{whose} label {}={} excludes it", r.key, value.cloned().unwrap_or_default()));
                }
            }
        }
    }
    let deactivated = config.is_deactivated();
    let (entry, selects, reason) = match chosen {
        Some((entry, reason)) => (Some(entry), true, reason),
        None if deactivated => (None, false, "deactivated: its entries never match".to_string()),
        None => {
            why_not.sort();
            why_not.dedup();
            let reason = if why_not.is_empty() { "no label it selects on".to_string() } else { why_not.join("; ") };
            (None, false, reason)
        }
    };
    WebhookAnswer {
        configuration: config.name.clone(),
        entry,
        revision: config.labels.get(keys::REV).cloned(),
        tag: config.labels.get(keys::TAG).cloned(),
        selects,
        reason,
    }
}

/// The labels users set to keep injection off, which the injectors' selectors exclude.
fn label_opt_outs(namespace: &Labels, pod: &Labels) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(value) = namespace.get(keys::INJECTION).filter(|v| *v != "enabled") {
        out.push(format!("namespace label {}={value}", keys::INJECTION));
    }
    if pod.get(keys::SIDECAR_INJECT).map(String::as_str) == Some("false") {
        out.push(format!("pod label {}=false", keys::SIDECAR_INJECT));
    }
    out
}

/// The opt-outs istiod's handler applies to a pod its webhook was called for.
fn handler_opt_outs(namespace: &str, pod: Option<&PodView>) -> Vec<String> {
    let mut out = Vec::new();
    if keys::NEVER_INJECTED_NAMESPACES.contains(&namespace) {
        out.push(format!("namespace {namespace}: istiod never injects there"));
    }
    if let Some(pod) = pod
        && !keys::NEVER_INJECTED_NAMESPACES.contains(&namespace)
        && super::handler_skips(namespace, pod)
    {
        out.push(format!("pod annotation {}=false", keys::SIDECAR_INJECT));
    }
    out
}

/// Explains `pod` (or, with `None`, a new pod with no labels) in `namespace`.
pub fn explain(
    namespace: &NamespaceView,
    pod: Option<&PodView>,
    mesh: &Mesh,
    configs: &[WebhookConfigView],
) -> Explanation {
    let mut namespace_labels = namespace.labels.clone();
    // The apiserver sets it on every namespace; selectors rely on it.
    namespace_labels.entry("kubernetes.io/metadata.name".into()).or_insert_with(|| namespace.name.clone());
    let no_labels = Labels::new();
    let pod_labels = pod.map_or(&no_labels, |p| &p.labels);
    let webhooks: Vec<WebhookAnswer> = configs
        .iter()
        .filter(|c| c.injectors().next().is_some())
        .map(|c| answer(c, &namespace_labels, pod_labels))
        .collect();
    let selecting: Vec<&WebhookAnswer> = webhooks.iter().filter(|w| w.selects).collect();
    let mut opt_outs = label_opt_outs(&namespace.labels, pod_labels);
    let handler = handler_opt_outs(&namespace.name, pod);
    let (injects, via) = match selecting.first() {
        Some(w) if handler.is_empty() => {
            let revision =
                w.revision.clone().or_else(|| w.tag.as_deref().and_then(|t| mesh.resolve(t)).map(str::to_string));
            let through = match (&w.tag, &revision) {
                (Some(tag), Some(rev)) => format!("{} (tag {tag} → {rev}, {})", w.reason, w.configuration),
                _ => format!("{} ({})", w.reason, w.configuration),
            };
            (revision, Some(through))
        }
        _ => (None, None),
    };
    opt_outs.extend(handler);
    let (injected, state, stale_reason) = match pod {
        None => (None, "new".to_string(), None),
        Some(p) => {
            let injected = super::pod_injected(p).revision().map(str::to_string);
            match super::pod_state(namespace, p, mesh) {
                PodRevisionState::UpToDate => (injected, "upToDate".to_string(), None),
                PodRevisionState::Stale { reason, .. } => (injected, "stale".to_string(), Some(reason)),
                PodRevisionState::Unresolved => (injected, "unresolved".to_string(), None),
            }
        }
    };
    Explanation {
        namespace: namespace.name.clone(),
        pod: pod.map(|p| p.name.clone()),
        injects,
        via,
        opt_outs,
        conflict: selecting.len() > 1,
        webhooks,
        injected,
        state,
        stale_reason,
    }
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;
