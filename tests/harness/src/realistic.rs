//! Pods of real shape and size for benchmarks: one pod that real istiod (1.30.3, Tier C)
//! injected, with the managedFields and status the apiserver stored for it
//! (`tests/harness/data/injected-pod.json`), copied under other names and revisions. The Tier C
//! test checks that istiod still injects pods of this shape.

use serde_json::Value;

use crate::fixture::IstioRevision;

const TEMPLATE: &str = include_str!("../data/injected-pod.json");
/// The revision and version the template was injected by.
pub const TEMPLATE_REVISION: (&str, &str) = ("1-30-3", "1.30.3");

/// The template as data.
pub fn injected_pod_template() -> Value {
    serde_json::from_str(TEMPLATE).expect("the pod template is JSON")
}

/// One pod as JSON (a YAML document too), named `name` in `namespace`, injected by `revision`.
pub fn realistic_pod(namespace: &str, name: &str, revision: IstioRevision) -> String {
    let text = TEMPLATE.replace(TEMPLATE_REVISION.0, revision.name).replace(TEMPLATE_REVISION.1, revision.version);
    let mut pod: Value = serde_json::from_str(&text).expect("the pod template is JSON");
    pod["metadata"]["name"] = name.into();
    pod["metadata"]["namespace"] = namespace.into();
    let mut out = serde_json::to_string(&pod).expect("JSON");
    out.push_str("\n---\n");
    out
}

/// What makes a pod's injected shape: its containers, init containers, volumes and the
/// annotations istiod writes. Compared between the template and a freshly injected pod.
pub fn injected_shape(pod: &Value) -> Vec<String> {
    let names = |pointer: &str| -> Vec<String> {
        pod.pointer(pointer)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(|n| format!("{pointer}:{n}")))
            .collect()
    };
    let mut shape = names("/spec/containers");
    shape.extend(names("/spec/initContainers"));
    shape.extend(names("/spec/volumes").into_iter().filter(|v| !v.contains("kube-api-access")));
    if let Some(annotations) = pod["metadata"]["annotations"].as_object() {
        shape.extend(annotations.keys().map(|k| format!("annotation:{k}")));
    }
    shape.sort();
    shape
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::CANARY;

    #[test]
    fn copies_are_renamed_and_re_revisioned_and_keep_their_size() {
        let pod: Value =
            serde_json::from_str(realistic_pod("ns-1", "web-3", CANARY).trim_end_matches("---\n")).unwrap();
        assert_eq!(pod["metadata"]["name"], "web-3");
        assert_eq!(pod["metadata"]["namespace"], "ns-1");
        let text = pod.to_string();
        assert!(text.contains("proxyv2:1.31.1") && !text.contains("1.30.3"));
        assert!(pod["metadata"]["managedFields"].as_array().unwrap().len() >= 2);
        assert!(text.len() > 8_000, "a real injected pod is about 10 KB: {}", text.len());
        assert!(injected_shape(&pod).contains(&"/spec/containers:istio-proxy".to_string()));
    }
}
