//! The minimal messages decode what the full types decode, from the bytes the apiserver sends.

use k8s_openapi::api::core::v1::Pod as FullPod;
use prost::Message;

use super::*;

/// A pod as the injector leaves it, written with the minimal messages plus fields they do not
/// name (which must be skipped).
fn encoded_pod() -> Vec<u8> {
    let pod = Pod {
        metadata: Some(ObjectMeta {
            name: "web-1".into(),
            namespace: "shop".into(),
            deletion_timestamp: None,
            labels: [("app".into(), "web".into()), ("istio.io/rev".into(), "1-31-1".into())].into(),
            annotations: [
                ("sidecar.istio.io/status".into(), r#"{"revision":"1-31-1"}"#.into()),
                ("kubectl.kubernetes.io/last-applied-configuration".into(), "x".repeat(4096)),
                ("prometheus.io/scrape".into(), "true".into()),
            ]
            .into(),
            owner_references: vec![
                OwnerReference { kind: "Other".into(), name: "x".into(), controller: false },
                OwnerReference { kind: "ReplicaSet".into(), name: "web-5459889f8b".into(), controller: true },
            ],
        }),
        spec: Some(PodSpec {
            containers: vec![
                Container {
                    name: "web".into(),
                    image: "nginx".into(),
                    resources: Some(ResourceRequirements {
                        requests: [("cpu".into(), Quantity { string: "250m".into() })].into(),
                    }),
                },
                Container {
                    name: "istio-proxy".into(),
                    image: "docker.io/istio/proxyv2:1.31.1".into(),
                    resources: Some(ResourceRequirements {
                        requests: [
                            ("cpu".into(), Quantity { string: "100m".into() }),
                            ("memory".into(), Quantity { string: "128Mi".into() }),
                        ]
                        .into(),
                    }),
                },
            ],
            node_name: "node-1".into(),
            init_containers: vec![Container { name: "istio-init".into(), image: "proxyv2".into(), resources: None }],
        }),
        status: Some(PodStatus { phase: "Running".into() }),
    };
    let mut bytes = pod.encode_to_vec();
    // An unknown length-delimited field (managedFields-like, 17) and varint (7) at the end.
    bytes.extend_from_slice(&[0x0a, 0x06, 0x8a, 0x01, 0x03, b'a', b'b', b'c']);
    bytes
}

#[test]
fn a_view_from_protobuf_keeps_what_the_full_types_keep() {
    let view = PodView::from(Pod::decode(&encoded_pod()[..]).unwrap());
    assert_eq!((view.namespace.as_str(), view.name.as_str()), ("shop", "web-1"));
    assert_eq!(view.labels["istio.io/rev"], "1-31-1");
    assert_eq!(view.annotations["sidecar.istio.io/status"], r#"{"revision":"1-31-1"}"#);
    assert_eq!(view.annotations.len(), 1, "only Istio's annotations are kept: {:?}", view.annotations.keys());
    assert_eq!(view.owner, Some(("ReplicaSet".into(), "web-5459889f8b".into())), "the controller, not the first");
    assert_eq!(view.containers[1].image, "docker.io/istio/proxyv2:1.31.1");
    assert_eq!(view.init_containers[0].name, "istio-init");
    assert_eq!(view.node.as_deref(), Some("node-1"));
    assert_eq!((view.requests.cpu_millis, view.requests.memory_bytes), (350, 128 * 1024 * 1024));
    assert!(!view.finished && !view.terminating);

    let full: FullPod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "shop",
            "labels": {"app": "web", "istio.io/rev": "1-31-1"},
            "annotations": {"sidecar.istio.io/status": "{\"revision\":\"1-31-1\"}",
                "kubectl.kubernetes.io/last-applied-configuration": "{}", "prometheus.io/scrape": "true"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "1"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5459889f8b", "uid": "2", "controller": true}]},
        "spec": {"nodeName": "node-1",
            "initContainers": [{"name": "istio-init", "image": "proxyv2"}],
            "containers": [
                {"name": "web", "image": "nginx", "resources": {"requests": {"cpu": "250m"}}},
                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.31.1",
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
        "status": {"phase": "Running"}
    }))
    .unwrap();
    assert_eq!(PodView::from(&full), view, "one view, whichever encoding the apiserver answered in");
}

#[test]
fn finished_and_terminating_pods_are_marked() {
    let pod = Pod {
        metadata: Some(ObjectMeta { deletion_timestamp: Some(Time { seconds: 1 }), ..Default::default() }),
        spec: None,
        status: Some(PodStatus { phase: "Succeeded".into() }),
    };
    let view = PodView::from(pod);
    assert!(view.finished && view.terminating);
    assert_eq!(view.node, None);
}

#[test]
fn selectors_are_percent_encoded() {
    assert_eq!(super::super::query_value("istio.io/rev,!istio-injection"), "istio.io%2Frev%2C%21istio-injection");
}
