//! Pods, listed the way their size asks for: pages of [`PAGE_SIZE`] in protobuf (the apiserver
//! encodes it faster and sends fewer bytes than JSON), each decoded into minimal messages that
//! name only the fields a [`PodView`] keeps — managedFields, env, volumes, probes and status are
//! skipped on the wire, never built — and turned into views before the next page is asked for.
//! An apiserver that answers JSON is read with the full types instead. Every plugin lists pods
//! through here.

use std::collections::BTreeMap;

use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Pod as FullPod;
use prost::Message;

use super::protobuf;
use crate::cluster::{Cluster, PAGE_SIZE};
use crate::error::{Error, Result};
use crate::istio::{ContainerView, PodView, Requests, keys};

#[derive(Clone, PartialEq, Message)]
struct PodList {
    #[prost(message, repeated, tag = "2")]
    items: Vec<Pod>,
}

#[derive(Clone, PartialEq, Message)]
struct Pod {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    spec: Option<PodSpec>,
    #[prost(message, optional, tag = "3")]
    status: Option<PodStatus>,
}

#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "3")]
    namespace: String,
    #[prost(message, optional, tag = "9")]
    deletion_timestamp: Option<Time>,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    owner_references: Vec<OwnerReference>,
}

#[derive(Clone, PartialEq, Message)]
struct Time {
    #[prost(int64, tag = "1")]
    seconds: i64,
}

#[derive(Clone, PartialEq, Message)]
struct OwnerReference {
    #[prost(string, tag = "1")]
    kind: String,
    #[prost(string, tag = "3")]
    name: String,
    #[prost(bool, tag = "6")]
    controller: bool,
}

#[derive(Clone, PartialEq, Message)]
struct PodSpec {
    #[prost(message, repeated, tag = "2")]
    containers: Vec<Container>,
    #[prost(string, tag = "10")]
    node_name: String,
    #[prost(message, repeated, tag = "20")]
    init_containers: Vec<Container>,
}

#[derive(Clone, PartialEq, Message)]
struct Container {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    image: String,
    #[prost(message, optional, tag = "8")]
    resources: Option<ResourceRequirements>,
}

#[derive(Clone, PartialEq, Message)]
struct ResourceRequirements {
    #[prost(btree_map = "string, message", tag = "2")]
    requests: BTreeMap<String, Quantity>,
}

#[derive(Clone, PartialEq, Message)]
struct Quantity {
    #[prost(string, tag = "1")]
    string: String,
}

#[derive(Clone, PartialEq, Message)]
struct PodStatus {
    #[prost(string, tag = "1")]
    phase: String,
}

impl From<Pod> for PodView {
    fn from(pod: Pod) -> PodView {
        let meta = pod.metadata.unwrap_or_default();
        let spec = pod.spec.unwrap_or_default();
        let requests = spec.containers.iter().fold(Requests::default(), |sum, c| {
            let get = |key: &str, parse: fn(&str) -> Option<u64>| {
                c.resources.as_ref().and_then(|r| r.requests.get(key)).and_then(|q| parse(&q.string)).unwrap_or(0)
            };
            Requests {
                cpu_millis: sum.cpu_millis + get("cpu", crate::quantity::cpu_millis),
                memory_bytes: sum.memory_bytes + get("memory", crate::quantity::bytes),
            }
        });
        let views = |list: Vec<Container>| -> Vec<ContainerView> {
            list.into_iter().map(|c| ContainerView { name: c.name, image: c.image }).collect()
        };
        let phase = pod.status.map(|s| s.phase).unwrap_or_default();
        PodView {
            namespace: meta.namespace,
            name: meta.name,
            labels: meta.labels,
            annotations: meta.annotations.into_iter().filter(|(k, _)| keys::is_istio_key(k)).collect(),
            requests,
            containers: views(spec.containers),
            init_containers: views(spec.init_containers),
            node: Some(spec.node_name).filter(|n| !n.is_empty()),
            owner: meta.owner_references.into_iter().find(|o| o.controller).map(|o| (o.kind, o.name)),
            terminating: meta.deletion_timestamp.is_some(),
            finished: phase == "Succeeded" || phase == "Failed",
        }
    }
}

/// Every pod (of `namespace`, or of the cluster) matching `selector`, as views; `keep` drops the
/// ones not wanted as each page arrives.
pub async fn list(
    cluster: &Cluster,
    namespace: Option<&str>,
    selector: Option<&str>,
    what: &str,
    keep: impl Fn(&PodView) -> bool,
) -> Result<Vec<PodView>> {
    let path = match namespace {
        Some(ns) => format!("/api/v1/namespaces/{ns}/pods"),
        None => "/api/v1/pods".to_string(),
    };
    let mut views = Vec::new();
    let mut token = String::new();
    loop {
        let mut query = format!("limit={PAGE_SIZE}");
        for (key, value) in [("labelSelector", selector.unwrap_or_default()), ("continue", token.as_str())] {
            if !value.is_empty() {
                query.push_str(&format!("&{key}={}", super::query_value(value)));
            }
        }
        let body = cluster.call(what, page(cluster, &format!("{path}?{query}"))).await?;
        token = match protobuf::object(&body) {
            Some(list) => {
                let decoded = PodList::decode(list).map_err(|e| malformed(what, &e.to_string()))?;
                views.extend(decoded.items.into_iter().map(PodView::from).filter(&keep));
                protobuf::list_continue(list)
            }
            None => {
                let decoded: kube::core::ObjectList<FullPod> =
                    serde_json::from_slice(&body).map_err(|e| malformed(what, &e.to_string()))?;
                views.extend(decoded.items.iter().map(PodView::from).filter(&keep));
                decoded.metadata.continue_.unwrap_or_default()
            }
        };
        if token.is_empty() {
            return Ok(views);
        }
    }
}

fn malformed(what: &str, reason: &str) -> Error {
    Error::Api { action: what.to_string(), code: 200, message: format!("the response could not be read: {reason}") }
}

/// One page's body; an error status becomes the API error it is (its message read from the
/// Status the apiserver sent, in either encoding).
async fn page(cluster: &Cluster, uri: &str) -> kube::Result<prost::bytes::Bytes> {
    let request = http::Request::get(uri)
        .header(http::header::ACCEPT, protobuf::ACCEPT)
        .body(kube::client::Body::empty())
        .map_err(kube::Error::HttpError)?;
    let response = cluster.client().send(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| kube::Error::Service(e.into()))?.to_bytes();
    if status.is_success() {
        return Ok(body);
    }
    let message = match protobuf::object(&body) {
        Some(status) => protobuf::find(status, 3).map(|m| String::from_utf8_lossy(m).into_owned()),
        None => serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string)),
    }
    .unwrap_or_else(|| status.to_string());
    Err(kube::Error::Api(Box::new(kube::core::Status::failure(&message, "").with_code(status.as_u16()))))
}

#[cfg(test)]
#[path = "pods_tests.rs"]
mod tests;
