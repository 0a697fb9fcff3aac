//! kwok's PortForward objects for the istiod pods the kubelet runs: kwok's server answers the
//! apiserver's port-forward to a pod (`kubectl port-forward`, istioctl, the plugins) by dialing
//! what the object names, which is the istiod process's loopback port for that container port.

use serde_json::{Value, json};

use crate::egress::LocalPod;

/// The PortForward for a pod whose container ports `local` serves. Owned by the pod, so the
/// garbage collector removes it with the pod.
pub fn manifest(pod: &Value, local: &LocalPod) -> Value {
    let meta = &pod["metadata"];
    let forwards: Vec<Value> = local
        .ports
        .iter()
        .map(|(port, local)| json!({"ports": [port], "target": {"port": local, "address": "127.0.0.1"}}))
        .collect();
    json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "PortForward",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}],
        },
        "spec": {"forwards": forwards},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_each_container_port_to_its_loopback_port() {
        let pod = json!({"metadata": {"name": "istiod-x", "namespace": "istio-system", "uid": "u"}});
        let local = LocalPod { ports: [(8080, 40002), (15012, 40003)].into(), ..LocalPod::default() };
        let m = manifest(&pod, &local);
        assert_eq!(
            m["spec"]["forwards"][0],
            json!({"ports": [8080], "target": {"port": 40002, "address": "127.0.0.1"}})
        );
        assert_eq!(m["metadata"]["ownerReferences"][0]["uid"], "u");
    }
}
