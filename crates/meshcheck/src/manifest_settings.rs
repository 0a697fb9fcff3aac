//! Manifest review of settings rather than objects: whether the revision's injector and the
//! istio-cni node agent agree (MC0805), and configuration fields newer Istio removed (MC0806).

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::Api;
use meshkit::Result;
use meshkit::cluster::Cluster;
use meshkit::istio::apis;
use serde_json::Value;

use crate::checks::report::Finding;
use crate::checks::{Check, catalogue};
use crate::located::Located;

/// The label Istio's CNI chart puts on its node agent DaemonSet.
const CNI_SELECTOR: &str = "k8s-app=istio-cni-node";
const CNI_IMAGE: &str = "install-cni";

/// Whether the cluster already runs Istio's CNI node agent: one label-selected list.
pub async fn cni_in_cluster(cluster: &Cluster) -> Result<bool> {
    let api: Api<DaemonSet> = Api::all(cluster.client());
    let found = cluster.list_map(&api, Some(CNI_SELECTOR), "list daemonsets", |_| ()).await?;
    Ok(!found.is_empty())
}

fn is_injector_config(object: &Value) -> bool {
    object["kind"] == "ConfigMap"
        && object["metadata"]["name"].as_str().is_some_and(|n| n.starts_with("istio-sidecar-injector"))
}

/// `pilot.cni.enabled` of an injector ConfigMap's `values` (JSON), as the injection template reads it.
fn injector_uses_cni(object: &Value) -> Option<bool> {
    let values: Value = serde_json::from_str(object["data"]["values"].as_str()?).ok()?;
    Some(values["pilot"]["cni"]["enabled"].as_bool().unwrap_or(false))
}

fn is_cni_agent(object: &Value) -> bool {
    object["kind"] == "DaemonSet"
        && object["spec"]["template"]["spec"]["containers"].as_array().into_iter().flatten().any(|c| {
            c["image"]
                .as_str()
                .and_then(|i| i.rsplit('/').next())
                .is_some_and(|i| i.split(':').next() == Some(CNI_IMAGE))
        })
}

/// MC0805. `in_cluster` is `None` when the cluster was not asked (`--offline`).
pub fn cni(objects: &[Located], in_cluster: Option<bool>) -> Finding {
    const CODE: &Check = &catalogue::MC0805;
    let injectors: Vec<(&Located, bool)> = objects
        .iter()
        .filter(|o| is_injector_config(&o.object))
        .filter_map(|o| Some((o, injector_uses_cni(&o.object)?)))
        .collect();
    let agent_in_manifest = objects.iter().any(|o| is_cni_agent(&o.object));
    if injectors.is_empty() {
        return Finding::skipped(CODE, "no injector configuration in the manifest");
    }
    let mut problems = Vec::new();
    for (injector, uses_cni) in &injectors {
        match (uses_cni, agent_in_manifest, in_cluster) {
            (true, false, Some(false)) => problems.push(format!(
                "{}: pilot.cni.enabled, but istio-cni runs neither in the cluster nor in this manifest",
                injector.describe()
            )),
            (true, false, None) => problems.push(format!(
                "{}: pilot.cni.enabled, and this manifest does not install istio-cni (the cluster was not asked: --offline)",
                injector.describe()
            )),
            (false, true, _) => problems.push(format!(
                "{}: pilot.cni.enabled is off although the manifest installs istio-cni; pods would still get istio-init",
                injector.describe()
            )),
            _ => {}
        }
    }
    Finding::none_of(CODE, problems, |n| format!("{n} injector(s) disagree with the CNI installation"))
}

/// MC0806: removed MeshConfig fields in the mesh ConfigMaps, removed ProxyConfig fields in
/// `proxy.istio.io/config` pod-template annotations.
pub fn removed_fields(objects: &[Located]) -> Finding {
    let mut found = Vec::new();
    for located in objects {
        let object = &located.object;
        if object["kind"] == "ConfigMap"
            && let Some(mesh) = object["data"]["mesh"].as_str()
        {
            match serde_saphyr::from_str::<Value>(mesh) {
                Ok(mesh) => found.extend(
                    apis::removed_mesh_config_fields(&mesh)
                        .into_iter()
                        .map(|f| format!("{} data.mesh: {f}", located.describe())),
                ),
                Err(e) => found.push(format!("{} data.mesh is not valid YAML: {e}", located.describe())),
            }
        }
        let annotation = &object["spec"]["template"]["metadata"]["annotations"][meshkit::istio::keys::PROXY_CONFIG];
        if let Some(proxy) = annotation.as_str().and_then(|text| serde_saphyr::from_str::<Value>(text).ok()) {
            found.extend(
                apis::removed_proxy_config_fields(&proxy)
                    .into_iter()
                    .map(|f| format!("{} proxy.istio.io/config: {f}", located.describe())),
            );
        }
    }
    Finding::none_of(&catalogue::MC0806, found, |n| format!("{n} setting(s) newer Istio removed; they do nothing"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::report::Outcome;
    use crate::manifest::parse;

    fn injector(cni: bool) -> String {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio-sidecar-injector-1-31-1, namespace: istio-system}}\n\
             data:\n  values: '{{\"pilot\": {{\"cni\": {{\"enabled\": {cni}}}}}}}'\n"
        )
    }

    const AGENT: &str = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: istio-cni-node, namespace: istio-system}\n\
                         spec:\n  template:\n    spec:\n      containers: [{name: install-cni, image: docker.io/istio/install-cni:1.31.1}]\n";

    fn check(text: &str, in_cluster: Option<bool>) -> (Outcome, Vec<String>) {
        let finding = cni(&parse("m.yaml", text).unwrap(), in_cluster);
        (finding.outcome, finding.objects)
    }

    #[test]
    fn injector_and_cni_agent_must_agree() {
        assert_eq!(check(AGENT, Some(false)).0, Outcome::Skipped, "no injector to compare");
        assert_eq!(check(&injector(true), Some(true)).0, Outcome::Pass, "the cluster runs istio-cni");
        assert_eq!(check(&format!("{}---\n{AGENT}", injector(true)), Some(false)).0, Outcome::Pass);
        assert_eq!(check(&injector(false), Some(false)).0, Outcome::Pass, "no CNI anywhere, none wanted");
        assert_eq!(
            check(&injector(true), Some(false)),
            (
                Outcome::Warning,
                vec![
                    "m.yaml:1 configmap/istio-system/istio-sidecar-injector-1-31-1: pilot.cni.enabled, but istio-cni \
                      runs neither in the cluster nor in this manifest"
                        .to_string()
                ]
            )
        );
        assert!(check(&injector(true), None).1[0].contains("--offline"));
        assert!(check(&format!("{}---\n{AGENT}", injector(false)), Some(true)).1[0].contains("istio-init"));
    }

    #[test]
    fn removed_mesh_and_proxy_config_fields() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio-1-31-1, namespace: istio-system}\n\
                    data:\n  mesh: |-\n    accessLogFile: /dev/stdout\n    mixerCheckServer: x:9091\n    defaultConfig:\n      connectTimeout: 1s\n\
                    ---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: gw, namespace: gw}\n\
                    spec:\n  template:\n    metadata:\n      annotations:\n        proxy.istio.io/config: '{parentShutdownDuration: 1m}'\n";
        let finding = removed_fields(&parse("m.yaml", text).unwrap());
        assert_eq!(finding.outcome, Outcome::Warning);
        assert_eq!(
            finding.objects,
            [
                "m.yaml:1 configmap/istio-system/istio-1-31-1 data.mesh: mixerCheckServer",
                "m.yaml:1 configmap/istio-system/istio-1-31-1 data.mesh: defaultConfig.connectTimeout",
                "m.yaml:11 deployment/gw/gw proxy.istio.io/config: parentShutdownDuration",
            ]
        );
    }
}
