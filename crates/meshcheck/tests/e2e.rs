//! `kubectl-meshcheck` against a real kube-apiserver + etcd with Istio's own objects; Tier B
//! (controllers, scheduler, kwok nodes) where the control plane must really become available.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use meshtest::{ControlPlane, Fixture, Options, run};
use serde_json::Value;

fn fixture() -> &'static ControlPlane {
    static PLANE: OnceLock<ControlPlane> = OnceLock::new();
    PLANE.get_or_init(|| {
        let plane = ControlPlane::start(&Options::default()).expect("control plane");
        Fixture::install(&plane, true).expect("Istio fixture");
        plane
    })
}

fn meshcheck(kubeconfig: &Path) -> Command {
    meshtest::plugin(env!("CARGO_BIN_EXE_kubectl-meshcheck"), kubeconfig)
}

fn document(args: &[&str], kubeconfig: &Path) -> (i32, Value) {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let (code, out, err) = run(meshcheck(kubeconfig).args(&all));
    assert!(code == 0 || code == 1, "{args:?}: {code} {err}");
    (code, serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")))
}

/// `(result, objects)` of check `code` in a JSON report.
fn result(doc: &Value, code: &str) -> (String, Vec<String>) {
    let check = doc["categories"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["checks"].as_array().unwrap())
        .find(|c| c["code"] == code)
        .unwrap_or_else(|| panic!("{code} not in {doc:#}"));
    let objects = check["objects"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_string()).collect();
    (check["result"].as_str().unwrap().to_string(), objects)
}

#[test]
fn precheck_on_the_fixture() {
    let plane = fixture();
    let (code, doc) = document(&["precheck", "--to-version", "1.30", "--revision", "1-32-0"], &plane.kubeconfig);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["success"], true);
    assert_eq!(result(&doc, "MC0101").0, "pass");
    assert_eq!(result(&doc, "MC0201").0, "pass", "admin may do everything");
    assert_eq!(result(&doc, "MC0301").0, "pass");
    assert_eq!(
        result(&doc, "MC0401"),
        ("warning".into(), vec!["namespace/shop-both (istio-injection=enabled hides istio.io/rev=1-31-1)".into()])
    );
    assert_eq!(result(&doc, "MC0402").0, "pass", "Istio's own webhooks do not overlap");
    assert_eq!(result(&doc, "MC0405").0, "pass", "Istio's real CRDs store only served versions");
    assert_eq!(result(&doc, "MC0505").0, "skipped", "Tier A has no nodes");
    assert_eq!(doc["installation"]["revisions"][0], "1-30-3 (1.30.3, default)");
    let (code, doc) = document(&["precheck", "--to-version", "1.30", "--fail-on", "warning"], &plane.kubeconfig);
    assert_eq!(code, 1);
    assert_eq!(doc["success"], false);
    let (code, _, _) = run(meshcheck(&plane.kubeconfig).args(["precheck", "--revision", "1-31-1"]));
    assert_eq!(code, 1, "the canary's name is taken");
    let (code, text, _) = run(meshcheck(&plane.kubeconfig).args(["precheck", "--to-version", "1.30"]));
    assert_eq!(code, 0);
    assert!(text.contains("√ [MC0101] Kubernetes version is within") && text.contains("‼ [MC0401]"), "{text}");
    assert!(text.ends_with("Status check results are √\n"), "{text}");
}

#[test]
fn precheck_names_missing_permissions() {
    let plane = fixture();
    plane
        .kubectl_ok(&[
            "create",
            "clusterrole",
            "meshcheck-reader",
            "--verb=get,list",
            "--resource=mutatingwebhookconfigurations,validatingwebhookconfigurations,namespaces,pods,services,deployments,endpointslices",
        ])
        .unwrap();
    plane
        .kubectl_ok(&[
            "create",
            "clusterrolebinding",
            "meshcheck-reader",
            "--clusterrole=meshcheck-reader",
            "--user=auditor",
        ])
        .unwrap();
    let kubeconfig = plane.user_kubeconfig("auditor", &[]).unwrap();
    let (code, doc) = document(&["precheck", "--to-version", "1.30"], &kubeconfig);
    assert_eq!(code, 1);
    let (outcome, missing) = result(&doc, "MC0201");
    assert_eq!(outcome, "error");
    assert!(
        missing.contains(&"patch mutatingwebhookconfigurations.admissionregistration.k8s.io".to_string()),
        "{missing:?}"
    );
    assert!(missing.contains(&"escalate clusterroles.rbac.authorization.k8s.io".to_string()), "{missing:?}");
    assert!(missing.contains(&"delete deployments.apps in namespace istio-system".to_string()), "{missing:?}");
    // What it may not read only skips the checks that need it.
    let (outcome, _) = result(&doc, "MC0505");
    assert_eq!(outcome, "skipped");
    // Without read access the command itself is forbidden, and says by whom.
    let nobody = plane.user_kubeconfig("nobody", &[]).unwrap();
    let (code, _, err) = run(meshcheck(&nobody).arg("precheck"));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("User \"nobody\" cannot list"), "{err}");
}

#[test]
fn precheck_finds_dangling_tags_and_double_injection() {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, true).unwrap();
    let tag = plane
        .kubectl_ok(&["get", "mutatingwebhookconfiguration", "istio-revision-tag-prod-canary", "-o", "json"])
        .unwrap();
    let mut copy: Value = serde_json::from_str(&tag).unwrap();
    copy["metadata"] = serde_json::json!({"name": "prod-canary-copy", "labels": {"istio.io/rev": "1-31-1", "istio.io/tag": "prod-canary"}});
    plane.apply(&copy.to_string()).unwrap();
    let mut dangling: Value = serde_json::from_str(&tag).unwrap();
    dangling["metadata"] = serde_json::json!({"name": "istio-revision-tag-old", "labels": {"istio.io/rev": "1-29-0", "istio.io/tag": "old"}});
    plane.apply(&dangling.to_string()).unwrap();
    let (code, doc) = document(&["precheck", "--to-version", "1.30"], &plane.kubeconfig);
    assert_eq!(code, 1);
    assert_eq!(result(&doc, "MC0302"), ("error".into(), vec!["tag/old → revision 1-29-0".into()]));
    let (outcome, overlaps) = result(&doc, "MC0402");
    assert_eq!(outcome, "error");
    assert!(
        overlaps.iter().any(|o| o.contains("prod-canary-copy/") && o.contains("istio-revision-tag-prod-canary/")),
        "{overlaps:?}"
    );
}

#[test]
fn precheck_reads_how_objects_were_written_and_gateway_api_bundles() {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.yaml");
    std::fs::write(
        &old,
        "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\n\
         spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}\n---\n\
         apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings, namespace: default}\n\
         spec: {hosts: [ratings], http: [{route: [{destination: {host: ratings}}]}]}\n---\n\
         apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
         metadata:\n  name: tlsroutes.gateway.networking.k8s.io\n  annotations:\n\
         \x20   api-approved.kubernetes.io: https://github.com/kubernetes-sigs/gateway-api/pull/3328\n\
         \x20   gateway.networking.k8s.io/bundle-version: v1.4.0\n\
         spec:\n  group: gateway.networking.k8s.io\n  scope: Namespaced\n\
         \x20 names: {kind: TLSRoute, listKind: TLSRouteList, plural: tlsroutes, singular: tlsroute}\n\
         \x20 versions:\n  - name: v1alpha2\n    served: true\n    storage: true\n\
         \x20   schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
    )
    .unwrap();
    // Client-side apply, as most pipelines still do: it records last-applied and a managedFields entry.
    let (code, out, err) = run(plane.kubectl().args(["apply", "-f"]).arg(&old));
    assert_eq!(code, 0, "{out}{err}");
    let (_, doc) = document(&["precheck", "--to-version", "1.31"], &plane.kubeconfig);
    assert_eq!(
        result(&doc, "MC0408"),
        (
            "warning".into(),
            vec![
                "virtualservice/default/reviews: written as networking.istio.io/v1alpha3 by kubectl-client-side-apply, \
                 networking.istio.io/v1alpha3 by last-applied"
                    .into()
            ]
        )
    );
    assert_eq!(
        result(&doc, "MC0407"),
        (
            "warning".into(),
            vec!["crd/tlsroutes.gateway.networking.k8s.io is bundle v1.4.0; Istio 1.31 needs v1.5.0".into()]
        )
    );
    assert_eq!(result(&doc, "MC0405").0, "pass", "Istio 1.31 serves every stored version");
}

#[test]
fn a_hung_server_is_given_up_on_after_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = meshtest::hanging_kubeconfig(dir.path());
    let (code, out, err) = run(meshcheck(&kubeconfig).args(["precheck", "--request-timeout", "1s"]));
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty(), "no half report: {out}");
    assert!(err.lines().next().unwrap().contains("within the request timeout of 1s"), "{err}");
}

#[test]
fn version_reads_the_data_plane_from_pod_specs() {
    let plane = fixture();
    let (code, out, err) = run(meshcheck(&plane.kubeconfig).args(["version", "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kubernetes"], plane.tools.versions.kubernetes.as_str());
    let control: Vec<(&str, &str)> = v["controlPlane"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["revision"].as_str().unwrap(), c["version"].as_str().unwrap()))
        .collect();
    assert_eq!(control, [("1-30-3", "1.30.3"), ("1-31-1", "1.31.1")]);
    let data: Vec<(&str, &str, u64)> = v["dataPlane"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["revision"].as_str().unwrap(), d["version"].as_str().unwrap(), d["pods"].as_u64().unwrap()))
        .collect();
    assert_eq!(data, [("1-30-3", "1.30.3", 6), ("1-31-1", "1.31.1", 1)]);
    assert!(v["warnings"].as_array().unwrap().is_empty());
}

#[test]
fn verify_fails_while_no_istiod_runs() {
    let plane = fixture();
    let (code, doc) = document(&["verify"], &plane.kubeconfig);
    assert_eq!(code, 1);
    let (outcome, objects) = result(&doc, "MC0601");
    assert_eq!(outcome, "error");
    assert!(objects.contains(&"deployment/istio-system/istiod-1-31-1 (0/1 ready)".to_string()), "{objects:?}");
    assert_eq!(result(&doc, "MC0603").0, "error");
    let (_, stale) = result(&doc, "MC0604");
    assert!(stale.contains(&"pod/shop-canary/web-1: revision moved 1-30-3 → 1-31-1".to_string()), "{stale:?}");
}

/// Tier B: istiod really becomes available and its Services get ready endpoints; `--wait`
/// retries until they do.
#[test]
fn verify_waits_for_a_real_control_plane() {
    let plane = ControlPlane::start(&Options { nodes: 1, ..Default::default() }).unwrap();
    Fixture::install(&plane, false).unwrap();
    // What istiod would do once running: patch its CA into its webhooks.
    for kind in ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"] {
        let list: Value = serde_json::from_str(&plane.kubectl_ok(&["get", kind, "-o", "json"]).unwrap()).unwrap();
        for mut item in list["items"].as_array().unwrap().clone() {
            for webhook in item["webhooks"].as_array_mut().unwrap() {
                webhook["clientConfig"]["caBundle"] = Value::from("Y2E=");
            }
            item["metadata"].as_object_mut().unwrap().remove("managedFields");
            plane.apply(&item.to_string()).unwrap();
        }
    }
    let (code, doc) = document(&["verify", "--wait", "--timeout", "120s"], &plane.kubeconfig);
    assert_eq!(code, 0, "{doc:#}");
    for check in ["MC0601", "MC0602", "MC0603", "MC0302", "MC0303"] {
        assert_eq!(result(&doc, check).0, "pass", "{check}: {doc:#}");
    }
    // No istiod process runs in Tier B: the live checks are skipped, saying why. The apiserver
    // refuses the port-forward without dialing a kwok node (no node has an address it would use).
    let check = doc["categories"].as_array().unwrap().iter().flat_map(|c| c["checks"].as_array().unwrap());
    let live = check.clone().find(|c| c["code"] == "MC0608").unwrap();
    assert_eq!(live["result"], "skipped", "{live:#}");
    assert!(live.to_string().contains("no preferred addresses found"), "{live:#}");
    // The controllers' pods carry no sidecar (no istiod injects them): verify says which.
    let (outcome, stale) = result(&doc, "MC0604");
    assert_eq!(outcome, "warning");
    assert!(
        stale
            .iter()
            .any(|p| p.starts_with("pod/shop-canary/web-")
                && p.ends_with("no sidecar; its labels ask for one from 1-31-1")),
        "{stale:?}"
    );
}

/// An upgrade manifest rendered by helm from Istio's own chart passes review and a server-side dry
/// run; a tampered one is caught with file:line; malformed YAML is a usage error.
#[test]
fn manifest_review_of_a_rendered_revision() {
    let plane = fixture();
    let chart = meshtest::istio_module_dir().unwrap().join("manifests/charts/istio-control/istio-discovery");
    let out = Command::new(plane.tools.helm())
        .args(["template", "istiod-1-32-0"])
        .arg(&chart)
        .args([
            "-n",
            "istio-system",
            "--set",
            "revision=1-32-0",
            "--set",
            "global.hub=docker.io/istio",
            "--set",
            "global.tag=1.31.2",
        ])
        .env("HELM_CACHE_HOME", plane.dir.join("helm"))
        .env("HELM_CONFIG_HOME", plane.dir.join("helm"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("canary.yaml");
    std::fs::write(&file, &out.stdout).unwrap();
    let before = plane.kubectl_ok(&["get", "deployments", "-n", "istio-system", "-o", "name"]).unwrap();
    let (code, doc) = document(&["manifest", file.to_str().unwrap(), "--to-version", "1.31"], &plane.kubeconfig);
    assert_eq!(code, 0, "{doc:#}");
    for check in ["MC0801", "MC0802", "MC0803", "MC0804", "MC0805", "MC0806"] {
        assert_eq!(result(&doc, check).0, "pass", "{check}: {doc:#}");
    }
    assert_eq!(
        plane.kubectl_ok(&["get", "deployments", "-n", "istio-system", "-o", "name"]).unwrap(),
        before,
        "a dry run creates nothing"
    );

    let rendered = String::from_utf8(out.stdout).unwrap();
    // The same chart rendered for CNI, into a cluster that runs no istio-cni, with a removed field.
    let cni = rendered
        .replace("\"cni\": {\n          \"enabled\": false", "\"cni\": {\n          \"enabled\": true")
        .replace("    defaultConfig:\n", "    defaultConfig:\n      connectTimeout: 1s\n");
    assert_ne!(cni, rendered, "the rendered values changed shape; update this test");
    std::fs::write(&file, &cni).unwrap();
    let (_, doc) = document(&["manifest", file.to_str().unwrap(), "--to-version", "1.31"], &plane.kubeconfig);
    let (outcome, objects) = result(&doc, "MC0805");
    assert_eq!(outcome, "warning");
    assert!(
        objects[0].contains("configmap/istio-system/istio-sidecar-injector-1-32-0: pilot.cni.enabled"),
        "{objects:?}"
    );
    let (outcome, objects) = result(&doc, "MC0806");
    assert_eq!(outcome, "warning");
    assert!(
        objects[0].ends_with("configmap/istio-system/istio-1-32-0 data.mesh: defaultConfig.connectTimeout"),
        "{objects:?}"
    );

    let tampered = rendered.replace("\"docker.io/istio/pilot:1.31.2\"", "\"docker.io/istio/pilot:1.30.3\"")
        + "---\napiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n";
    let mut child = meshcheck(&plane.kubeconfig)
        .args(["manifest", "-f", "-", "-o", "json", "--to-version", "1.31"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), tampered.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (outcome, objects) = result(&doc, "MC0801");
    assert_eq!(outcome, "error");
    assert!(
        objects.iter().any(|o| o.starts_with("<stdin>:")
            && o.contains("deployment/istio-system/istiod-1-32-0")
            && o.ends_with("pilot:1.30.3")),
        "{objects:?}"
    );
    let (outcome, rejected) = result(&doc, "MC0804");
    assert_eq!(outcome, "error");
    assert!(
        rejected.iter().any(|o| o.contains("gadget/g") && o.contains("not served by this cluster")),
        "{rejected:?}"
    );

    std::fs::write(&file, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\nkind: [oops\n").unwrap();
    let (code, out, err) = run(meshcheck(&plane.kubeconfig).args(["manifest", file.to_str().unwrap()]));
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(err.starts_with(&format!("kubectl-meshcheck: error: {}:5: not valid YAML", file.display())), "{err}");
}
