//! What the kubelet reports to tests and `cluster up`: its istiods and its proxies, as JSON files
//! in the plane's directory, each replaced whole (written aside, then renamed).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Config, Running, proxies};

/// The file where the kubelet reports its pods (tests and `cluster up` read it).
pub fn status_file(dir: &Path) -> PathBuf {
    dir.join("kubelet-pods.json")
}

/// The istiod pods of a pod list (label `app=istiod`), as a list.
pub(super) fn istiod_pods(list: &Value) -> Value {
    let items = list["items"].as_array().into_iter().flatten().filter(|p| p["metadata"]["labels"]["app"] == "istiod");
    json!({"items": items.cloned().collect::<Vec<_>>()})
}

/// The file where the kubelet reports the proxies it runs.
pub fn proxies_file(dir: &Path) -> PathBuf {
    dir.join("kubelet-proxies.json")
}

pub(super) fn write_proxies(config: &Config, running: &[proxies::RunningProxy]) {
    let list: Vec<Value> = running
        .iter()
        .map(|p| {
            json!({
                "namespace": p.spec.namespace, "name": p.spec.name, "uid": p.spec.uid,
                "discovery": p.spec.discovery, "istiod_port": p.spec.local_port, "pid": p.child.id(),
            })
        })
        .collect();
    let tmp = proxies_file(&config.dir).with_extension("tmp");
    if fs::write(&tmp, serde_json::to_vec_pretty(&list).unwrap_or_default()).is_ok() {
        let _ = fs::rename(tmp, proxies_file(&config.dir));
    }
}

pub(super) fn write_status(config: &Config, running: &[Running]) {
    let pods: Vec<Value> = running
        .iter()
        .map(|r| {
            json!({
                "namespace": r.namespace, "name": r.name, "uid": r.uid, "ip": r.local.ip,
                "revision": r.local.labels.get("istio.io/rev"), "version": r.version,
                "pid": r.child.id(), "ready": r.ready, "restarts": r.restarts, "ports": r.local.ports,
            })
        })
        .collect();
    let tmp = status_file(&config.dir).with_extension("tmp");
    if fs::write(&tmp, serde_json::to_vec_pretty(&pods).unwrap_or_default()).is_ok() {
        let _ = fs::rename(tmp, status_file(&config.dir));
    }
}
