//! Differential tests against the real istioctl, built from the `istio.io/istio` module pinned in
//! `tests/go/istio`, on the same apiserver. Objects are compared field by field; every
//! intentional difference is asserted here with its reason.

use std::process::Command;

use meshtest::{CANARY, ControlPlane, STABLE};
use serde_json::{Value, json};

use crate::common::*;

fn istioctl(plane: &ControlPlane) -> Command {
    let mut cmd = Command::new(plane.tools.istioctl().expect("istioctl builds"));
    cmd.arg(format!("--kubeconfig={}", plane.kubeconfig.display())).env("HOME", std::env::temp_dir());
    cmd
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text).expect("istioctl prints YAML")
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in {objects:#?}"))
}

/// What decides injection and validation, without the tag's own name and without what the
/// apiserver fills in.
fn essence(object: &Value, tag: &str) -> Value {
    let entries: Vec<Value> = object["webhooks"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let mut rules = e["rules"].clone();
                    for rule in rules.as_array_mut().into_iter().flatten() {
                        rule.as_object_mut().unwrap().remove("scope");
                    }
                    let mut service = e["clientConfig"]["service"].clone();
                    if let Some(s) = service.as_object_mut() {
                        s.entry("port").or_insert(json!(443));
                    }
                    json!({
                        "name": e["name"],
                        "service": service,
                        "url": e["clientConfig"]["url"],
                        "caBundle": e["clientConfig"]["caBundle"],
                        "namespaceSelector": e["namespaceSelector"],
                        "objectSelector": e["objectSelector"],
                        "rules": rules,
                        "failurePolicy": e["failurePolicy"].as_str().unwrap_or("Fail"),
                        "sideEffects": e["sideEffects"],
                        "admissionReviewVersions": e["admissionReviewVersions"],
                        "reinvocationPolicy": e["reinvocationPolicy"].as_str().unwrap_or("Never"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    // istioctl's offline YAML writes Go's zero `targetPort: 0`, which means "same as port", as
    // leaving it out does.
    let mut ports = object["spec"]["ports"].clone();
    for port in ports.as_array_mut().into_iter().flatten() {
        let target = port["targetPort"].clone();
        if target.is_null() || target == json!(0) {
            port["targetPort"] = port["port"].clone();
        }
    }
    let labels = &object["metadata"]["labels"];
    let text = json!({
        "kind": object["kind"],
        "name": object["metadata"]["name"],
        "rev": labels["istio.io/rev"],
        "tag": labels["istio.io/tag"],
        "webhooks": entries,
        "ports": ports,
        "selector": object["spec"]["selector"],
    })
    .to_string();
    serde_json::from_str(&text.replace(tag, "TAG")).unwrap()
}

/// Labels istioctl copies from the revision's injector that we deliberately leave off (Helm's
/// bookkeeping: Helm must not believe it owns a tag a person manages), and the one we add.
fn assert_label_differences(ours: &Value, theirs: &Value) {
    let (ours, theirs) =
        (ours["metadata"]["labels"].as_object().unwrap(), theirs["metadata"]["labels"].as_object().unwrap());
    for (key, value) in theirs {
        match key.as_str() {
            "app.kubernetes.io/managed-by" => assert_eq!(ours[key], "kubectl-revtag"),
            "app.kubernetes.io/instance" | "helm.sh/chart" | "release" => assert!(!ours.contains_key(key), "{key}"),
            _ => assert_eq!(ours.get(key), Some(value), "label {key}"),
        }
    }
    for key in ours.keys() {
        assert!(theirs.contains_key(key) || key == "app.kubernetes.io/managed-by", "we add label {key}");
    }
}

#[test]
fn generate_agrees_with_istioctl_tag_generate() {
    let plane = fixture();
    for (tag, revision) in [("prod-next", CANARY.name), ("default", STABLE.name)] {
        let out = istioctl(plane)
            .args(["tag", "generate", tag, "--revision", revision, "--overwrite", "--istioNamespace", "istio-system"])
            .output()
            .unwrap();
        assert!(out.status.success(), "istioctl: {}", String::from_utf8_lossy(&out.stderr));
        let theirs = yaml_documents(&String::from_utf8_lossy(&out.stdout));
        let (code, ours, err) =
            run(revtag(&plane.kubeconfig).args(["generate", tag, "--revision", revision, "--overwrite", "-o", "json"]));
        assert_eq!(code, 0, "{err}");
        let ours: Value = serde_json::from_str(&ours).unwrap();
        let ours = ours["items"].as_array().unwrap().clone();
        let kinds = |objects: &[Value]| {
            let mut kinds: Vec<String> = objects.iter().map(|o| o["kind"].as_str().unwrap().to_string()).collect();
            kinds.sort();
            kinds
        };
        assert_eq!(kinds(&ours), kinds(&theirs), "{tag}: the same objects");
        for kind in kinds(&ours) {
            let (a, b) = (of_kind(&ours, &kind), of_kind(&theirs, &kind));
            assert_eq!(essence(a, tag), essence(b, tag), "{tag}: {kind}");
            if kind == "MutatingWebhookConfiguration" {
                assert_label_differences(a, b);
            }
        }
    }
}

#[test]
fn set_leaves_the_same_live_objects_as_istioctl_tag_set() {
    let plane = private_fixture();
    let out = istioctl(&plane).args(["tag", "set", "by-istioctl", "--revision", CANARY.name, "-y"]).output().unwrap();
    assert!(out.status.success(), "istioctl: {}", String::from_utf8_lossy(&out.stderr));
    let (code, _, err) = run(revtag(&plane.kubeconfig).args(["set", "by-revtag", "--revision", CANARY.name]));
    assert_eq!(code, 0, "{err}");
    let live = |tag: &str| {
        (
            get_json(&plane, &["mutatingwebhookconfiguration", &format!("istio-revision-tag-{tag}")])
                .expect("tag webhook"),
            get_json(&plane, &["service", "-n", "istio-system", &format!("istiod-revision-tag-{tag}")])
                .expect("tag service"),
        )
    };
    let (their_webhook, their_service) = live("by-istioctl");
    let (our_webhook, our_service) = live("by-revtag");
    assert_eq!(essence(&our_webhook, "by-revtag"), essence(&their_webhook, "by-istioctl"));
    assert_eq!(essence(&our_service, "by-revtag"), essence(&their_service, "by-istioctl"));
    // Both list the same way afterwards.
    let rows = list_json(&plane);
    assert_eq!(row(&rows, Some("by-istioctl"), CANARY.name)["revisionInstalled"], true);
    assert_eq!(row(&rows, Some("by-revtag"), CANARY.name)["revisionInstalled"], true);
}
