//! Kubernetes access rules that are not Istio's: today the label-selector grammar, checked
//! before a request is sent.

pub mod label_selector;
