//! A stand-in for Istio's sidecar injector while no istiod runs (Tier B): every injector entry of
//! every Istio MutatingWebhookConfiguration in the cluster is mirrored as a
//! MutatingAdmissionPolicy with the same namespace and object selectors, so that pods are selected
//! exactly as Istio's webhooks would select them, and are mutated the way Istio's injection
//! template marks a pod:
//!
//! - the `istio-proxy` container with the revision's proxy image (`<hub>/proxyv2:<tag>`, hub and
//!   tag from the revision's istiod image) and `istio-init` (not for gateways, whose template
//!   injects only the proxy); container arguments are left out, as admission policies may not
//!   set atomic lists and nothing here runs the containers;
//! - the `istio.io/rev` and `sidecar.istio.io/status` annotations naming the real revision (never
//!   a tag), the `service.istio.io/canonical-name` label (the pod's `app`), and, for sidecars
//!   only, `security.istio.io/tlsMode=istio` (Istio's gateway template sets no tlsMode).
//!
//! Beyond the selectors, the injector skips what Istio's webhook handler skips: pods annotated
//! `sidecar.istio.io/inject: "false"`, host-network pods and pods already injected. Like the
//! real webhooks the policies follow the MutatingWebhookConfigurations as they were when mirrored:
//! after moving a tag, mirror again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::plane::ControlPlane;

/// Label on every object the injector creates.
pub const INJECTOR_LABEL: &str = "meshtest.io/injector";

/// One injector entry of a webhook configuration: which pods, which revision.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectorEntry {
    /// `<configuration>.<entry>`, for naming the policy.
    pub source: String,
    pub revision: String,
    pub namespace_selector: Value,
    pub object_selector: Value,
}

/// The injector entries of Istio's MutatingWebhookConfigurations (a `kubectl get -o json` list).
pub fn injector_entries(configurations: &Value) -> Vec<InjectorEntry> {
    let mut entries = Vec::new();
    for config in configurations["items"].as_array().into_iter().flatten() {
        let Some(revision) = config["metadata"]["labels"]["istio.io/rev"].as_str() else { continue };
        let name = config["metadata"]["name"].as_str().unwrap_or_default();
        for webhook in config["webhooks"].as_array().into_iter().flatten() {
            let entry = webhook["name"].as_str().unwrap_or_default();
            if !entry.ends_with("sidecar-injector.istio.io") {
                continue;
            }
            let selector = |key: &str| if webhook[key].is_null() { json!({}) } else { webhook[key].clone() };
            entries.push(InjectorEntry {
                source: format!("{name}.{entry}"),
                revision: revision.to_string(),
                namespace_selector: selector("namespaceSelector"),
                object_selector: selector("objectSelector"),
            });
        }
    }
    entries
}

/// `revision → (hub, tag)` from the istiod Deployments' `discovery` images.
pub fn proxy_images(istiods: &Value) -> BTreeMap<String, String> {
    let mut images = BTreeMap::new();
    for deployment in istiods["items"].as_array().into_iter().flatten() {
        let revision = deployment["metadata"]["labels"]["istio.io/rev"].as_str().unwrap_or("default");
        let containers = &deployment["spec"]["template"]["spec"]["containers"];
        let Some(image) = containers
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == "discovery")
            .and_then(|c| c["image"].as_str())
        else {
            continue;
        };
        let Some((repository, tag)) = image.rsplit_once(':') else { continue };
        let hub = repository.rsplit_once('/').map_or("docker.io/istio", |(hub, _)| hub);
        images.insert(revision.to_string(), format!("{hub}/proxyv2:{tag}"));
    }
    images
}

/// A CEL string literal (single-quoted, so JSON inside needs no escaping beyond `'` and `\`).
fn cel_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The ApplyConfiguration expression that injects `revision` with `image`.
pub fn mutation(revision: &str, image: &str, istio_namespace: &str, gateway: bool) -> String {
    let (init, containers) = if gateway { ("", r#""istio-proxy""#) } else { (r#""istio-init""#, r#""istio-proxy""#) };
    let status = format!(
        r#"{{"initContainers":[{init}],"containers":[{containers}],"volumes":["workload-socket","credential-socket","workload-certs","istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"{revision}"}}"#
    );
    let ca = format!("istiod-{revision}.{istio_namespace}.svc:15012");
    let proxy = format!(
        "Object.spec.containers{{name: \"istio-proxy\", image: {image}, \
         env: [Object.spec.containers.env{{name: \"CA_ADDR\", value: {ca}}}]}}",
        image = cel_string(image),
        ca = cel_string(&ca),
    );
    let init_containers = if gateway {
        String::new()
    } else {
        format!(", initContainers: [Object.spec.initContainers{{name: \"istio-init\", image: {}}}]", cel_string(image))
    };
    // Both templates name the workload; only the sidecar one marks it for mTLS.
    let canonical = "\"service.istio.io/canonical-name\": (has(object.metadata.labels) && 'app' in object.metadata.labels) ? string(object.metadata.labels['app']) : 'workload'";
    let labels =
        if gateway { canonical.to_string() } else { format!("\"security.istio.io/tlsMode\": \"istio\", {canonical}") };
    format!(
        "Object{{metadata: Object.metadata{{labels: {{{labels}}}, \
         annotations: {{\"istio.io/rev\": {rev}, \"sidecar.istio.io/status\": {status}}}}}, \
         spec: Object.spec{{containers: [{proxy}]{init_containers}}}}}",
        rev = cel_string(revision),
        status = cel_string(&status),
    )
}

/// Conditions Istio's webhook handler checks after the selectors matched.
const SKIP_ANNOTATED_OFF: &str = "!has(object.metadata.annotations) || !('sidecar.istio.io/inject' in object.metadata.annotations) || object.metadata.annotations['sidecar.istio.io/inject'] != 'false'";
const SKIP_INJECTED: &str =
    "!has(object.metadata.annotations) || !('sidecar.istio.io/status' in object.metadata.annotations)";
const SKIP_HOST_NETWORK: &str = "!has(object.spec.hostNetwork) || !object.spec.hostNetwork";
const GATEWAY_TEMPLATE: &str = "has(object.metadata.annotations) && 'inject.istio.io/templates' in object.metadata.annotations && object.metadata.annotations['inject.istio.io/templates'] == 'gateway'";

/// The policies and bindings mirroring `entries`.
pub fn policies(entries: &[InjectorEntry], images: &BTreeMap<String, String>, istio_namespace: &str) -> Vec<Value> {
    let mut objects = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let Some(image) = images.get(&entry.revision) else { continue };
        for gateway in [false, true] {
            let name = format!("meshtest-inject-{index:02}-{}", if gateway { "gateway" } else { "sidecar" });
            let template = if gateway { GATEWAY_TEMPLATE.to_string() } else { format!("!({GATEWAY_TEMPLATE})") };
            let conditions: Vec<Value> = [
                ("not-annotated-off", SKIP_ANNOTATED_OFF.to_string()),
                ("not-injected", SKIP_INJECTED.to_string()),
                ("not-host-network", SKIP_HOST_NETWORK.to_string()),
                ("template", template),
            ]
            .into_iter()
            .map(|(name, expression)| json!({"name": name, "expression": expression}))
            .collect();
            let metadata = json!({
                "name": name,
                "labels": {INJECTOR_LABEL: "true"},
                "annotations": {"meshtest.io/mirrors": entry.source, "meshtest.io/revision": entry.revision},
            });
            objects.push(json!({
                "apiVersion": "admissionregistration.k8s.io/v1beta1",
                "kind": "MutatingAdmissionPolicy",
                "metadata": metadata,
                "spec": {
                    "failurePolicy": "Fail",
                    "reinvocationPolicy": "Never",
                    "matchConstraints": {
                        "resourceRules": [{
                            "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"],
                        }],
                        "namespaceSelector": entry.namespace_selector,
                        "objectSelector": entry.object_selector,
                    },
                    "matchConditions": conditions,
                    "mutations": [{
                        "patchType": "ApplyConfiguration",
                        "applyConfiguration": {"expression": mutation(&entry.revision, image, istio_namespace, gateway)},
                    }],
                },
            }));
            objects.push(json!({
                "apiVersion": "admissionregistration.k8s.io/v1beta1",
                "kind": "MutatingAdmissionPolicyBinding",
                "metadata": {"name": name, "labels": {INJECTOR_LABEL: "true"}},
                "spec": {"policyName": name},
            }));
        }
    }
    objects
}

/// Mirrors the cluster's injector webhooks (replacing an earlier mirror) and waits until the
/// apiserver applies the policies: a server-side dry-run pod selected by each revision comes
/// back injected by it.
pub fn install(plane: &ControlPlane, istio_namespace: &str) -> Result<()> {
    let webhooks = json_of(plane, &["get", "mutatingwebhookconfigurations", "-l", "istio.io/rev"])?;
    let istiods = json_of(plane, &["get", "deployments", "-n", istio_namespace, "-l", "app=istiod"])?;
    let entries = injector_entries(&webhooks);
    let images = proxy_images(&istiods);
    if entries.is_empty() || images.is_empty() {
        bail!("no Istio injector webhooks or istiod Deployments to mirror");
    }
    plane.kubectl_ok(&[
        "delete",
        "mutatingadmissionpolicybindings.admissionregistration.k8s.io,mutatingadmissionpolicies.admissionregistration.k8s.io",
        "-l",
        INJECTOR_LABEL,
        "--ignore-not-found",
    ])?;
    let list = json!({"apiVersion": "v1", "kind": "List", "items": policies(&entries, &images, istio_namespace)});
    plane.apply(&list.to_string())?;
    for (revision, image) in &images {
        wait_injected(plane, revision, image)?;
    }
    Ok(())
}

fn json_of(plane: &ControlPlane, args: &[&str]) -> Result<Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    Ok(serde_json::from_str(&plane.kubectl_ok(&all)?)?)
}

/// Policies take effect a moment after they are written.
fn wait_injected(plane: &ControlPlane, revision: &str, image: &str) -> Result<()> {
    let probe = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "meshtest-injector-probe-", "namespace": "default", "labels": {"istio.io/rev": revision}},
        "spec": {"containers": [{"name": "probe", "image": "probe"}]},
    });
    let start = Instant::now();
    loop {
        let out = plane.kubectl_stdin(&["create", "--dry-run=server", "-o", "json", "-f", "-"], &probe.to_string())?;
        let pod: Value = serde_json::from_str(&out).context("dry-run pod")?;
        let injected = pod["metadata"]["annotations"]["istio.io/rev"] == revision
            && pod["spec"]["containers"].as_array().into_iter().flatten().any(|c| c["image"] == image);
        if injected {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the injector policies for revision {revision} did not take effect within 60s: {pod}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_only_injector_entries_with_their_selectors() {
        let configs = json!({"items": [
            {"metadata": {"name": "istio-revision-tag-default", "labels": {"istio.io/rev": "1-30-3", "istio.io/tag": "default"}},
             "webhooks": [
                {"name": "rev.namespace.sidecar-injector.istio.io",
                 "namespaceSelector": {"matchExpressions": [{"key": "istio.io/rev", "operator": "In", "values": ["default"]}]}},
                {"name": "validation.istio.io"}]},
            {"metadata": {"name": "other", "labels": {}}, "webhooks": [{"name": "x.sidecar-injector.istio.io"}]},
        ]});
        let entries = injector_entries(&configs);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].revision, "1-30-3", "the real revision, not the tag");
        assert_eq!(entries[0].namespace_selector["matchExpressions"][0]["values"][0], "default");
        assert_eq!(entries[0].object_selector, json!({}));
    }

    #[test]
    fn proxy_image_follows_the_istiod_image() {
        let istiods = json!({"items": [{"metadata": {"labels": {"istio.io/rev": "1-31-1"}},
            "spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.31.1"}]}}}}]});
        assert_eq!(proxy_images(&istiods)["1-31-1"], "docker.io/istio/proxyv2:1.31.1");
    }

    #[test]
    fn mutation_names_the_revision_in_both_annotations() {
        let m = mutation("1-31-1", "docker.io/istio/proxyv2:1.31.1", "istio-system", false);
        assert!(m.contains(r#""istio.io/rev": '1-31-1'"#), "{m}");
        assert!(m.contains(r#""revision":"1-31-1""#) && m.contains("istio-init"), "{m}");
        let gateway = mutation("1-31-1", "docker.io/istio/proxyv2:1.31.1", "istio-system", true);
        assert!(!gateway.contains("istio-init"), "{gateway}");
    }
}
