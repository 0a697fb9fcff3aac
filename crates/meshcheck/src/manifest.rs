//! `kubectl meshcheck manifest FILE…`: review a generated upgrade manifest before applying it.
//! Parse (with file:line for every object) → decide (pure) → optionally a server-side dry run.

use std::collections::BTreeSet;

use meshkit::istio::IstioVersion;
use meshkit::{Error, Result};
use serde_json::Value;

use crate::checks::report::{Finding, Report};
use crate::checks::{Check, catalogue};
pub use crate::located::Located;

/// Istio's own images; their hub and tag must agree.
const ISTIO_IMAGES: [&str; 4] = ["pilot", "proxyv2", "install-cni", "ztunnel"];

/// Splits multi-document YAML and parses each document; a malformed one is a usage error naming
/// the file and the line where that document starts.
pub fn parse(file: &str, text: &str) -> Result<Vec<Located>> {
    let mut documents: Vec<(usize, String)> = vec![(1, String::new())];
    for (index, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") {
            documents.push((index + 2, String::new()));
        } else {
            let current = documents.last_mut().expect("one document");
            current.1.push_str(line);
            current.1.push('\n');
        }
    }
    let mut objects = Vec::new();
    for (start, body) in documents {
        let value: Value = serde_saphyr::from_str::<Option<Value>>(&body)
            .map_err(|e| {
                Error::usage(
                    format!("{file}:{start}: not valid YAML: {}", e.to_string().lines().next().unwrap_or_default()),
                    "fix the document (or render the manifest again), then retry",
                )
            })?
            .unwrap_or(Value::Null);
        if value.is_null() {
            continue;
        }
        // The document's first non-comment line is where the object really starts.
        let offset = body.lines().take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#')).count();
        if value.get("kind").is_none() || value.get("apiVersion").is_none() {
            return Err(Error::usage(
                format!("{file}:{}: not a Kubernetes object (no kind or apiVersion)", start + offset),
                "pass manifests such as `helm template` or `istioctl manifest generate` print",
            ));
        }
        objects.push(Located { file: file.to_string(), line: start + offset, object: value });
    }
    Ok(objects)
}

fn containers(object: &Value) -> impl Iterator<Item = &Value> {
    let spec = &object["spec"]["template"]["spec"];
    spec["containers"].as_array().into_iter().chain(spec["initContainers"].as_array()).flatten()
}

/// `(hub, image name, tag)` of an image reference.
fn split_image(image: &str) -> Option<(String, String, String)> {
    let (path, tag) = image.rsplit_once(':').filter(|(path, _)| !path.ends_with('/') && !path.contains('@'))?;
    let (hub, name) = path.rsplit_once('/')?;
    Some((hub.to_string(), name.to_string(), tag.to_string()))
}

pub fn review(objects: &[Located], to_version: Option<&IstioVersion>) -> Report {
    let findings = vec![
        images(objects, to_version),
        security(objects),
        services(objects),
        crate::manifest_settings::removed_fields(objects),
    ];
    Report { findings, installation: None }
}

fn images(objects: &[Located], to_version: Option<&IstioVersion>) -> Finding {
    const CODE: &Check = &catalogue::MC0801;
    let mut seen: Vec<(String, String, String)> = Vec::new();
    for located in objects {
        for container in containers(&located.object) {
            let Some(image) = container["image"].as_str() else { continue };
            if let Some((hub, name, tag)) =
                split_image(image).filter(|(_, name, _)| ISTIO_IMAGES.contains(&name.as_str()))
            {
                seen.push((located.describe(), format!("{hub}/{name}:{tag}"), format!("{hub} {tag}")));
            }
        }
    }
    if seen.is_empty() {
        return Finding::skipped(CODE, "no Istio images in the manifest");
    }
    let distinct: BTreeSet<&str> = seen.iter().map(|(_, _, hub_tag)| hub_tag.as_str()).collect();
    let objects_with = |filter: &dyn Fn(&str) -> bool| -> Vec<String> {
        seen.iter()
            .filter(|(_, image, _)| filter(image))
            .map(|(object, image, _)| format!("{object}: {image}"))
            .collect()
    };
    if distinct.len() > 1 {
        return Finding::fail(CODE, format!("{} different hub/tag pairs", distinct.len()), objects_with(&|_| true));
    }
    let tag = distinct.into_iter().next().unwrap_or_default().rsplit(' ').next().unwrap_or_default().to_string();
    match (to_version, IstioVersion::parse(&tag)) {
        (Some(target), Some(found)) if found.minor_version() != target.minor_version() => Finding::fail(
            CODE,
            format!("images are {found}, but the target is {}.{}", target.major, target.minor),
            objects_with(&|_| true),
        ),
        (Some(_), None) => {
            Finding::warn(CODE, format!("image tag {tag:?} is not a version; cannot compare with --to-version"), vec![])
        }
        _ => Finding::pass_with(CODE, format!("every Istio image is tagged {tag}")),
    }
}

fn security(objects: &[Located]) -> Finding {
    let mut root = Vec::new();
    for located in objects.iter().filter(|o| matches!(o.object["kind"].as_str(), Some("Deployment" | "StatefulSet"))) {
        let pod = &located.object["spec"]["template"]["spec"]["securityContext"];
        for container in containers(&located.object) {
            let context = &container["securityContext"];
            let setting =
                |key: &str| context.get(key).filter(|v| !v.is_null()).or_else(|| pod.get(key).filter(|v| !v.is_null()));
            let name = container["name"].as_str().unwrap_or("?");
            if setting("runAsNonRoot") == Some(&Value::Bool(false)) {
                root.push(format!("{} container {name}: runAsNonRoot: false", located.describe()));
            }
            for key in ["runAsUser", "runAsGroup"] {
                if setting(key).and_then(Value::as_i64) == Some(0) {
                    root.push(format!("{} container {name}: {key}: 0", located.describe()));
                }
            }
        }
    }
    Finding::none_of(&catalogue::MC0802, root, |n| format!("{n} container setting(s) run as root"))
}

fn services(objects: &[Located]) -> Finding {
    let exposed: Vec<String> = objects
        .iter()
        .filter(|o| o.object["kind"] == "Service" && o.object["metadata"]["labels"]["app"] == "istiod")
        .filter_map(|o| {
            let kind = o.object["spec"]["type"].as_str().unwrap_or("ClusterIP");
            (kind != "ClusterIP").then(|| format!("{}: type {kind}", o.describe()))
        })
        .collect();
    Finding::none_of(&catalogue::MC0803, exposed, |n| format!("{n} istiod Service(s) are exposed outside the cluster"))
}

/// Server-side dry run of every object (MC0804): the apiserver's admission, validation and
/// conversion, without persisting anything.
pub async fn dry_run(cluster: &meshkit::cluster::Cluster, objects: &[Located], default_namespace: &str) -> Finding {
    use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
    use kube::discovery::{Scope, pinned_kind};

    let params = PatchParams::apply("kubectl-meshcheck").dry_run().force();
    let mut rejected = Vec::new();
    for located in objects {
        let object = &located.object;
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap_or_default());
        let (resource, capabilities) =
            match cluster.call("discover the object's kind", pinned_kind(&cluster.client(), &gvk)).await {
                Ok(found) => found,
                Err(e) => {
                    rejected.push(format!(
                        "{}: {api_version} {} is not served by this cluster ({e})",
                        located.describe(),
                        gvk.kind
                    ));
                    continue;
                }
            };
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Cluster => Api::all_with(cluster.client(), &resource),
            Scope::Namespaced => {
                let namespace = object["metadata"]["namespace"].as_str().unwrap_or(default_namespace);
                Api::namespaced_with(cluster.client(), namespace, &resource)
            }
        };
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let what = format!("dry-run apply {}", located.describe());
        if let Err(e) = cluster.call(&what, api.patch(name, &params, &Patch::Apply(object))).await {
            rejected.push(format!("{}: {e}", located.describe()));
        }
    }
    Finding::none_of(&catalogue::MC0804, rejected, |n| {
        format!("the apiserver rejects {n} of {} object(s)", objects.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::report::Outcome;

    const MANIFEST: &str = "\
# rendered by helm
apiVersion: apps/v1
kind: Deployment
metadata: {name: istiod-1-31-1, namespace: istio-system}
spec:
  template:
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
      - {name: discovery, image: docker.io/istio/pilot:1.31.1, securityContext: {runAsUser: 1337, runAsGroup: 1337}}
---
apiVersion: v1
kind: Service
metadata: {name: istiod-1-31-1, namespace: istio-system, labels: {app: istiod}}
spec: {type: ClusterIP}
---
---
apiVersion: v1
kind: ConfigMap
metadata: {name: values}
";

    fn outcome(report: &Report, code: &str) -> (Outcome, Vec<String>) {
        let f = report.findings.iter().find(|f| f.check.code == code).unwrap();
        (f.outcome, f.objects.clone())
    }

    #[test]
    fn parses_documents_with_their_lines() {
        let objects = parse("m.yaml", MANIFEST).unwrap();
        let where_: Vec<String> = objects.iter().map(Located::describe).collect();
        assert_eq!(
            where_,
            [
                "m.yaml:2 deployment/istio-system/istiod-1-31-1",
                "m.yaml:12 service/istio-system/istiod-1-31-1",
                "m.yaml:18 configmap/values"
            ]
        );
    }

    #[test]
    fn malformed_yaml_names_file_and_line() {
        let err = parse("m.yaml", "apiVersion: v1\nkind: A\n---\nkind: [unclosed\n").unwrap_err();
        assert_eq!(err.exit(), meshkit::Exit::Usage);
        assert!(err.to_string().starts_with("m.yaml:4: not valid YAML"), "{err}");
        let err = parse("m.yaml", "just: data\n").unwrap_err();
        assert_eq!(err.to_string(), "m.yaml:1: not a Kubernetes object (no kind or apiVersion)");
    }

    #[test]
    fn a_clean_manifest_passes() {
        let objects = parse("m.yaml", MANIFEST).unwrap();
        let report = review(&objects, IstioVersion::parse("1.31").as_ref());
        for f in &report.findings {
            assert_eq!(f.outcome, Outcome::Pass, "{f:?}");
        }
    }

    #[test]
    fn mixed_tags_root_and_exposed_istiod_are_found() {
        let text = MANIFEST
            .replace("{runAsUser: 1337, runAsGroup: 1337}", "{runAsUser: 0, runAsGroup: 1337}")
            .replace("spec: {type: ClusterIP}", "spec: {type: LoadBalancer}")
            + "---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: cni}\nspec:\n  template:\n    spec:\n      containers: [{name: install-cni, image: docker.io/istio/install-cni:1.30.3}]\n";
        let objects = parse("m.yaml", &text).unwrap();
        let report = review(&objects, IstioVersion::parse("1.31").as_ref());
        let (result, objects_found) = outcome(&report, "MC0801");
        assert_eq!(result, Outcome::Error);
        assert!(
            objects_found.contains(&"m.yaml:22 daemonset/cni: docker.io/istio/install-cni:1.30.3".to_string()),
            "{objects_found:?}"
        );
        assert_eq!(
            outcome(&report, "MC0802").1,
            ["m.yaml:2 deployment/istio-system/istiod-1-31-1 container discovery: runAsUser: 0"]
        );
        assert_eq!(outcome(&report, "MC0803").1, ["m.yaml:12 service/istio-system/istiod-1-31-1: type LoadBalancer"]);
        let wrong_target = review(&parse("m.yaml", MANIFEST).unwrap(), IstioVersion::parse("1.30").as_ref());
        assert_eq!(outcome(&wrong_target, "MC0801").0, Outcome::Error);
    }
}
