//! Kubernetes access that is not Istio's: the HTTP client, the label-selector grammar, checked
//! before a request is sent, one HTTP request through a pod's port-forward, and the run lock every mutating
//! command takes.

pub mod client;
pub mod label_selector;
pub mod lock;
pub mod pods;
pub mod portforward;
pub mod protobuf;
pub mod watch;

/// Percent-encoding of a query value (selectors carry `=`, `,`, `!` and `/`).
pub fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
