//! Kubernetes access that is not Istio's: the label-selector grammar, checked before a request
//! is sent, and one HTTP request through a pod's port-forward.

pub mod label_selector;
pub mod pods;
pub mod portforward;
pub mod protobuf;
pub mod watch;
