//! Istio annotations marked deprecated in Istio's annotation registry (istio.io/api v1.31.1,
//! `annotation/annotations.yaml`), with the kind they belong on.

pub const DEPRECATED_ANNOTATIONS: &[(&str, &str)] = &[
    ("alpha.istio.io/kubernetes-serviceaccounts", "Service"),
    ("alpha.istio.io/canonical-serviceaccounts", "Service"),
    // The label of the same name is the supported switch.
    ("sidecar.istio.io/inject", "Pod"),
    ("sidecar.istio.io/discoveryAddress", "Pod"),
    ("sidecar.istio.io/statsInclusionPrefixes", "Pod"),
    ("sidecar.istio.io/statsInclusionSuffixes", "Pod"),
    ("sidecar.istio.io/statsInclusionRegexps", "Pod"),
    ("traffic.sidecar.istio.io/kubevirtInterfaces", "Pod"),
    ("sidecar.istio.io/extraStatTags", "Pod"),
    ("sidecar.istio.io/statsCompression", "Pod"),
];

/// Whether Istio's own charts made this pod and set its annotations: istiod's pods, and the
/// gateways they render (their template asks for the `gateway` injection template). A finding
/// about their annotations is not the user's to act on.
pub fn set_by_istio_charts(pod: &super::PodView) -> bool {
    pod.labels.get(super::keys::APP).is_some_and(|app| app == "istiod")
        || super::injection::asks_for_gateway_template(&pod.annotations)
}

/// The deprecated annotations among `annotations` for an object of `kind`.
pub fn deprecated_annotations<'a>(kind: &str, annotations: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
    annotations
        .into_iter()
        .filter(|a| DEPRECATED_ANNOTATIONS.iter().any(|(name, k)| *k == kind && name == a))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_deprecated_annotations_by_kind() {
        let annotations = ["sidecar.istio.io/inject".to_string(), "proxy.istio.io/config".to_string()];
        assert_eq!(deprecated_annotations("Pod", &annotations), ["sidecar.istio.io/inject"]);
        assert!(deprecated_annotations("Service", &annotations).is_empty());
    }
}
