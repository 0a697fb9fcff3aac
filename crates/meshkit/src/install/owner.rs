//! Who manages an object: read from its labels, annotations and owner references, the marks each
//! installer leaves. Pure: the same answer for a live object and for one in a manifest.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

pub const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";
pub const HELM_RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";
/// Helm leaves an object with this policy in place when it would otherwise delete it.
pub const HELM_RESOURCE_POLICY: &str = "helm.sh/resource-policy";
pub const HELM_KEEP: &str = "keep";
/// Labels Istio's charts stamp on what Helm renders; they claim the object for a release.
pub const HELM_CHART_LABELS: [&str; 3] = ["helm.sh/chart", "app.kubernetes.io/instance", "release"];
const ISTIOCTL_MANAGED: &str = "operator.istio.io/managed";
const SAIL_LABEL: (&str, &str) = ("managed-by", "sail-operator");
const SAIL_API_GROUP: &str = "sailoperator.io/";
const ARGO_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
/// Argo CD's label tracking mode with a custom key. Its default key, `app.kubernetes.io/instance`,
/// is also what Istio's charts set to the Helm release name, so it proves nothing and is ignored.
const ARGO_INSTANCE_LABEL: &str = "argocd.argoproj.io/instance";
const FLUX_KUSTOMIZE: &str = "kustomize.toolkit.fluxcd.io/name";
const FLUX_HELM: &str = "helm.toolkit.fluxcd.io/name";
/// What we write in `app.kubernetes.io/managed-by` on objects our plugins create.
const OUR_PREFIX: &str = "kubectl-";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// The manager of one object. Ordered by who reconciles: an operator or GitOps controller that
/// renders with Helm leaves Helm's marks too, but it is the one that reverts a change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "camelCase")]
pub enum Manager {
    /// Nothing says who: applied by hand or by a tool that leaves no mark.
    #[default]
    None,
    /// One of our plugins created it (`app.kubernetes.io/managed-by: kubectl-<plugin>`).
    Plugin {
        name: String,
    },
    /// `istioctl install` (the in-cluster operator's marks).
    Istioctl,
    Helm {
        release: String,
        namespace: String,
    },
    /// Sail Operator: through an `IstioRevision` or `IstioRevisionTag` resource.
    Sail {
        owner: Option<String>,
    },
    ArgoCd {
        application: String,
    },
    Flux {
        #[serde(rename = "object")]
        kind: &'static str,
        name: String,
        namespace: Option<String>,
    },
}

impl Manager {
    /// Whether a change made behind this manager's back would be reverted or deleted by it.
    pub fn is_foreign(&self) -> bool {
        !matches!(self, Manager::None | Manager::Plugin { .. })
    }

    /// `` `helm upgrade RELEASE CHART -n NAMESPACE --reuse-values SETTINGS` `` for a Helm release:
    /// the one way every hint spells the owner's command.
    pub fn helm_upgrade(&self, chart: &str, settings: &str) -> Option<String> {
        match self {
            Manager::Helm { release, namespace } => {
                Some(format!("`helm upgrade {release} {chart} -n {namespace} --reuse-values {settings}`"))
            }
            _ => None,
        }
    }

    /// For the owner of `istiod-default-validator` (istio-base's `defaultRevision`), the command
    /// that moves it to `revision`.
    pub fn move_default_revision(&self, revision: &str) -> Option<String> {
        self.helm_upgrade("istio/base", &format!("--set defaultRevision={revision}"))
    }

    /// How to make a change this manager's way, in a phrase for a hint.
    pub fn the_owners_way(&self) -> String {
        match self {
            Manager::None | Manager::Plugin { .. } => String::new(),
            Manager::Istioctl => "change the IstioOperator spec and rerun `istioctl install`".into(),
            Manager::Helm { release, .. } => {
                format!(
                    "change the values of Helm release {release} ({})",
                    self.helm_upgrade("CHART", "…").unwrap_or_default()
                )
            }
            Manager::Sail { owner } => match owner {
                Some(owner) => format!("change the Sail Operator resource {owner} (an IstioRevisionTag or Istio)"),
                None => "change the Sail Operator resources (Istio, IstioRevisionTag)".into(),
            },
            Manager::ArgoCd { application } => {
                format!("change it in Git: Argo CD application {application} reverts changes made here")
            }
            Manager::Flux { kind, name, .. } => {
                format!("change it in Git: Flux {kind} {name} reverts changes made here")
            }
        }
    }
}

impl fmt::Display for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Manager::None => write!(f, "-"),
            Manager::Plugin { name } => write!(f, "{name}"),
            Manager::Istioctl => write!(f, "istioctl"),
            Manager::Helm { release, namespace } => write!(f, "helm:{namespace}/{release}"),
            Manager::Sail { owner: Some(owner) } => write!(f, "sail:{owner}"),
            Manager::Sail { owner: None } => write!(f, "sail"),
            Manager::ArgoCd { application } => write!(f, "argocd:{application}"),
            Manager::Flux { kind, name, .. } => write!(f, "flux:{}/{name}", kind.to_lowercase()),
        }
    }
}

/// What [`detect`] reads of an object.
#[derive(Debug, Clone, Copy, Default)]
pub struct Marks<'a> {
    pub labels: Option<&'a BTreeMap<String, String>>,
    pub annotations: Option<&'a BTreeMap<String, String>>,
    /// `(apiVersion, kind, name)` of each owner reference.
    pub owners: &'a [(String, String, String)],
}

pub fn detect_meta(meta: &ObjectMeta) -> Manager {
    let owners: Vec<(String, String, String)> = meta
        .owner_references
        .iter()
        .flatten()
        .map(|o| (o.api_version.clone(), o.kind.clone(), o.name.clone()))
        .collect();
    detect(Marks { labels: meta.labels.as_ref(), annotations: meta.annotations.as_ref(), owners: &owners })
}

pub fn detect(marks: Marks<'_>) -> Manager {
    let label = |k: &str| marks.labels.and_then(|l| l.get(k)).map(String::as_str);
    let annotation = |k: &str| marks.annotations.and_then(|a| a.get(k)).map(String::as_str);
    let sail_owner = marks.owners.iter().find(|(api, _, _)| api.starts_with(SAIL_API_GROUP));
    if let Some((_, kind, name)) = sail_owner {
        return Manager::Sail { owner: Some(format!("{kind}/{name}")) };
    }
    if label(SAIL_LABEL.0) == Some(SAIL_LABEL.1) {
        return Manager::Sail { owner: None };
    }
    let flux_namespace = |group: &str| label(&format!("{group}/namespace")).map(str::to_string);
    if let Some(name) = label(FLUX_HELM) {
        let namespace = flux_namespace("helm.toolkit.fluxcd.io");
        return Manager::Flux { kind: "HelmRelease", name: name.into(), namespace };
    }
    if let Some(name) = label(FLUX_KUSTOMIZE) {
        let namespace = flux_namespace("kustomize.toolkit.fluxcd.io");
        return Manager::Flux { kind: "Kustomization", name: name.into(), namespace };
    }
    if let Some(id) = annotation(ARGO_TRACKING_ID) {
        // `<app>:<group>/<kind>:<namespace>/<name>`; the application is what a user looks for.
        let application = id.split(':').next().unwrap_or(id);
        return Manager::ArgoCd { application: application.into() };
    }
    if let Some(application) = label(ARGO_INSTANCE_LABEL) {
        return Manager::ArgoCd { application: application.into() };
    }
    if let (Some(release), Some(namespace)) = (annotation(HELM_RELEASE_NAME), annotation(HELM_RELEASE_NAMESPACE)) {
        return Manager::Helm { release: release.into(), namespace: namespace.into() };
    }
    if label(ISTIOCTL_MANAGED).is_some() {
        return Manager::Istioctl;
    }
    match label(MANAGED_BY) {
        Some(ours) if ours.starts_with(OUR_PREFIX) => Manager::Plugin { name: ours.into() },
        _ => Manager::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn of(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Manager {
        let (labels, annotations) = (map(labels), map(annotations));
        detect(Marks { labels: Some(&labels), annotations: Some(&annotations), owners: &[] })
    }

    const HELM: [(&str, &str); 2] = [(HELM_RELEASE_NAME, "istiod-1-30-3"), (HELM_RELEASE_NAMESPACE, "istio-system")];

    #[test]
    fn helm_is_told_by_its_release_annotations_not_by_the_managed_by_label() {
        assert_eq!(
            of(&[(MANAGED_BY, "Helm")], &HELM),
            Manager::Helm { release: "istiod-1-30-3".into(), namespace: "istio-system".into() }
        );
        // istioctl writes `managed-by: Helm` too (its charts are Helm charts rendered in-process).
        assert_eq!(of(&[(MANAGED_BY, "Helm"), (ISTIOCTL_MANAGED, "Reconcile")], &[]), Manager::Istioctl);
        assert_eq!(of(&[(MANAGED_BY, "Helm")], &[]), Manager::None);
        // A release name without its namespace is not Helm's mark.
        assert_eq!(of(&[], &HELM[..1]), Manager::None);
    }

    #[test]
    fn an_operator_or_gitops_controller_wins_over_the_helm_marks_it_leaves() {
        let flux = of(&[(FLUX_HELM, "istiod"), ("helm.toolkit.fluxcd.io/namespace", "flux-system")], &HELM);
        assert_eq!(
            flux,
            Manager::Flux { kind: "HelmRelease", name: "istiod".into(), namespace: Some("flux-system".into()) }
        );
        assert_eq!(flux.to_string(), "flux:helmrelease/istiod");
        assert_eq!(of(&[(SAIL_LABEL.0, SAIL_LABEL.1)], &HELM), Manager::Sail { owner: None });
        let argo = of(&[], &[(ARGO_TRACKING_ID, "mesh:admissionregistration.k8s.io/MutatingWebhookConfiguration:/x")]);
        assert_eq!(argo, Manager::ArgoCd { application: "mesh".into() });
        let owners = [("sailoperator.io/v1".to_string(), "IstioRevision".to_string(), "default-v1-30-3".to_string())];
        let sail = detect(Marks { labels: None, annotations: None, owners: &owners });
        assert_eq!(sail.to_string(), "sail:IstioRevision/default-v1-30-3");
    }

    #[test]
    fn argo_cds_default_tracking_label_is_ambiguous_with_the_chart_and_ignored() {
        assert_eq!(of(&[("app.kubernetes.io/instance", "istiod")], &[]), Manager::None);
        assert_eq!(of(&[(ARGO_INSTANCE_LABEL, "mesh")], &[]), Manager::ArgoCd { application: "mesh".into() });
    }

    #[test]
    fn our_own_objects_and_unmarked_ones_are_not_foreign() {
        let ours = of(&[(MANAGED_BY, "kubectl-revtag")], &[]);
        assert_eq!(ours, Manager::Plugin { name: "kubectl-revtag".into() });
        assert!(!ours.is_foreign() && !Manager::None.is_foreign());
        assert!(of(&[], &HELM).is_foreign());
        assert!(of(&[], &HELM).the_owners_way().contains("helm upgrade istiod-1-30-3 CHART -n istio-system"));
    }
}
