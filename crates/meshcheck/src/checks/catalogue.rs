//! Every check, once: its stable code, where it runs, category, level, description, hint and the
//! function that runs it. A code that is not here is a compile error where it is used;
//! `docs/checks.md` and `kubectl meshcheck explain CODE` are generated from this list.

use super::check::{Check, Level::*, Run, Stage::*};
use super::{apis, control_plane, data_plane, defaults, injection, install, live};

/// Every check, by its code: a code that is not here is a compile error where it is used.
pub static MC0101: Check = Check {
    code: "MC0101",
    stage: Precheck,
    category: "kubernetes",
    level: Error,
    description: "Kubernetes version is within the target Istio's supported range",
    hint: "upgrade Kubernetes (or pick an Istio version that supports it) before upgrading Istio",
    run: Run::Cluster(&[Precheck], install::kubernetes_version),
};

pub static MC0201: Check = Check {
    code: "MC0201",
    stage: Precheck,
    category: "permissions",
    level: Error,
    description: "you may create, update, patch and delete what an upgrade changes",
    hint: "ask a cluster admin for the missing permissions, or run the upgrade as a user who has them",
    run: Run::Cluster(&[Precheck], install::permissions),
};

pub static MC0301: Check = Check {
    code: "MC0301",
    stage: Precheck,
    category: "installation",
    level: Error,
    description: "the target revision name is not already installed",
    hint: "pick a new revision name for the canary, e.g. the version with dots as dashes",
    run: Run::Cluster(&[Precheck], install::revision_name_free),
};

pub static MC0302: Check = Check {
    code: "MC0302",
    stage: Precheck,
    category: "installation",
    level: Error,
    description: "every revision tag points at an installed revision",
    hint: "point the tag at an installed revision (kubectl revtag set TAG --revision REV --overwrite) or remove it",
    run: Run::Cluster(&[Precheck, Verify], install::tags_resolve),
};

pub static MC0303: Check = Check {
    code: "MC0303",
    stage: Precheck,
    category: "installation",
    level: Error,
    description: "every namespace label names an installed revision or tag",
    hint: "relabel the namespace (kubectl meshmigrate namespace NS --to REV) or install the revision it names",
    run: Run::Cluster(&[Precheck, Verify], install::namespaces_resolve),
};

pub static MC0304: Check = Check {
    code: "MC0304",
    stage: Precheck,
    category: "installation",
    level: Warning,
    description: "no IstioOperator resources are left from the removed in-cluster operator",
    hint: "the in-cluster operator is gone since Istio 1.24: save and delete leftover IstioOperator resources so no tool acts on them",
    run: Run::Cluster(&[Precheck], install::no_operator_leftovers),
};

pub static MC0305: Check = Check {
    code: "MC0305",
    stage: Precheck,
    category: "installation",
    level: Error,
    description: "the default tag, the default validator and any legacy injector name the same default revision",
    hint: "point them at one revision: `kubectl revtag set default --revision REV --overwrite`; where istio-base is a Helm release, `helm upgrade istio-base istio/base --reuse-values --set defaultRevision=REV` moves the validator",
    run: Run::Cluster(&[Precheck], defaults::default_agrees),
};

pub static MC0306: Check = Check {
    code: "MC0306",
    stage: Precheck,
    category: "installation",
    level: Error,
    description: "no webhook or tag Service is left from a revision whose istiod is gone",
    hint: "back them up (kubectl meshbackup create) and delete them: `kubectl revtag remove TAG` for a tag, `kubectl meshmigrate retire REV` for a revision; failurePolicy Fail ones refuse every pod or config write they select",
    run: Run::Cluster(&[Precheck], defaults::no_leftovers),
};

pub static MC0401: Check = Check {
    code: "MC0401",
    stage: Precheck,
    category: "injection",
    level: Warning,
    description: "no namespace carries both istio-injection and istio.io/rev",
    hint: "remove one of the two labels: istio-injection wins and istio.io/rev is silently ignored",
    run: Run::Cluster(&[Precheck], injection::both_injection_labels),
};

pub static MC0402: Check = Check {
    code: "MC0402",
    stage: Precheck,
    category: "injection",
    level: Error,
    description: "no two injector webhooks would inject the same pod",
    hint: "remove or retarget one of the overlapping webhooks (kubectl revtag remove TAG)",
    run: Run::Cluster(&[Precheck], injection::no_overlaps),
};

pub static MC0403: Check = Check {
    code: "MC0403",
    stage: Precheck,
    category: "injection",
    level: Error,
    description: "every injector webhook's Service exists",
    hint: "reinstall the revision whose istiod Service is gone, or remove its webhooks",
    run: Run::Cluster(&[Precheck], injection::injector_services_exist),
};

pub static MC0404: Check = Check {
    code: "MC0404",
    stage: Precheck,
    category: "gateway api",
    level: Error,
    description: "Gateway API CRDs serve the versions Istio needs",
    hint: "install a Gateway API release whose CRDs serve v1 (and still v1beta1) for Gateway, GatewayClass, HTTPRoute, GRPCRoute and ReferenceGrant",
    run: Run::Cluster(&[Precheck], apis::gateway_api_versions),
};

pub static MC0405: Check = Check {
    code: "MC0405",
    stage: Precheck,
    category: "crds",
    level: Error,
    description: "every version Istio objects are stored as is served by their CRD and by the target Istio",
    hint: "migrate the stored objects to a served version (read and write them back), then trim status.storedVersions",
    run: Run::Cluster(&[Precheck], apis::stored_versions_served),
};

pub static MC0406: Check = Check {
    code: "MC0406",
    stage: Precheck,
    category: "crds",
    level: Warning,
    description: "no pod uses an annotation Istio has deprecated",
    hint: "move the setting to its replacement (for sidecar.istio.io/inject, the label of the same name) in the workload's pod template",
    run: Run::Cluster(&[Precheck], apis::no_deprecated_annotations),
};

pub static MC0407: Check = Check {
    code: "MC0407",
    stage: Precheck,
    category: "crds",
    level: Warning,
    description: "Gateway API CRD bundle versions meet the target Istio's minimum",
    hint: "install a Gateway API release at or above the version named (kubectl apply the standard or experimental bundle) before upgrading; istiod ignores older CRDs and every route of their kind",
    run: Run::Cluster(&[Precheck], apis::gateway_api_bundle_minimums),
};

pub static MC0408: Check = Check {
    code: "MC0408",
    stage: Precheck,
    category: "crds",
    level: Warning,
    description: "Istio objects are written with current API versions, and no removed Istio API group lingers",
    hint: "change apiVersion to v1 in the manifests, Helm charts or tools that write these objects (same schema), and re-apply; delete CRDs of removed groups once nothing needs their objects",
    run: Run::Cluster(&[Precheck], apis::no_superseded_api_versions),
};

pub static MC0501: Check = Check {
    code: "MC0501",
    stage: Precheck,
    category: "data plane",
    level: Error,
    description: "no proxy is newer than the control plane that injected it",
    hint: "restart those workloads onto a control plane at least as new as their proxy",
    run: Run::Cluster(&[Precheck], data_plane::proxies_not_newer),
};

pub static MC0502: Check = Check {
    code: "MC0502",
    stage: Precheck,
    category: "data plane",
    level: Warning,
    description: "no proxy lags its control plane by more than Istio supports (two minors)",
    hint: "restart those workloads so they get a current proxy before going further",
    run: Run::Cluster(&[Precheck], data_plane::proxies_within_skew),
};

pub static MC0503: Check = Check {
    code: "MC0503",
    stage: Precheck,
    category: "data plane",
    level: Error,
    description: "no pod was injected by a revision that is no longer installed",
    hint: "restart those workloads onto an installed revision",
    run: Run::Cluster(&[Precheck], data_plane::injected_by_installed_revisions),
};

pub static MC0504: Check = Check {
    code: "MC0504",
    stage: Precheck,
    category: "data plane",
    level: Warning,
    description: "pods in injected namespaces have a proxy",
    hint: "restart those workloads (they started before injection was enabled, or injection failed)",
    run: Run::Cluster(&[Precheck], data_plane::injected_namespaces_have_proxies),
};

pub static MC0505: Check = Check {
    code: "MC0505",
    stage: Precheck,
    category: "capacity",
    level: Warning,
    description: "some node has room for a second istiod",
    hint: "free up or add a node that can hold istiod's requests before installing the canary",
    run: Run::Cluster(&[Precheck], data_plane::room_for_istiod),
};

pub static MC0601: Check = Check {
    code: "MC0601",
    stage: Verify,
    category: "control plane",
    level: Error,
    description: "istiod of every revision is available",
    hint: "look at the istiod Deployment's events and pods (kubectl -n istio-system describe deployment istiod-REV)",
    run: Run::Cluster(&[Verify], control_plane::istiods_available),
};

pub static MC0602: Check = Check {
    code: "MC0602",
    stage: Verify,
    category: "control plane",
    level: Error,
    description: "injector and validating webhooks carry a caBundle",
    hint: "istiod patches the caBundle when it starts; check that the revision's istiod is running",
    run: Run::Cluster(&[Verify], control_plane::webhooks_have_ca_bundles),
};

pub static MC0603: Check = Check {
    code: "MC0603",
    stage: Verify,
    category: "control plane",
    level: Error,
    description: "every webhook's Service has ready endpoints",
    hint: "without ready istiod endpoints, pod creation fails (failurePolicy Fail); check the istiod pods",
    run: Run::Cluster(&[Verify], control_plane::webhook_services_ready),
};

pub static MC0604: Check = Check {
    code: "MC0604",
    stage: Verify,
    category: "data plane",
    level: Warning,
    description: "every pod runs the sidecar its labels ask for",
    hint: "restart the listed workloads (kubectl meshmigrate restart NS)",
    run: Run::Cluster(&[Verify], control_plane::pods_on_intended_revision),
};

pub static MC0605: Check = Check {
    code: "MC0605",
    stage: Verify,
    category: "installation",
    level: Warning,
    description: "every installed revision is still in use",
    hint: "an unused revision can be retired (kubectl meshmigrate retire REV)",
    run: Run::Cluster(&[Verify], control_plane::revisions_in_use),
};

pub static MC0606: Check = Check {
    code: "MC0606",
    stage: Verify,
    category: "installation",
    level: Error,
    description: "the default tag, the default validator and any legacy injector name the same default revision",
    hint: MC0305.hint,
    run: Run::Cluster(&[Verify], defaults::default_agrees),
};

pub static MC0607: Check = Check {
    code: "MC0607",
    stage: Verify,
    category: "installation",
    level: Error,
    description: "no webhook or tag Service is left from a revision whose istiod is gone",
    hint: MC0306.hint,
    run: Run::Cluster(&[Verify], defaults::no_leftovers),
};

pub static MC0608: Check = Check {
    code: "MC0608",
    stage: Verify,
    category: "data plane",
    level: Error,
    description: "every proxy is connected, live, to an istiod of the revision that injected it",
    hint: "see `kubectl meshcheck proxy-status`; restart a pod whose proxy is on another revision's istiod, \
           and check the discovery address of one that is not connected",
    run: Run::Cluster(&[Verify], live::connected_to_injector),
};

pub static MC0609: Check = Check {
    code: "MC0609",
    stage: Verify,
    category: "data plane",
    level: Error,
    description: "no proxy has rejected its configuration or left it unacknowledged longer than --stale-after (1m)",
    hint: "a STALE or rejecting proxy runs old configuration: read its istio-proxy logs, then restart it",
    run: Run::Cluster(&[Verify], live::in_sync),
};

pub static MC0801: Check = Check {
    code: "MC0801",
    stage: Manifest,
    category: "images",
    level: Error,
    description: "Istio images share one hub and one tag, matching the target version",
    hint: "render the manifest again with one hub and tag (e.g. --set hub=… --set tag=1.Y.Z)",
    run: Run::Manifest,
};

pub static MC0802: Check = Check {
    code: "MC0802",
    stage: Manifest,
    category: "security",
    level: Warning,
    description: "control-plane containers do not run as root",
    hint: "keep runAsNonRoot: true and non-zero runAsUser/runAsGroup (Istio's defaults); only istio-cni needs root",
    run: Run::Manifest,
};

pub static MC0803: Check = Check {
    code: "MC0803",
    stage: Manifest,
    category: "services",
    level: Warning,
    description: "istiod Services are ClusterIP",
    hint: "istiod serves the mesh inside the cluster; expose it only on purpose (multi-cluster) and through a gateway",
    run: Run::Manifest,
};

pub static MC0804: Check = Check {
    code: "MC0804",
    stage: Manifest,
    category: "dry run",
    level: Error,
    description: "the apiserver accepts every object (server-side dry run)",
    hint: "fix the object the apiserver rejects; the message is the apiserver's",
    run: Run::Manifest,
};

pub static MC0805: Check = Check {
    code: "MC0805",
    stage: Manifest,
    category: "cni",
    level: Warning,
    description: "the revision's injector and the istio-cni node agent agree",
    hint: "set pilot.cni.enabled to match whether istio-cni runs (install the istio-cni chart first, or render with CNI off)",
    run: Run::Manifest,
};

pub static MC0806: Check = Check {
    code: "MC0806",
    stage: Manifest,
    category: "config",
    level: Warning,
    description: "no mesh or proxy config field newer Istio removed",
    hint: "drop the field (it is ignored) or move to its replacement in the upgrade notes before rendering again",
    run: Run::Manifest,
};

/// Every check, in catalogue order.
pub static CHECKS: &[&Check] = &[
    &MC0101, &MC0201, &MC0301, &MC0302, &MC0303, &MC0304, &MC0305, &MC0306, &MC0401, &MC0402, &MC0403, &MC0404,
    &MC0405, &MC0406, &MC0407, &MC0408, &MC0501, &MC0502, &MC0503, &MC0504, &MC0505, &MC0601, &MC0602, &MC0603,
    &MC0604, &MC0605, &MC0606, &MC0607, &MC0608, &MC0609, &MC0801, &MC0802, &MC0803, &MC0804, &MC0805, &MC0806,
];

/// The check with this code.
pub fn find(code: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.code == code).copied()
}
