//! `kubectl-meshbackup` against a real kube-apiserver holding Istio's own CRDs and control planes
//! (rendered from Istio's charts), plus custom resources written here.

mod bad_input;
mod common;
mod conflicts;
mod drill;
mod round_trip;
