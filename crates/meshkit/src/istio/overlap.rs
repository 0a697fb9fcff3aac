//! Double injection (Istio's IST0139 rule): for every combination of namespace labels and pod
//! labels a user can write, at most one injector webhook entry may match.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{Labels, WebhookConfigView, keys};

/// Two injector entries that would both inject pods with these labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Overlap {
    pub namespace_labels: Labels,
    pub pod_labels: Labels,
    /// `configuration/entry` of each webhook.
    pub first: String,
    pub second: String,
}

impl Overlap {
    pub fn describe(&self) -> String {
        let show = |labels: &Labels| {
            if labels.is_empty() {
                "no labels".to_string()
            } else {
                labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
            }
        };
        format!(
            "a pod with {} in a namespace with {} would be injected twice, by {} and by {}",
            show(&self.pod_labels),
            show(&self.namespace_labels),
            self.first,
            self.second
        )
    }
}

/// Every pair of injector entries that overlap, each reported once with the first label
/// combination that shows it. `names` are the revision and tag names to try as `istio.io/rev`
/// values.
pub fn injection_overlaps(configs: &[WebhookConfigView], names: &BTreeSet<String>) -> Vec<Overlap> {
    let entries: Vec<(String, &super::WebhookView)> =
        configs.iter().flat_map(|c| c.injectors().map(move |w| (format!("{}/{}", c.name, w.name), w))).collect();
    let rev_values: Vec<Option<&str>> = std::iter::once(None).chain(names.iter().map(|n| Some(n.as_str()))).collect();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut overlaps = Vec::new();
    for ns_injection in [None, Some("enabled"), Some("disabled")] {
        for ns_rev in &rev_values {
            let namespace_labels = labels(&[(keys::INJECTION, ns_injection), (keys::REV, *ns_rev)]);
            for pod_inject in [None, Some("true"), Some("false")] {
                for pod_rev in &rev_values {
                    let pod_labels = labels(&[(keys::SIDECAR_INJECT, pod_inject), (keys::REV, *pod_rev)]);
                    let matching: Vec<&String> = entries
                        .iter()
                        .filter(|(_, w)| {
                            w.namespace_selector.matches(&namespace_labels) && w.object_selector.matches(&pod_labels)
                        })
                        .map(|(name, _)| name)
                        .collect();
                    for (i, first) in matching.iter().enumerate() {
                        for second in &matching[i + 1..] {
                            if seen.insert(((*first).clone(), (*second).clone())) {
                                overlaps.push(Overlap {
                                    namespace_labels: namespace_labels.clone(),
                                    pod_labels: pod_labels.clone(),
                                    first: (*first).clone(),
                                    second: (*second).clone(),
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    overlaps
}

fn labels(pairs: &[(&str, Option<&str>)]) -> Labels {
    pairs.iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v.to_string()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::{LabelSelector, SelectorOp::*, WebhookView};

    fn entry(name: &str, ns: LabelSelector, obj: LabelSelector) -> WebhookView {
        WebhookView { name: name.into(), namespace_selector: ns, object_selector: obj, ..Default::default() }
    }

    /// The entries Istio renders for a revision or tag `name`, plus the legacy ones for `default`.
    fn injector(config: &str, name: &str, legacy: bool) -> WebhookConfigView {
        let sel = LabelSelector::everything;
        let mut webhooks = vec![
            entry(
                "rev.namespace.sidecar-injector.istio.io",
                sel().with("istio.io/rev", In, &[name]).with("istio-injection", DoesNotExist, &[]),
                sel().with("sidecar.istio.io/inject", NotIn, &["false"]),
            ),
            entry(
                "rev.object.sidecar-injector.istio.io",
                sel().with("istio.io/rev", DoesNotExist, &[]).with("istio-injection", DoesNotExist, &[]),
                sel().with("sidecar.istio.io/inject", NotIn, &["false"]).with("istio.io/rev", In, &[name]),
            ),
        ];
        if legacy {
            webhooks.push(entry(
                "namespace.sidecar-injector.istio.io",
                sel().with("istio-injection", In, &["enabled"]),
                sel().with("sidecar.istio.io/inject", NotIn, &["false"]),
            ));
        }
        WebhookConfigView { name: config.into(), webhooks, ..Default::default() }
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn distinct_revisions_and_tags_do_not_overlap() {
        let configs = [
            injector("istio-sidecar-injector-1-30-3", "1-30-3", false),
            injector("istio-sidecar-injector-1-31-1", "1-31-1", false),
            injector("istio-revision-tag-default", "default", true),
            injector("istio-revision-tag-prod", "prod", false),
        ];
        assert_eq!(injection_overlaps(&configs, &names(&["1-30-3", "1-31-1", "default", "prod"])), []);
    }

    #[test]
    fn a_tag_named_like_a_revision_overlaps_and_is_explained() {
        let configs = [
            injector("istio-sidecar-injector-1-30-3", "1-30-3", false),
            injector("istio-revision-tag-1-30-3", "1-30-3", false),
        ];
        let overlaps = injection_overlaps(&configs, &names(&["1-30-3"]));
        assert_eq!(overlaps.len(), 2, "{overlaps:#?}");
        let first = &overlaps[0];
        assert_eq!(
            first.describe(),
            "a pod with istio.io/rev=1-30-3 in a namespace with no labels would be injected twice, by \
             istio-sidecar-injector-1-30-3/rev.object.sidecar-injector.istio.io and by \
             istio-revision-tag-1-30-3/rev.object.sidecar-injector.istio.io"
        );
        let second = &overlaps[1];
        assert_eq!(second.namespace_labels.get("istio.io/rev").map(String::as_str), Some("1-30-3"));
        assert!(second.first.ends_with("/rev.namespace.sidecar-injector.istio.io"));
    }

    #[test]
    fn two_legacy_injectors_overlap_on_istio_injection() {
        let configs = [
            injector("istio-sidecar-injector", "default", true),
            injector("istio-revision-tag-default", "default", true),
        ];
        let overlaps = injection_overlaps(&configs, &names(&["default"]));
        assert!(overlaps.iter().any(|o| o.first.ends_with("/namespace.sidecar-injector.istio.io")
            && o.namespace_labels.get("istio-injection").map(String::as_str) == Some("enabled")));
    }

    #[test]
    fn non_injector_entries_are_ignored() {
        let mut config = injector("a", "x", false);
        config.webhooks.push(entry("other.example.com", LabelSelector::everything(), LabelSelector::everything()));
        assert_eq!(injection_overlaps(&[config], &names(&["x"])), []);
    }
}
