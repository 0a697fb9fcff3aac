//! One HTTP request to a pod's port through the apiserver's `pods/portforward`, as a user does
//! with `kubectl port-forward` and curl. The apiserver reaches the pod through its node's kubelet;
//! we never dial a pod IP. The request arrives on the pod's loopback, which is what istiod's debug
//! endpoints (port 8080) accept without a token.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use thiserror::Error;

use crate::cluster::Cluster;

/// Longest answer we read (a syncz of many thousand proxies is a few MB).
const MAX_BODY: usize = 64 << 20;
/// One stuck istiod must not hang the command: the whole request, port-forward included.
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, Error)]
pub enum PortForwardError {
    #[error("the apiserver refused the port-forward: {0}")]
    Refused(String),
    #[error("no answer within {}s", LIMIT.as_secs())]
    Timeout,
    #[error("HTTP over the port-forward failed: {0}")]
    Http(String),
    #[error("{path} answered {status}")]
    Status { path: String, status: u16 },
}

impl PortForwardError {
    /// A refusal by RBAC (the user may not `create pods/portforward`), told apart from the rest.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, PortForwardError::Refused(m) if m.contains("403") || m.to_ascii_lowercase().contains("forbidden"))
    }
}

/// `GET path` on `pod`'s container `port`; the body of a 200 answer.
pub async fn get(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    port: u16,
    path: &str,
) -> Result<Bytes, PortForwardError> {
    tokio::time::timeout(LIMIT, request(cluster, namespace, pod, port, path))
        .await
        .map_err(|_| PortForwardError::Timeout)?
}

async fn request(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    port: u16,
    path: &str,
) -> Result<Bytes, PortForwardError> {
    let api: Api<Pod> = Api::namespaced(cluster.client(), namespace);
    let mut forwarder = api.portforward(pod, &[port]).await.map_err(|e| PortForwardError::Refused(chain(&e)))?;
    let stream = forwarder.take_stream(port).ok_or_else(|| PortForwardError::Http("no stream for the port".into()))?;
    let http = |e: hyper::Error| PortForwardError::Http(chain(&e));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, "localhost")
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| PortForwardError::Http(e.to_string()))?;
    // The connection is driven alongside the request; it ends when the answer has been read.
    let exchange = async {
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| PortForwardError::Http(e.to_string()))?
            .to_bytes();
        if status != 200 {
            return Err(PortForwardError::Status { path: path.to_string(), status });
        }
        Ok(body)
    };
    let (answer, _) = tokio::join!(exchange, async {
        let _ = connection.await;
    });
    drop(forwarder);
    answer
}

fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(next) = current {
        text.push_str(": ");
        text.push_str(&next.to_string());
        current = next.source();
    }
    text
}
