//! Which archived objects a restore applies, and in what order; pure.
//!
//! The order avoids what makes restores of a mesh fail half way: CRDs first (custom resources
//! cannot exist before them), then namespaces, configuration and RBAC, the control plane, custom
//! resources, and the admission webhooks last, validating after mutating, so that a stale
//! validating webhook whose istiod is not back yet cannot reject the custom resources.

use std::collections::BTreeSet;

use meshkit::Error;
use meshkit::archive::{Entry, Manifest};
use serde::Serialize;

use crate::sources::is_mesh_group;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Crds,
    Namespaces,
    ConfigAndRbac,
    ControlPlane,
    CustomResources,
    MutatingWebhooks,
    ValidatingWebhooks,
}

impl Phase {
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Crds => "CRDs",
            Phase::Namespaces => "namespaces and their labels",
            Phase::ConfigAndRbac => "configuration and RBAC",
            Phase::ControlPlane => "the control plane",
            Phase::CustomResources => "custom resources",
            Phase::MutatingWebhooks => "mutating webhooks",
            Phase::ValidatingWebhooks => "validating webhooks",
        }
    }
}

pub fn phase_of(group: &str, kind: &str) -> Phase {
    match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Phase::Crds,
        ("", "Namespace") => Phase::Namespaces,
        ("", "ServiceAccount" | "Secret" | "ConfigMap") | ("rbac.authorization.k8s.io", _) => Phase::ConfigAndRbac,
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => Phase::MutatingWebhooks,
        ("admissionregistration.k8s.io", _) => Phase::ValidatingWebhooks,
        (group, _) if is_mesh_group(group) => Phase::CustomResources,
        _ => Phase::ControlPlane,
    }
}

/// What `--only` and `-n` let through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `(group, kind)` pairs; `None`: every kind.
    pub kinds: Option<BTreeSet<(String, String)>>,
    /// Only objects in this namespace, and the namespace itself.
    pub namespace: Option<String>,
}

impl Selection {
    pub fn admits(&self, entry: &Entry) -> bool {
        let kind_ok =
            self.kinds.as_ref().is_none_or(|kinds| kinds.contains(&(entry.group().to_string(), entry.kind.clone())));
        let namespace_ok = match &self.namespace {
            None => true,
            Some(ns) => {
                entry.namespace.as_deref() == Some(ns.as_str())
                    || (entry.kind == "Namespace" && entry.group().is_empty() && entry.name == *ns)
            }
        };
        kind_ok && namespace_ok
    }
}

/// `--only` values (repeated or comma-separated) against the kinds in the archive. A kind may be
/// written as `Kind`, `kind.group`, or the resource's plural (`virtualservices`, optionally with
/// its group), in any case.
pub fn parse_only(values: &[String], manifest: &Manifest) -> Result<Option<BTreeSet<(String, String)>>, Error> {
    if values.is_empty() {
        return Ok(None);
    }
    let kinds: BTreeSet<(&str, &str, &str)> =
        manifest.objects.iter().map(|e| (e.group(), e.kind.as_str(), e.resource.as_str())).collect();
    let mut chosen = BTreeSet::new();
    for word in values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|w| !w.is_empty()) {
        let word_lower = word.to_ascii_lowercase();
        let matching: Vec<(String, String)> = kinds
            .iter()
            .filter(|(group, kind, resource)| {
                [kind.to_ascii_lowercase(), resource.to_string()]
                    .iter()
                    .any(|name| word_lower == *name || (!group.is_empty() && word_lower == format!("{name}.{group}")))
            })
            .map(|(group, kind, _)| (group.to_string(), kind.to_string()))
            .collect();
        if matching.is_empty() {
            let known: BTreeSet<&str> = kinds.iter().map(|(_, kind, _)| *kind).collect();
            return Err(Error::usage(
                format!("unknown kind {word:?} for --only: the archive holds no such objects"),
                format!("kinds in this archive: {}", known.into_iter().collect::<Vec<_>>().join(", ")),
            ));
        }
        chosen.extend(matching);
    }
    if chosen.is_empty() {
        return Err(Error::usage("--only needs at least one KIND", "e.g. --only VirtualService,DestinationRule"));
    }
    Ok(Some(chosen))
}

/// One pass over the archive: the entries (indices into the manifest) of one phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub phase: Phase,
    pub entries: Vec<usize>,
}

/// The selected entries, phase by phase, in apply order; phases with nothing to do are left out.
pub fn plan(manifest: &Manifest, selection: &Selection) -> Vec<Batch> {
    let mut batches: Vec<Batch> = Vec::new();
    let mut selected: Vec<(Phase, usize)> = manifest
        .objects
        .iter()
        .enumerate()
        .filter(|(_, e)| selection.admits(e))
        .map(|(i, e)| (phase_of(e.group(), &e.kind), i))
        .collect();
    selected.sort();
    for (phase, index) in selected {
        match batches.last_mut() {
            Some(batch) if batch.phase == phase => batch.entries.push(index),
            _ => batches.push(Batch { phase, entries: vec![index] }),
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use meshkit::archive::Header;

    use super::*;

    fn entry(api_version: &str, kind: &str, resource: &str, namespace: Option<&str>, name: &str) -> Entry {
        Entry {
            api_version: api_version.into(),
            kind: kind.into(),
            resource: resource.into(),
            namespace: namespace.map(str::to_string),
            name: name.into(),
            ..Entry::default()
        }
    }

    /// An archive in the order `create` writes it: not the order a restore needs.
    fn manifest() -> Manifest {
        Manifest {
            format_version: 1,
            header: Header::default(),
            objects: vec![
                entry(
                    "admissionregistration.k8s.io/v1",
                    "ValidatingWebhookConfiguration",
                    "validatingwebhookconfigurations",
                    None,
                    "istio-validator",
                ),
                entry("networking.istio.io/v1", "VirtualService", "virtualservices", Some("shop"), "reviews"),
                entry("apps/v1", "Deployment", "deployments", Some("istio-system"), "istiod"),
                entry(
                    "admissionregistration.k8s.io/v1",
                    "MutatingWebhookConfiguration",
                    "mutatingwebhookconfigurations",
                    None,
                    "istio-sidecar-injector",
                ),
                entry("v1", "ConfigMap", "configmaps", Some("istio-system"), "istio"),
                entry("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", None, "istiod"),
                entry("v1", "Namespace", "namespaces", None, "shop"),
                entry(
                    "apiextensions.k8s.io/v1",
                    "CustomResourceDefinition",
                    "customresourcedefinitions",
                    None,
                    "virtualservices.networking.istio.io",
                ),
                entry("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes", Some("shop"), "r"),
                entry("v1", "Service", "services", Some("istio-system"), "istiod"),
                entry("v1", "Namespace", "namespaces", None, "istio-system"),
            ],
        }
    }

    fn phases(batches: &[Batch], manifest: &Manifest) -> Vec<(Phase, Vec<String>)> {
        batches
            .iter()
            .map(|b| (b.phase, b.entries.iter().map(|i| manifest.objects[*i].name.clone()).collect()))
            .collect()
    }

    #[test]
    fn crds_first_webhooks_last_validating_after_mutating() {
        let manifest = manifest();
        let order = phases(&plan(&manifest, &Selection::default()), &manifest);
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            order,
            [
                (Phase::Crds, names(&["virtualservices.networking.istio.io"])),
                (Phase::Namespaces, names(&["shop", "istio-system"])),
                (Phase::ConfigAndRbac, names(&["istio", "istiod"])),
                (Phase::ControlPlane, names(&["istiod", "istiod"])),
                (Phase::CustomResources, names(&["reviews", "r"])),
                (Phase::MutatingWebhooks, names(&["istio-sidecar-injector"])),
                (Phase::ValidatingWebhooks, names(&["istio-validator"])),
            ]
        );
    }

    #[test]
    fn only_accepts_kinds_plurals_and_groups_in_any_case() {
        let manifest = manifest();
        let only = |words: &[&str]| parse_only(&words.iter().map(|w| w.to_string()).collect::<Vec<_>>(), &manifest);
        let vs = ("networking.istio.io".to_string(), "VirtualService".to_string());
        for spelling in ["VirtualService", "virtualservice", "virtualservices", "virtualservices.networking.istio.io"] {
            assert_eq!(only(&[spelling]).unwrap(), Some(BTreeSet::from([vs.clone()])), "{spelling}");
        }
        let two = only(&["virtualservice,HTTPRoute", "configmaps"]).unwrap().unwrap();
        assert_eq!(two.len(), 3);
        assert_eq!(only(&[]).unwrap(), None);
        let err = only(&["Gateway"]).unwrap_err();
        assert_eq!(err.to_string(), "unknown kind \"Gateway\" for --only: the archive holds no such objects");
        assert_eq!(err.exit() as u8, 2);
        assert!(err.hint().unwrap().contains("HTTPRoute, MutatingWebhookConfiguration, Namespace"), "{:?}", err.hint());
        assert!(only(&[","]).is_err());
    }

    #[test]
    fn selection_by_kind_and_namespace() {
        let manifest = manifest();
        let selection = Selection { kinds: parse_only(&["HTTPRoute".into()], &manifest).unwrap(), namespace: None };
        assert_eq!(phases(&plan(&manifest, &selection), &manifest), [(Phase::CustomResources, vec!["r".to_string()])]);
        let in_shop = Selection { kinds: None, namespace: Some("shop".into()) };
        let order = phases(&plan(&manifest, &in_shop), &manifest);
        assert_eq!(
            order,
            [
                (Phase::Namespaces, vec!["shop".to_string()]),
                (Phase::CustomResources, vec!["reviews".to_string(), "r".to_string()])
            ],
            "the namespace itself, its objects, nothing cluster-wide"
        );
    }
}
