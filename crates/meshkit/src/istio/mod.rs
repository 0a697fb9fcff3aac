//! The Istio revision model: pure functions over plain views of cluster objects.
//!
//! Everything here is computed from a snapshot; nothing talks to the cluster. The rules follow
//! what Istio's own webhooks and istiod do (see the selector table in `injection.rs`).

pub mod apis;
pub mod defaults;
pub mod deprecated;
pub mod explain;
mod injection;
pub mod injects;
mod mesh;
pub mod names;
mod objects;
mod overlap;
mod proxy_rows;
pub mod proxy_status;
mod selector;
pub mod support;
pub mod tag_objects;
mod version;

pub use injection::{
    Injected, Intended, NamespaceInjection, OptOut, PodRevisionState, asks_for_gateway_template, handler_skips,
    namespace_injection, pod_injected, pod_intended, pod_opt_out, pod_requested, pod_state,
};
pub use mesh::{Mesh, Revision, Tag, TagTarget};
pub use objects::{
    ContainerView, IstiodView, Labels, NamespaceView, PodView, Requests, ServiceView, WebhookConfigView, WebhookView,
};
pub use overlap::{Overlap, injection_overlaps};
pub use proxy_rows::{ProxyRow, Verdict, proxy_rows};
pub use selector::{LabelSelector, Requirement, SelectorOp};
pub use version::{IstioVersion, proxy_version};

/// Names of labels and annotations Istio reads and writes.
pub mod keys {
    /// Revision (or tag) a namespace, pod, webhook or control-plane object belongs to.
    pub const REV: &str = "istio.io/rev";
    /// Marks a webhook or Service as the record of a revision tag.
    pub const TAG: &str = "istio.io/tag";
    /// Legacy namespace switch: `enabled` means "the default revision"; anything else turns injection off.
    pub const INJECTION: &str = "istio-injection";
    /// Pod-level opt in/out.
    pub const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";
    /// Written by the injector on every pod it injects: JSON with the real revision.
    pub const SIDECAR_STATUS: &str = "sidecar.istio.io/status";
    pub const APP: &str = "app";
    /// The revision name Istio uses when none is set.
    pub const DEFAULT_REVISION: &str = "default";
    /// The tag whose revision is the cluster's default.
    pub const DEFAULT_TAG: &str = "default";
    pub const PROXY_CONTAINER: &str = "istio-proxy";
    /// Namespaces istiod's injection handler never injects, whatever selects them (and which the
    /// auto-injection entry excludes).
    pub const NEVER_INJECTED_NAMESPACES: [&str; 4] =
        ["kube-system", "kube-public", "kube-node-lease", "local-path-storage"];
    pub const DISCOVERY_CONTAINER: &str = "discovery";
    /// The selector Istio writes into an injector's entries to switch it off.
    pub const DEACTIVATED: (&str, &str) = ("istio.io/deactivated", "never-match");
    /// Suffix of the injector entries inside a MutatingWebhookConfiguration.
    pub const INJECTOR_SUFFIX: &str = "sidecar-injector.istio.io";
    /// Label every injection template (sidecar, gateway, gRPC agent) puts on the pods it injects:
    /// lists of injected pods select on it. Not `security.istio.io/tlsMode`: the gateway template
    /// does not set that one, so gateway pods would be missed (found with real istiod).
    pub const INJECTED_POD_LABEL: &str = "service.istio.io/canonical-name";
    /// Pod annotation naming the injection templates istiod applies (`gateway` for gateways).
    pub const INJECT_TEMPLATES: &str = "inject.istio.io/templates";
    /// The injection template of gateways (the gateway chart's Deployments ask for it).
    pub const GATEWAY_TEMPLATE: &str = "gateway";
    /// Pod annotation holding the proxy's own `ProxyConfig` overrides.
    pub const PROXY_CONFIG: &str = "proxy.istio.io/config";
    /// Selects istiod Deployments (their revision is in `istio.io/rev`).
    pub const ISTIOD_SELECTOR: &str = "app=istiod";
    /// Secrets holding the mesh's CA: a plugged-in CA, else the one istiod generated. Losing them
    /// makes istiod mint a new root, and existing proxies and peer clusters stop trusting it.
    pub const CA_SECRETS: &[&str] = &["cacerts", "istio-ca-secret"];
    /// Label selectors that together pick the cluster-scoped objects an Istio install owns
    /// (webhooks, ClusterRoles and bindings): Helm charts label them `part-of=istio`, istioctl and
    /// older charts by `app` and the revision or tag labels. A label selector cannot say "either",
    /// so each is listed separately and the results merged.
    pub const INSTALL_SELECTORS: &[&str] =
        &["app.kubernetes.io/part-of=istio", REV, TAG, "app in (istiod,istio-reader,sidecar-injector)"];
    /// Per-namespace objects istiod derives and rewrites itself (`istio-ca-root-cert`), and the one
    /// Kubernetes puts in every namespace: never backed up, or a restore would fight their owners.
    pub const DERIVED_CONFIGMAPS: &[&str] = &["istio-ca-root-cert", "kube-root-ca.crt"];

    /// Whether a key is in one of Istio's domains (`istio.io/…`, `sidecar.istio.io/…`, any
    /// `*.istio.io/…`): every pod annotation a rule reads is.
    pub fn is_istio_key(key: &str) -> bool {
        key.split_once('/').is_some_and(|(domain, _)| domain == "istio.io" || domain.ends_with(".istio.io"))
    }
}
