//! A second control plane in the cluster (another Istio namespace) is not part of this mesh: every
//! plugin leaves its injector configurations out of the mesh it reports, and `explain` still shows
//! them, because the apiserver calls them for every pod.

use meshtest::{ControlPlane, Fixture, Options, run};
use serde_json::Value;

mod common;

fn json(plugin: &str, plane: &ControlPlane, args: &[&str]) -> Value {
    let binary = common::built_binary(&format!("kubectl-{plugin}"));
    let (code, out, err) = run(meshtest::plugin(binary.to_str().unwrap(), &plane.kubeconfig).args(args));
    assert_eq!(code, 0, "{plugin} {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{plugin} {args:?}: {e}\n{out}"))
}

/// The tag injector of the fixture's canary, as another control plane in `other-mesh` would
/// install it for its own revision and tag.
fn foreign_tag_webhook(plane: &ControlPlane) -> Value {
    let mut webhook = plane.get_json(&["mutatingwebhookconfiguration", "istio-revision-tag-prod-canary"]).unwrap();
    let metadata = webhook["metadata"].as_object_mut().unwrap();
    metadata.retain(|k, _| k == "labels");
    metadata.insert("name".into(), "istio-revision-tag-elsewhere".into());
    webhook["metadata"]["labels"]["istio.io/rev"] = "9-9-9".into();
    webhook["metadata"]["labels"]["istio.io/tag"] = "elsewhere".into();
    for entry in webhook["webhooks"].as_array_mut().unwrap() {
        entry["clientConfig"]["service"]["namespace"] = "other-mesh".into();
        for selector in ["namespaceSelector", "objectSelector"] {
            for expression in entry[selector]["matchExpressions"].as_array_mut().into_iter().flatten() {
                if expression["values"] == serde_json::json!(["prod-canary"]) {
                    expression["values"] = serde_json::json!(["elsewhere"]);
                }
            }
        }
    }
    webhook
}

#[test]
fn every_plugin_sees_only_this_control_planes_injectors() {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, false).unwrap();
    plane.apply(&serde_json::to_string(&foreign_tag_webhook(&plane)).unwrap()).unwrap();
    plane.kubectl_ok(&["create", "namespace", "theirs"]).unwrap();
    plane.kubectl_ok(&["label", "namespace", "theirs", "istio.io/rev=elsewhere"]).unwrap();

    let mentions = |value: &Value| value.to_string().contains("elsewhere") || value.to_string().contains("9-9-9");
    let tags = json("revtag", &plane, &["list", "-o", "json"]);
    assert!(!tags.to_string().contains("istio-revision-tag-elsewhere"), "revtag list: {tags:#}");
    assert!(tags.to_string().contains("prod-canary"), "revtag list: {tags:#}");
    let revisions = json("revtag", &plane, &["revisions", "-o", "json"]);
    assert!(!mentions(&revisions), "revtag revisions: {revisions:#}");
    let versions = json("meshcheck", &plane, &["version", "-o", "json"]);
    assert!(!mentions(&versions), "meshcheck version: {versions:#}");
    let status = json("meshmigrate", &plane, &["status", "theirs", "-o", "json"]);
    assert_eq!(status[0]["intendedRevision"], Value::Null, "not a revision of this mesh: {status:#}");

    let explained = json("meshmigrate", &plane, &["explain", "theirs", "-o", "json"]);
    let selecting: Vec<&str> = explained["newPod"]["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["selects"] == true)
        .map(|w| w["configuration"].as_str().unwrap())
        .collect();
    assert_eq!(selecting, ["istio-revision-tag-elsewhere"], "{explained:#}");
}
