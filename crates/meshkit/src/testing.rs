//! Builders for tests of the plugins (behind the `testing` feature): plain views written in one
//! line.

use crate::istio::{IstiodView, Labels, WebhookConfigView};

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A ready istiod Deployment of `revision` running Istio `version`.
pub fn istiod(revision: &str, version: &str) -> IstiodView {
    IstiodView {
        namespace: "istio-system".into(),
        name: format!("istiod-{revision}"),
        labels: labels(&[("app", "istiod"), ("istio.io/rev", revision)]),
        image: Some(format!("docker.io/istio/pilot:{version}")),
        replicas: 1,
        ready_replicas: 1,
        ..Default::default()
    }
}

/// The injector webhook configuration of revision tag `tag` pointing at `revision` (labels only).
pub fn tag_webhook(tag: &str, revision: &str) -> WebhookConfigView {
    WebhookConfigView {
        name: format!("istio-revision-tag-{tag}"),
        labels: labels(&[("istio.io/rev", revision), ("istio.io/tag", tag)]),
        ..Default::default()
    }
}
