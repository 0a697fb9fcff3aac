use super::*;
use crate::istio::{ContainerView, IstiodView, LabelSelector, SelectorOp, WebhookConfigView};

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn ns(name: &str, pairs: &[(&str, &str)]) -> NamespaceView {
    NamespaceView { name: name.into(), labels: labels(pairs) }
}

fn mesh(auto_inject: bool) -> Mesh {
    let istiod = |rev: &str| IstiodView {
        name: format!("istiod-{rev}"),
        labels: labels(&[("app", "istiod"), ("istio.io/rev", rev)]),
        image: Some("docker.io/istio/pilot:1.30.3".into()),
        ..Default::default()
    };
    let tag = |tag: &str, rev: &str| WebhookConfigView {
        name: format!("istio-revision-tag-{tag}"),
        labels: labels(&[("istio.io/rev", rev), ("istio.io/tag", tag)]),
        ..Default::default()
    };
    let mut mesh =
        Mesh::discover(&[istiod("stable"), istiod("canary")], &[tag("default", "stable"), tag("prod", "canary")], &[]);
    mesh.auto_inject = auto_inject;
    mesh
}

use SelectorOp::*;

/// Istio's injector entries as its chart renders them for tag `default` (which carries the
/// legacy entries) and for every other tag or revision R: `(entry, resolved revision,
/// namespace selector, object selector)`.
fn webhook_entries(mesh: &Mesh) -> Vec<(String, String, LabelSelector, LabelSelector)> {
    let sel = LabelSelector::everything;
    let mut entries = Vec::new();
    for name in ["stable", "canary", "default", "prod", "gone"] {
        let Some(rev) = mesh.resolve(name) else { continue };
        entries.push((
            format!("{name}: rev.namespace"),
            rev.to_string(),
            sel().with("istio.io/rev", In, &[name]).with("istio-injection", DoesNotExist, &[]),
            sel().with("sidecar.istio.io/inject", NotIn, &["false"]),
        ));
        entries.push((
            format!("{name}: rev.object"),
            rev.to_string(),
            sel().with("istio.io/rev", DoesNotExist, &[]).with("istio-injection", DoesNotExist, &[]),
            sel().with("sidecar.istio.io/inject", NotIn, &["false"]).with("istio.io/rev", In, &[name]),
        ));
    }
    let default = mesh.resolve("default").unwrap().to_string();
    entries.push((
        "namespace".into(),
        default.clone(),
        sel().with("istio-injection", In, &["enabled"]),
        sel().with("sidecar.istio.io/inject", NotIn, &["false"]),
    ));
    entries.push((
        "object".into(),
        default.clone(),
        sel().with("istio-injection", DoesNotExist, &[]).with("istio.io/rev", DoesNotExist, &[]),
        sel().with("sidecar.istio.io/inject", In, &["true"]).with("istio.io/rev", DoesNotExist, &[]),
    ));
    if mesh.auto_inject {
        entries.push((
            "auto".into(),
            default,
            sel().with("istio-injection", DoesNotExist, &[]).with("istio.io/rev", DoesNotExist, &[]).with(
                "kubernetes.io/metadata.name",
                NotIn,
                &keys::NEVER_INJECTED_NAMESPACES,
            ),
            sel().with("sidecar.istio.io/inject", DoesNotExist, &[]).with("istio.io/rev", DoesNotExist, &[]),
        ));
    }
    entries
}

/// Every namespace × pod label combination: the rules above must agree with what the webhook
/// selectors themselves select, and exactly one entry may match.
#[test]
fn rules_agree_with_webhook_selectors_for_every_label_combination() {
    let rev_values = [None, Some("stable"), Some("prod"), Some("default"), Some("gone")];
    let injection_values = [None, Some("enabled"), Some("disabled")];
    let inject_values = [None, Some("true"), Some("false")];
    let mut checked = 0;
    for auto_inject in [false, true] {
        let mesh = mesh(auto_inject);
        let entries = webhook_entries(&mesh);
        for ns_name in ["apps", "kube-system"] {
            for ns_injection in injection_values {
                for ns_rev in rev_values {
                    for pod_inject in inject_values {
                        for pod_rev in rev_values {
                            let mut ns_labels = labels(&[("kubernetes.io/metadata.name", ns_name)]);
                            ns_injection.map(|v| ns_labels.insert("istio-injection".into(), v.into()));
                            ns_rev.map(|v| ns_labels.insert("istio.io/rev".into(), v.into()));
                            let mut pod_labels = Labels::new();
                            pod_inject.map(|v| pod_labels.insert("sidecar.istio.io/inject".into(), v.into()));
                            pod_rev.map(|v| pod_labels.insert("istio.io/rev".into(), v.into()));
                            let namespace = NamespaceView { name: ns_name.into(), labels: ns_labels.clone() };

                            let matched: Vec<_> = entries
                                .iter()
                                .filter(|(_, _, ns_sel, obj_sel)| {
                                    ns_sel.matches(&ns_labels) && obj_sel.matches(&pod_labels)
                                })
                                .collect();
                            assert!(matched.len() <= 1, "overlap for ns {ns_labels:?} pod {pod_labels:?}: {matched:?}");
                            let oracle = matched.first().map(|(_, rev, _, _)| rev.as_str());

                            let ours = pod_intended(&namespace, &pod_labels, &mesh);
                            let unresolved = matches!(ours, Intended::Sidecar { revision: None, .. });
                            if unresolved {
                                // A label naming something not installed: no webhook serves it.
                                assert_eq!(oracle, None, "ns {ns_labels:?} pod {pod_labels:?}");
                            } else {
                                assert_eq!(ours.revision(), oracle, "ns {ns_labels:?} pod {pod_labels:?}: {ours:?}");
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 2 * 2 * 3 * 5 * 3 * 5);
}

#[test]
fn namespace_labels_precedence() {
    assert_eq!(namespace_injection(&labels(&[])), NamespaceInjection::Unlabelled);
    assert_eq!(
        namespace_injection(&labels(&[("istio-injection", "enabled"), ("istio.io/rev", "canary")])),
        NamespaceInjection::Default { shadowed: Some("canary".into()) }
    );
    assert_eq!(
        namespace_injection(&labels(&[("istio-injection", "disabled"), ("istio.io/rev", "canary")])),
        NamespaceInjection::Disabled { value: "disabled".into() }
    );
    assert_eq!(
        namespace_injection(&labels(&[("istio.io/rev", "prod")])),
        NamespaceInjection::Rev { name: "prod".into() }
    );
    assert_eq!(NamespaceInjection::Rev { name: "prod".into() }.requested(), Some("prod"));
    assert_eq!(NamespaceInjection::Default { shadowed: None }.requested(), Some("default"));
    assert_eq!(NamespaceInjection::Unlabelled.requested(), None);
}

#[test]
fn intended_says_why_there_is_no_sidecar() {
    let m = mesh(false);
    let none = |reason| Intended::None { reason };
    assert_eq!(
        pod_intended(&ns("a", &[("istio-injection", "disabled")]), &labels(&[]), &m),
        none(NoSidecar::NamespaceDisabled)
    );
    assert_eq!(
        pod_intended(&ns("a", &[("istio.io/rev", "prod")]), &labels(&[("sidecar.istio.io/inject", "false")]), &m),
        none(NoSidecar::PodOptOut)
    );
    assert_eq!(pod_intended(&ns("a", &[]), &labels(&[]), &m), none(NoSidecar::NotSelected));
    assert_eq!(
        pod_intended(&ns("a", &[("istio.io/rev", "prod")]), &labels(&[]), &m),
        Intended::Sidecar { via: "prod".into(), revision: Some("canary".into()) }
    );
    assert_eq!(
        pod_intended(&ns("a", &[("istio.io/rev", "gone")]), &labels(&[]), &m),
        Intended::Sidecar { via: "gone".into(), revision: None }
    );
}

fn pod(annotations: &[(&str, &str)], proxy: bool) -> PodView {
    let mut containers = vec![ContainerView { name: "app".into(), image: "nginx".into() }];
    if proxy {
        containers.push(ContainerView { name: "istio-proxy".into(), image: "docker.io/istio/proxyv2:1.30.3".into() });
    }
    PodView {
        namespace: "a".into(),
        name: "p".into(),
        annotations: labels(annotations),
        containers,
        ..Default::default()
    }
}

#[test]
fn injected_revision_from_annotations() {
    assert_eq!(pod_injected(&pod(&[("istio.io/rev", "stable")], true)).revision(), Some("stable"));
    let status = r#"{"initContainers":["istio-init"],"containers":["istio-proxy"],"revision":"canary"}"#;
    assert_eq!(pod_injected(&pod(&[("sidecar.istio.io/status", status)], true)).revision(), Some("canary"));
    let old_status = r#"{"containers":["istio-proxy"]}"#;
    assert_eq!(pod_injected(&pod(&[("sidecar.istio.io/status", old_status)], true)).revision(), Some("default"));
    assert_eq!(pod_injected(&pod(&[], true)), Injected::Unknown);
    assert_eq!(pod_injected(&pod(&[], false)), Injected::NotInjected);
}

#[test]
fn opt_out_by_label_or_annotation() {
    let mut p = pod(&[], false);
    assert_eq!(pod_opt_out(&p), None);
    p.annotations = labels(&[("sidecar.istio.io/inject", "false")]);
    assert_eq!(pod_opt_out(&p), Some(OptOut::Annotation));
    p.labels = labels(&[("sidecar.istio.io/inject", "false")]);
    assert_eq!(pod_opt_out(&p), Some(OptOut::Label));
}

#[test]
fn staleness() {
    let m = mesh(false);
    let on_prod = ns("a", &[("istio.io/rev", "prod")]);
    let injected_by = |rev: &str| pod(&[("istio.io/rev", rev)], true);
    assert_eq!(pod_state(&on_prod, &injected_by("canary"), &m), PodRevisionState::UpToDate);
    assert_eq!(
        pod_state(&on_prod, &injected_by("stable"), &m),
        PodRevisionState::Stale {
            injected: Some("stable".into()),
            intended: Some("canary".into()),
            reason: "revision moved stable → canary".into()
        }
    );
    assert_eq!(
        pod_state(&on_prod, &pod(&[], false), &m),
        PodRevisionState::Stale {
            injected: None,
            intended: Some("canary".into()),
            reason: "no sidecar; its labels ask for one from canary".into()
        }
    );
    let unlabelled = ns("a", &[]);
    assert_eq!(
        pod_state(&unlabelled, &injected_by("stable"), &m),
        PodRevisionState::Stale {
            injected: Some("stable".into()),
            intended: None,
            reason: "a sidecar from stable; its labels ask for none".into()
        }
    );
    assert_eq!(pod_state(&unlabelled, &pod(&[], false), &m), PodRevisionState::UpToDate);
    assert_eq!(
        pod_state(&ns("a", &[("istio.io/rev", "gone")]), &injected_by("stable"), &m),
        PodRevisionState::Unresolved
    );
    assert_eq!(pod_state(&on_prod, &pod(&[], true), &m), PodRevisionState::Unresolved);
}
