//! The proxies of injected pods: one `xdsproxy` process (`tests/go/istio/xdsproxy`) per running
//! pod that has an injected `istio-proxy`, holding the xDS stream its Envoy would hold.
//!
//! It connects where the pod's injected proxy configuration points (`PROXY_CONFIG`'s
//! `discoveryAddress`, a Service name), resolved as the egress resolves Services: to the local
//! istiod process behind it, on that Service's plaintext xDS port (15010; the harness proxies hold
//! no workload certificate for 15012). A pod annotated `meshtest.io/xds: off` gets no proxy,
//! `withhold` one that never ACKs (istiod reports it STALE), `nack` one that rejects everything.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::egress::{Decision, Routes};

/// The annotation a test sets on a pod to choose how its proxy behaves.
pub const MODE_ANNOTATION: &str = "meshtest.io/xds";
/// istiod's plaintext xDS port, on every istiod Service.
const PLAINTEXT_XDS: u16 = 15010;

/// What one pod's proxy is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySpec {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// `istiod-1-31-1.istio-system.svc:15012`, as the pod's configuration says.
    pub discovery: String,
    /// The loopback port of the istiod process the discovery Service leads to now.
    pub local_port: u16,
    pub args: Vec<String>,
}

pub struct RunningProxy {
    pub spec: ProxySpec,
    pub child: Child,
}

fn injected_proxy(pod: &Value) -> Option<&Value> {
    pod.pointer("/metadata/annotations/sidecar.istio.io~1status")?;
    ["/spec/containers", "/spec/initContainers"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .find(|c| c["name"] == "istio-proxy")
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"].as_str()
}

/// The proxy a pod should have now: `Ok(None)` for a pod without one, `Err` with the reason
/// when it should have one that cannot start yet. Pure, so it is unit-tested on plain data.
pub fn desired(pod: &Value, routes: &Routes) -> Result<Option<ProxySpec>, String> {
    let meta = &pod["metadata"];
    let Some(proxy) = injected_proxy(pod) else { return Ok(None) };
    let mode = meta["annotations"][MODE_ANNOTATION].as_str().unwrap_or("ack");
    let ip = pod.pointer("/status/podIP").and_then(Value::as_str).unwrap_or_default();
    if mode == "off" || meta.get("deletionTimestamp").is_some() || ip.is_empty() {
        return Ok(None);
    }
    let (namespace, name) = (meta["namespace"].as_str().unwrap_or_default(), meta["name"].as_str().unwrap_or_default());
    let proxy_config = env_value(proxy, "PROXY_CONFIG")
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let discovery = proxy_config["discoveryAddress"].as_str().unwrap_or("istiod.istio-system.svc:15012").to_string();
    let host = discovery.rsplit_once(':').map_or(discovery.as_str(), |(h, _)| h);
    let mut parts = host.split('.');
    let (service, service_ns) = (parts.next().unwrap_or_default(), parts.next().unwrap_or("istio-system"));
    let local_port = match routes.resolve_service(service_ns, service, PLAINTEXT_XDS) {
        Decision::Local(port) => port,
        Decision::Refused(why) => return Err(format!("{discovery}: {why}")),
    };
    let node_type = match proxy["args"].as_array() {
        Some(args) if args.iter().any(|a| a == "router") => "router",
        _ => "sidecar",
    };
    let version = proxy["image"].as_str().and_then(|i| i.rsplit_once(':')).map_or("", |(_, tag)| tag);
    // What pilot-agent puts in the node metadata: its ISTIO_META_* environment, and the pod's facts.
    let mut metadata: BTreeMap<String, Value> = proxy["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((e["name"].as_str()?.strip_prefix("ISTIO_META_")?.to_string(), e["value"].as_str()?.into()))
        })
        .map(|(k, v): (String, String)| (k, Value::String(v)))
        .collect();
    metadata.extend([
        ("ISTIO_VERSION".into(), json!(version)),
        ("NAME".into(), json!(name)),
        ("NAMESPACE".into(), json!(namespace)),
        ("INSTANCE_IPS".into(), json!(ip)),
        ("LABELS".into(), meta["labels"].clone()),
        // istiod lists a connection as a proxy (syncz, proxy-status) only when it sent its config.
        ("PROXY_CONFIG".into(), proxy_config),
        ("SERVICE_ACCOUNT".into(), pod.pointer("/spec/serviceAccountName").cloned().unwrap_or(json!("default"))),
    ]);
    metadata.entry("CLUSTER_ID".into()).or_insert(json!("Kubernetes"));
    let args = vec![
        format!("-address=127.0.0.1:{local_port}"),
        format!("-node-id={node_type}~{ip}~{name}.{namespace}~{namespace}.svc.cluster.local"),
        format!("-meta={}", Value::Object(metadata.into_iter().collect())),
        format!("-ack={}", if matches!(mode, "withhold" | "nack") { mode } else { "ack" }),
    ];
    Ok(Some(ProxySpec {
        uid: meta["uid"].as_str().unwrap_or_default().into(),
        namespace: namespace.into(),
        name: name.into(),
        discovery,
        local_port,
        args,
    }))
}

pub fn start(binary: &Path, logs: &Path, spec: ProxySpec) -> std::io::Result<RunningProxy> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join(format!("xdsproxy-{}-{}.log", spec.namespace, spec.name)))?;
    let child =
        Command::new(binary).args(&spec.args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).spawn()?;
    Ok(RunningProxy { spec, child })
}

pub fn stop(mut proxy: RunningProxy) {
    let _ = proxy.child.kill();
    let _ = proxy.child.wait();
}

/// Brings the running proxies in line with the pods: a proxy per pod that wants one, restarted
/// when its pod's istiod moved to other ports (a proxy re-resolves its discovery address).
/// A proxy whose istiod is gone keeps running and keeps retrying, as Envoy does.
pub fn reconcile(
    binary: &Path,
    logs: &Path,
    pods: &[Value],
    routes: &Routes,
    running: &mut Vec<RunningProxy>,
    log: &dyn Fn(String),
) {
    let mut wanted: BTreeMap<String, Result<Option<ProxySpec>, String>> = BTreeMap::new();
    for pod in pods {
        wanted.insert(pod["metadata"]["uid"].as_str().unwrap_or_default().into(), desired(pod, routes));
    }
    let (keep, gone): (Vec<_>, Vec<_>) =
        std::mem::take(running).into_iter().partition(|p| match wanted.get(&p.spec.uid) {
            Some(Ok(Some(spec))) => spec.local_port == p.spec.local_port,
            // Its istiod cannot be resolved now: keep it retrying the address it had.
            Some(Err(_)) => true,
            _ => false,
        });
    for p in gone {
        log(format!("stopping the proxy of {}/{}", p.spec.namespace, p.spec.name));
        stop(p);
    }
    *running = keep;
    for (uid, want) in wanted {
        let Ok(Some(spec)) = want else { continue };
        if running.iter().any(|p| p.spec.uid == uid) {
            continue;
        }
        let what = format!("{}/{} → {} (127.0.0.1:{})", spec.namespace, spec.name, spec.discovery, spec.local_port);
        match start(binary, logs, spec) {
            Ok(p) => {
                log(format!("started the proxy of {what} (pid {})", p.child.id()));
                running.push(p);
            }
            Err(e) => log(format!("cannot start the proxy of {what}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::{LocalPod, ServiceRoute};

    fn routes() -> Routes {
        Routes {
            pods: vec![LocalPod {
                ip: "10.244.0.5".into(),
                labels: [("app".to_string(), "istiod".to_string()), ("istio.io/rev".into(), "1-31-1".into())].into(),
                ports: [(15010, 41010)].into(),
                port_names: BTreeMap::new(),
            }],
            services: vec![ServiceRoute {
                namespace: "istio-system".into(),
                name: "istiod-1-31-1".into(),
                cluster_ip: "10.0.0.20".into(),
                selector: [("app".to_string(), "istiod".to_string()), ("istio.io/rev".into(), "1-31-1".into())].into(),
                ports: vec![(15010, "15010".into()), (15012, "15012".into())],
            }],
            kubelets: Vec::new(),
        }
    }

    fn pod(discovery: &str, mode: Option<&str>) -> Value {
        json!({
            "metadata": {
                "namespace": "shop", "name": "web-1", "uid": "u1", "labels": {"app": "web"},
                "annotations": {"sidecar.istio.io/status": "{}", "meshtest.io/xds": mode},
            },
            "spec": {"containers": [{"name": "web"}, {
                "name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.31.1",
                "args": ["proxy", "sidecar"],
                "env": [
                    {"name": "PROXY_CONFIG", "value": format!("{{\"discoveryAddress\":\"{discovery}\"}}")},
                    {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
                ],
            }]},
            "status": {"podIP": "10.244.0.9"},
        })
    }

    #[test]
    fn a_proxy_connects_where_its_injected_configuration_points() {
        let spec = desired(&pod("istiod-1-31-1.istio-system.svc:15012", None), &routes()).unwrap().unwrap();
        assert_eq!(spec.local_port, 41010, "the Service's plaintext port on the local istiod");
        assert!(spec.args.contains(&"-node-id=sidecar~10.244.0.9~web-1.shop~shop.svc.cluster.local".into()));
        let meta = spec.args.iter().find_map(|a| a.strip_prefix("-meta=")).unwrap();
        let meta: Value = serde_json::from_str(meta).unwrap();
        assert_eq!((meta["ISTIO_VERSION"].as_str(), meta["CLUSTER_ID"].as_str()), (Some("1.31.1"), Some("Kubernetes")));
        assert_eq!(meta["LABELS"]["app"], "web");
        assert_eq!(meta["PROXY_CONFIG"]["discoveryAddress"], "istiod-1-31-1.istio-system.svc:15012");
        assert!(spec.args.contains(&"-ack=ack".into()));
    }

    #[test]
    fn modes_and_pods_without_a_proxy() {
        let r = routes();
        let withhold = desired(&pod("istiod-1-31-1.istio-system.svc:15012", Some("withhold")), &r).unwrap().unwrap();
        assert!(withhold.args.contains(&"-ack=withhold".into()));
        assert_eq!(desired(&pod("istiod-1-31-1.istio-system.svc:15012", Some("off")), &r), Ok(None));
        let mut plain = pod("x", None);
        plain["metadata"]["annotations"] = json!({});
        assert_eq!(desired(&plain, &r), Ok(None), "not injected");
        let unresolved = desired(&pod("istiod-1-30-3.istio-system.svc:15012", None), &r).unwrap_err();
        assert!(unresolved.contains("istiod-1-30-3"), "{unresolved}");
    }
}
