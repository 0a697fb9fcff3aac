//! What a kubelet gives a container before it starts: its environment (literal values, the
//! downward API, resource fields, ConfigMap and Secret keys) and its volumes written out under
//! the pod's own directory (ConfigMaps, Secrets, projected service-account tokens, downward API,
//! emptyDirs). Paths a process opens relative to its working directory then find them.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::Value;

/// Reads objects the pod refers to, and asks for tokens.
pub trait Api {
    /// `kind` is `configmap` or `secret`; `None` when it does not exist.
    fn get(&self, kind: &str, namespace: &str, name: &str) -> Result<Option<Value>>;
    /// A token for `service_account`, bound to the pod, for `audience` (the API's own when empty).
    fn token(&self, pod: &Value, service_account: &str, audience: &str, seconds: u64) -> Result<String>;
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// A field of the pod, as `fieldRef.fieldPath` names it.
pub fn field(pod: &Value, path: &str) -> Option<String> {
    let simple = match path {
        "metadata.name" => "/metadata/name",
        "metadata.namespace" => "/metadata/namespace",
        "metadata.uid" => "/metadata/uid",
        "spec.serviceAccountName" => "/spec/serviceAccountName",
        "spec.nodeName" => "/spec/nodeName",
        "status.podIP" => "/status/podIP",
        "status.hostIP" => "/status/hostIP",
        _ => "",
    };
    if !simple.is_empty() {
        return pod.pointer(simple).and_then(Value::as_str).map(str::to_string);
    }
    for (prefix, map) in [("metadata.labels['", "labels"), ("metadata.annotations['", "annotations")] {
        if let Some(key) = path.strip_prefix(prefix).and_then(|k| k.strip_suffix("']")) {
            return pod["metadata"][map][key].as_str().map(str::to_string);
        }
    }
    None
}

/// `limits.cpu` and friends. With no limit a kubelet gives the node's allocatable; the fake node
/// runs on this machine, so its allocatable is this machine's.
fn resource_field(container: &Value, resource: &str) -> String {
    let set = container.pointer(&format!("/resources/{}", resource.replace('.', "/"))).and_then(Value::as_str);
    if resource.ends_with("cpu") {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let millis = set.map(|q| {
            q.strip_suffix('m')
                .map_or_else(|| q.parse::<f64>().unwrap_or(1.0) * 1000.0, |m| m.parse().unwrap_or(1000.0))
        });
        return millis.map_or(cores, |m| ((m / 1000.0).ceil() as usize).clamp(1, cores)).to_string();
    }
    set.map(memory_bytes).unwrap_or_else(|| (8u64 << 30).to_string())
}

fn memory_bytes(quantity: &str) -> String {
    let units =
        [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("k", 1000), ("M", 1_000_000), ("G", 1_000_000_000)];
    for (suffix, factor) in units {
        if let Some(n) = quantity.strip_suffix(suffix).and_then(|n| n.parse::<u64>().ok()) {
            return (n * factor).to_string();
        }
    }
    quantity.to_string()
}

/// The container's environment, resolved.
pub fn environment(api: &dyn Api, pod: &Value, container: &Value) -> Result<Vec<(String, String)>> {
    let namespace = str_at(pod, "/metadata/namespace");
    let mut env = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = str_at(var, "/name").to_string();
        let value = if let Some(v) = var.get("value") {
            v.as_str().unwrap_or_default().to_string()
        } else if let Some(path) = var.pointer("/valueFrom/fieldRef/fieldPath").and_then(Value::as_str) {
            field(pod, path).unwrap_or_default()
        } else if let Some(resource) = var.pointer("/valueFrom/resourceFieldRef/resource").and_then(Value::as_str) {
            resource_field(container, resource)
        } else if let Some(sel) = var.pointer("/valueFrom/configMapKeyRef").or(var.pointer("/valueFrom/secretKeyRef")) {
            let kind = if var.pointer("/valueFrom/configMapKeyRef").is_some() { "configmap" } else { "secret" };
            let object = api.get(kind, namespace, str_at(sel, "/name"))?;
            match object.as_ref().and_then(|o| data(o, kind).into_iter().find(|(k, _)| k == str_at(sel, "/key"))) {
                Some((_, bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                None if sel["optional"].as_bool() == Some(true) => continue,
                None => bail!("{kind} {}/{} key {} not found", namespace, str_at(sel, "/name"), str_at(sel, "/key")),
            }
        } else {
            String::new()
        };
        env.push((name, value));
    }
    Ok(env)
}

/// `(key, bytes)` of a ConfigMap's `data` or a Secret's decoded `data`.
fn data(object: &Value, kind: &str) -> Vec<(String, Vec<u8>)> {
    let Some(map) = object["data"].as_object() else { return Vec::new() };
    map.iter()
        .filter_map(|(k, v)| {
            let text = v.as_str()?;
            let bytes = if kind == "secret" {
                base64::engine::general_purpose::STANDARD.decode(text).ok()?
            } else {
                text.as_bytes().to_vec()
            };
            Some((k.clone(), bytes))
        })
        .collect()
}

/// Writes `key → path` items (all keys when `items` is absent) below `dir`.
fn write_items(dir: &Path, entries: &[(String, Vec<u8>)], items: Option<&Value>) -> Result<()> {
    fs::create_dir_all(dir)?;
    match items.and_then(Value::as_array) {
        Some(items) => {
            for item in items {
                if let Some((_, bytes)) = entries.iter().find(|(k, _)| k == str_at(item, "/key")) {
                    write_file(&dir.join(str_at(item, "/path")), bytes)?;
                }
            }
        }
        None => {
            for (key, bytes) in entries {
                write_file(&dir.join(key), bytes)?;
            }
        }
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// One source of a `configMap`/`secret` volume or projection; `Ok(false)` when an optional one is
/// missing, an error when a required one is (a kubelet keeps the pod waiting then).
fn object_source(api: &dyn Api, namespace: &str, source: &Value, kind: &str, dir: &Path) -> Result<bool> {
    let name = if kind == "secret" { str_at(source, "/secretName") } else { str_at(source, "/name") };
    let name = if name.is_empty() { str_at(source, "/name") } else { name };
    match api.get(kind, namespace, name)? {
        Some(object) => write_items(dir, &data(&object, kind), source.get("items")).map(|()| true),
        None if source["optional"].as_bool() == Some(true) => Ok(false),
        None => bail!("{kind} {namespace}/{name} does not exist yet"),
    }
}

fn downward_items(pod: &Value, items: &Value, dir: &Path) -> Result<()> {
    for item in items.as_array().into_iter().flatten() {
        let value = item.pointer("/fieldRef/fieldPath").and_then(Value::as_str).and_then(|p| field(pod, p));
        write_file(&dir.join(str_at(item, "/path")), value.unwrap_or_default().as_bytes())?;
    }
    Ok(())
}

/// Writes every volume `container` mounts under `root`, at its mount path.
pub fn materialise(api: &dyn Api, pod: &Value, container: &Value, root: &Path) -> Result<()> {
    let namespace = str_at(pod, "/metadata/namespace");
    let volumes = pod.pointer("/spec/volumes").and_then(Value::as_array).cloned().unwrap_or_default();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = str_at(mount, "/name");
        let dir = root.join(str_at(mount, "/mountPath").trim_start_matches('/'));
        let Some(volume) = volumes.iter().find(|v| str_at(v, "/name") == name) else {
            bail!("volume {name} is mounted but not declared");
        };
        fs::create_dir_all(&dir)?;
        if let Some(source) = volume.get("configMap") {
            object_source(api, namespace, source, "configmap", &dir)?;
        } else if let Some(source) = volume.get("secret") {
            object_source(api, namespace, source, "secret", &dir)?;
        } else if let Some(items) = volume.pointer("/downwardAPI/items") {
            downward_items(pod, items, &dir)?;
        } else if let Some(sources) = volume.pointer("/projected/sources").and_then(Value::as_array) {
            for source in sources {
                if let Some(token) = source.get("serviceAccountToken") {
                    let seconds = token["expirationSeconds"].as_u64().unwrap_or(3600).max(48 * 3600);
                    let account = str_at(pod, "/spec/serviceAccountName");
                    let jwt = api.token(pod, account, str_at(token, "/audience"), seconds)?;
                    write_file(&dir.join(str_at(token, "/path")), jwt.as_bytes())?;
                } else if let Some(cm) = source.get("configMap") {
                    object_source(api, namespace, cm, "configmap", &dir)?;
                } else if let Some(secret) = source.get("secret") {
                    object_source(api, namespace, secret, "secret", &dir)?;
                } else if let Some(items) = source.pointer("/downwardAPI/items") {
                    downward_items(pod, items, &dir)?;
                }
            }
        }
        // emptyDir (and anything else): the directory itself.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct FakeApi;
    impl Api for FakeApi {
        fn get(&self, kind: &str, _: &str, name: &str) -> Result<Option<Value>> {
            Ok(match (kind, name) {
                ("configmap", "istio-ca-root-cert") => Some(json!({"data": {"root-cert.pem": "PEM"}})),
                ("secret", "cacerts") => Some(json!({"data": {"ca-cert.pem": "Q0E="}})),
                _ => None,
            })
        }
        fn token(&self, _: &Value, account: &str, audience: &str, _: u64) -> Result<String> {
            Ok(format!("token-for-{account}-{audience}"))
        }
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "istiod-abc", "namespace": "istio-system", "uid": "u1", "labels": {"app": "istiod"}},
            "spec": {"serviceAccountName": "istiod-1-31-1", "volumes": [
                {"name": "local-certs", "emptyDir": {}},
                {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {"audience": "istio-ca", "path": "istio-token"}}]}},
                {"name": "cacerts", "secret": {"secretName": "cacerts", "optional": true}},
                {"name": "kubeconfig", "secret": {"secretName": "istio-kubeconfig", "optional": true}},
                {"name": "ca", "configMap": {"name": "istio-ca-root-cert"}},
            ]},
            "status": {"podIP": "10.244.0.5"}
        })
    }

    #[test]
    fn writes_volumes_under_the_pod_directory() {
        let dir = tempfile::tempdir().unwrap();
        let container = json!({"volumeMounts": [
            {"name": "local-certs", "mountPath": "/var/run/secrets/istio-dns"},
            {"name": "istio-token", "mountPath": "/var/run/secrets/tokens"},
            {"name": "cacerts", "mountPath": "/etc/cacerts"},
            {"name": "kubeconfig", "mountPath": "/var/run/secrets/remote"},
            {"name": "ca", "mountPath": "/var/run/secrets/istiod/ca"},
        ]});
        materialise(&FakeApi, &pod(), &container, dir.path()).unwrap();
        let read = |p: &str| fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(read("var/run/secrets/tokens/istio-token"), "token-for-istiod-1-31-1-istio-ca");
        assert_eq!(read("etc/cacerts/ca-cert.pem"), "CA");
        assert_eq!(read("var/run/secrets/istiod/ca/root-cert.pem"), "PEM");
        assert!(dir.path().join("var/run/secrets/istio-dns").is_dir());
        assert_eq!(fs::read_dir(dir.path().join("var/run/secrets/remote")).unwrap().count(), 0, "optional, absent");
        let missing = json!({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]});
        assert!(materialise(&FakeApi, &pod(), &missing, dir.path()).is_err());
    }

    #[test]
    fn resolves_the_environment_as_a_kubelet_does() {
        let container = json!({"env": [
            {"name": "REVISION", "value": "1-31-1"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "SERVICE_ACCOUNT", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "GOMEMLIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
        ], "resources": {"limits": {"memory": "2Gi"}}});
        let env = environment(&FakeApi, &pod(), &container).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap();
        assert_eq!(get("REVISION"), "1-31-1");
        assert_eq!(get("POD_NAME"), "istiod-abc");
        assert_eq!(get("SERVICE_ACCOUNT"), "istiod-1-31-1");
        assert_eq!(get("APP"), "istiod");
        assert!(get("GOMAXPROCS").parse::<usize>().unwrap() >= 1);
        assert_eq!(get("GOMEMLIMIT"), (2u64 << 30).to_string());
    }
}
