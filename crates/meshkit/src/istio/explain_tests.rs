use super::*;
use crate::istio::{IstiodView, LabelSelector, WebhookView};
use SelectorOp::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn entry(name: &str, namespace: LabelSelector, object: LabelSelector) -> WebhookView {
    WebhookView {
        name: format!("{name}.sidecar-injector.istio.io"),
        namespace_selector: namespace,
        object_selector: object,
        ..Default::default()
    }
}

/// An injector configuration shaped as Istio's chart renders it, for `name` (a tag or a revision)
/// of `revision`; the `default` tag carries the legacy entries too.
fn config(name: &str, revision: &str, tag: bool) -> WebhookConfigView {
    let sel = LabelSelector::everything;
    let mut webhooks = vec![
        entry(
            "rev.namespace",
            sel().with(keys::REV, In, &[name]).with(keys::INJECTION, DoesNotExist, &[]),
            sel().with(keys::SIDECAR_INJECT, NotIn, &["false"]),
        ),
        entry(
            "rev.object",
            sel().with(keys::REV, DoesNotExist, &[]).with(keys::INJECTION, DoesNotExist, &[]),
            sel().with(keys::SIDECAR_INJECT, NotIn, &["false"]).with(keys::REV, In, &[name]),
        ),
    ];
    if name == "default" {
        webhooks.push(entry(
            "namespace",
            sel().with(keys::INJECTION, In, &["enabled"]),
            sel().with(keys::SIDECAR_INJECT, NotIn, &["false"]),
        ));
        webhooks.push(entry(
            "object",
            sel().with(keys::INJECTION, DoesNotExist, &[]).with(keys::REV, DoesNotExist, &[]),
            sel().with(keys::SIDECAR_INJECT, In, &["true"]).with(keys::REV, DoesNotExist, &[]),
        ));
    }
    let (config_name, mut config_labels) = if tag {
        (format!("istio-revision-tag-{name}"), labels(&[(keys::TAG, name)]))
    } else {
        (format!("istio-sidecar-injector-{name}"), Labels::new())
    };
    config_labels.insert(keys::REV.into(), revision.into());
    WebhookConfigView { name: config_name, labels: config_labels, webhooks, ..Default::default() }
}

fn setup() -> (Mesh, Vec<WebhookConfigView>) {
    let istiod = |rev: &str| IstiodView {
        name: format!("istiod-{rev}"),
        labels: labels(&[("app", "istiod"), (keys::REV, rev)]),
        ..Default::default()
    };
    let configs = vec![
        config("stable", "stable", false),
        config("canary", "canary", false),
        config("default", "stable", true),
        config("prod", "canary", true),
    ];
    (Mesh::discover(&[istiod("stable"), istiod("canary")], &configs, &[]), configs)
}

fn ns(name: &str, pairs: &[(&str, &str)]) -> NamespaceView {
    NamespaceView { name: name.into(), labels: labels(pairs) }
}

fn pod(namespace: &str, pod_labels: &[(&str, &str)], injected_by: Option<&str>) -> PodView {
    let annotations = injected_by.map_or_else(Labels::new, |rev| labels(&[(keys::REV, rev)]));
    PodView {
        namespace: namespace.into(),
        name: "web-1".into(),
        labels: labels(pod_labels),
        annotations,
        ..Default::default()
    }
}

#[test]
fn names_the_entry_the_label_and_the_tag_that_select_a_pod() {
    let (mesh, configs) = setup();
    let by_tag = explain(&ns("shop", &[(keys::REV, "prod")]), None, &mesh, &configs);
    assert_eq!(by_tag.injects.as_deref(), Some("canary"));
    assert_eq!(
        by_tag.via.as_deref(),
        Some("namespace label istio.io/rev=prod (tag prod → canary, istio-revision-tag-prod)")
    );
    assert_eq!(by_tag.state, "new");
    let selecting: Vec<(&str, Option<&str>)> =
        by_tag.webhooks.iter().filter(|w| w.selects).map(|w| (w.configuration.as_str(), w.entry.as_deref())).collect();
    assert_eq!(selecting, [("istio-revision-tag-prod", Some("rev.namespace.sidecar-injector.istio.io"))]);
    let other = by_tag.webhooks.iter().find(|w| w.configuration == "istio-sidecar-injector-stable").unwrap();
    assert_eq!(other.reason, "namespace label istio.io/rev=prod excludes it", "{other:?}");

    let legacy = explain(&ns("old", &[(keys::INJECTION, "enabled")]), None, &mesh, &configs);
    assert_eq!(legacy.injects.as_deref(), Some("stable"));
    assert!(
        legacy.via.as_deref().unwrap().starts_with("namespace label istio-injection=enabled (tag default → stable")
    );

    let by_pod = explain(&ns("plain", &[]), Some(&pod("plain", &[(keys::REV, "canary")], None)), &mesh, &configs);
    assert_eq!(
        (by_pod.injects.as_deref(), by_pod.via.as_deref()),
        (Some("canary"), Some("pod label istio.io/rev=canary (istio-sidecar-injector-canary)"))
    );
    assert_eq!(by_pod.state, "stale", "no sidecar yet; its labels ask for one");

    let opted_in =
        explain(&ns("plain", &[]), Some(&pod("plain", &[(keys::SIDECAR_INJECT, "true")], None)), &mesh, &configs);
    assert_eq!(opted_in.injects.as_deref(), Some("stable"));
    assert!(opted_in.via.unwrap().starts_with("pod label sidecar.istio.io/inject=true (tag default"));
}

#[test]
fn opt_outs_say_which_label_or_annotation_keeps_injection_off() {
    let (mesh, configs) = setup();
    let off = explain(&ns("off", &[(keys::INJECTION, "disabled"), (keys::REV, "prod")]), None, &mesh, &configs);
    assert_eq!((off.injects, off.via), (None, None));
    assert_eq!(off.opt_outs, ["namespace label istio-injection=disabled"]);

    let labelled = pod("shop", &[(keys::SIDECAR_INJECT, "false")], None);
    let out = explain(&ns("shop", &[(keys::REV, "prod")]), Some(&labelled), &mesh, &configs);
    assert_eq!(out.injects, None);
    assert_eq!(out.opt_outs, ["pod label sidecar.istio.io/inject=false"]);
    assert_eq!(out.state, "upToDate", "no sidecar, none wanted");
    let prod = out.webhooks.iter().find(|w| w.configuration == "istio-revision-tag-prod").unwrap();
    assert_eq!(prod.reason, "pod label sidecar.istio.io/inject=false excludes it");

    let mut annotated = pod("shop", &[], None);
    annotated.annotations.insert(keys::SIDECAR_INJECT.into(), "false".into());
    let out = explain(&ns("shop", &[(keys::REV, "prod")]), Some(&annotated), &mesh, &configs);
    assert_eq!(out.injects, None, "the webhook is called; istiod's handler skips it");
    assert!(out.webhooks.iter().any(|w| w.selects));
    assert_eq!(out.opt_outs, ["pod annotation sidecar.istio.io/inject=false"]);
    assert_eq!(out.state, "upToDate", "not stale: no restart ever gives it a sidecar (found with real istiod)");
    annotated.labels.insert(keys::SIDECAR_INJECT.into(), "true".into());
    let labelled_too = explain(&ns("shop", &[(keys::REV, "prod")]), Some(&annotated), &mesh, &configs);
    assert_eq!(labelled_too.injects.as_deref(), Some("canary"), "the label wins over the annotation");
    assert_eq!(labelled_too.state, "stale");

    let system = explain(&ns("kube-system", &[(keys::REV, "prod")]), None, &mesh, &configs);
    assert_eq!(system.injects, None);
    assert_eq!(system.opt_outs, ["namespace kube-system: istiod never injects there"]);
    let system_pod =
        explain(&ns("kube-system", &[(keys::REV, "prod")]), Some(&pod("kube-system", &[], None)), &mesh, &configs);
    assert_eq!(system_pod.state, "upToDate", "never stale there");

    let nothing = explain(&ns("plain", &[]), None, &mesh, &configs);
    assert_eq!((nothing.injects.as_deref(), nothing.opt_outs.len()), (None, 0));
    assert!(nothing.webhooks.iter().all(|w| !w.selects && w.reason == "no label it selects on"), "{nothing:?}");
}

#[test]
fn stale_pods_say_why_and_double_selection_is_a_conflict() {
    let (mesh, mut configs) = setup();
    let moved = pod("shop", &[], Some("stable"));
    let out = explain(&ns("shop", &[(keys::REV, "prod")]), Some(&moved), &mesh, &configs);
    assert_eq!((out.injected.as_deref(), out.injects.as_deref()), (Some("stable"), Some("canary")));
    assert_eq!((out.state.as_str(), out.stale_reason.as_deref()), ("stale", Some("revision moved stable → canary")));

    // A hand-made configuration that also selects every istio.io/rev=prod namespace.
    let mut copy = config("prod", "canary", true);
    copy.name = "my-copy-of-prod".into();
    configs.push(copy);
    let out = explain(&ns("shop", &[(keys::REV, "prod")]), None, &mesh, &configs);
    assert!(out.conflict, "{out:?}");
}
