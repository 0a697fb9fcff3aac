//! `kubectl-revtag` against a real kube-apiserver + etcd with Istio's own objects.
//!
//! One cluster with the Istio fixture is shared by the read-only tests; tests that change the
//! cluster start their own.

mod common;
mod istioctl;
mod list;
mod tags;
