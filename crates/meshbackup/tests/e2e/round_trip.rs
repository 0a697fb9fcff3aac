use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::common::{Mesh, path, rows_with};

/// Fixture → create → delete the Istio objects (CRDs and every custom resource with them) →
/// restore → diff finds nothing; a rerun changes nothing.
#[test]
fn round_trip_restores_everything_and_reruns_converge() {
    let mesh = Mesh::start();
    let archive = mesh.file("before.tar.gz");
    let (code, out, err) = mesh.run(&["create", path(&archive), "--include-secrets"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("virtualservices.networking.istio.io") && err.contains("wrote "), "progress on stderr: {err}");
    assert!(out.contains("CA: istio-system/cacerts"), "{out}");
    assert_eq!(std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777, 0o600);

    let summary = mesh.json(&["inspect", path(&archive)]);
    assert_eq!(summary["formatVersion"], 1);
    assert_eq!(summary["cluster"]["kubernetesVersion"], "v1.35.4");
    let revisions: Vec<&str> =
        summary["revisions"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(revisions, ["1-30-3", "1-31-1"]);
    let count = |kind: &str, namespace: &str| -> u64 {
        summary["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["kind"] == kind && (namespace == "*" || g["namespace"] == namespace))
            .map(|g| g["objects"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(count("CustomResourceDefinition.apiextensions.k8s.io", "*"), 15, "every Istio CRD");
    assert_eq!(count("VirtualService.networking.istio.io", "shop-canary"), 1);
    assert_eq!(count("Gateway.networking.istio.io", "istio-ingress"), 1);
    assert_eq!(count("Sidecar.networking.istio.io", "routes-only"), 1);
    assert_eq!(count("MutatingWebhookConfiguration.admissionregistration.k8s.io", "*"), 5);
    assert_eq!(count("ValidatingWebhookConfiguration.admissionregistration.k8s.io", "*"), 3);
    assert_eq!(count("ClusterRole.rbac.authorization.k8s.io", "*"), 6);
    assert_eq!(count("Deployment.apps", "istio-system"), 2);
    assert_eq!(count("ConfigMap", "istio-system"), 6, "istio-ca-root-cert and kube-root-ca.crt are derived");
    assert_eq!(count("Secret", "istio-system"), 1);
    assert_eq!(count("Deployment.apps", "shop-canary"), 0, "applications are not Istio's");
    assert_eq!(count("Namespace", "*"), 10, "7 labelled, istio-system, and the two holding custom resources");
    assert_eq!(summary["caSecrets"], serde_json::json!(["istio-system/cacerts"]));

    // Never over an existing file without --force.
    let (code, _, err) = mesh.run(&["create", path(&archive)]);
    assert_eq!(code, 2, "a usage error, found before the cluster is read: {err}");
    assert!(err.contains("already exists") && err.contains("--force"), "{err}");
    assert!(!mesh.ok(&["create", path(&mesh.file("again.tar.gz"))]).contains("cacerts"), "no secrets unasked");

    let (code, out, err) = mesh.run(&["diff", path(&archive)]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");

    // Lose the Istio installation: the CRDs (and with them every custom resource), webhooks,
    // control plane and configuration, and an injection label.
    mesh.delete_istio_crds();
    mesh.kubectl(&[
        "delete",
        "mutatingwebhookconfigurations,validatingwebhookconfigurations,clusterroles,clusterrolebindings",
        "-l",
        "app.kubernetes.io/part-of=istio",
    ]);
    mesh.kubectl(&[
        "delete",
        "-n",
        "istio-system",
        "deployments,services,configmaps,secrets,serviceaccounts,roles,rolebindings,horizontalpodautoscalers",
        "--all",
    ]);
    mesh.kubectl(&["label", "namespace", "shop-stable", "istio.io/rev-"]);

    let (code, out, err) = mesh.run(&["diff", path(&archive), "-o", "json"]);
    assert_eq!(code, 1, "{err}");
    let differences: Vec<Value> = serde_json::from_str(&out).unwrap();
    let of = |change: &str| differences.iter().filter(|d| d["change"] == change).count();
    assert!(of("removed") > 40, "{differences:#?}");
    let namespace = differences.iter().find(|d| d["object"] == "namespace/shop-stable").unwrap();
    assert_eq!(namespace["change"], "changed");
    assert!(namespace["diff"].as_str().unwrap().contains("-    istio.io/rev: 1-30-3"), "{namespace}");

    // A client dry run lists the plan in apply order and sends nothing.
    let (code, out, err) = mesh.run(&["restore", path(&archive), "--dry-run", "-o", "json"]);
    assert_eq!(code, 0, "{err}\n{out}");
    let plan: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(plan.iter().all(|r| r["result"] == "wouldApply") && plan.len() > 40, "{plan:#?}");
    assert!(mesh.plane.get_json(&["crd", "virtualservices.networking.istio.io"]).is_none(), "nothing was applied");

    let (code, out, err) = mesh.run(&["restore", path(&archive), "--yes", "-o", "json"]);
    assert_eq!(code, 0, "{err}\n{out}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let phases: Vec<&str> = rows.iter().map(|r| r["phase"].as_str().unwrap()).collect();
    assert_eq!(phases.first(), Some(&"crds"));
    assert_eq!(phases.last(), Some(&"validatingWebhooks"));
    assert!(rows_with(&rows, "failed").is_empty(), "{rows:#?}");
    assert!(rows_with(&rows, "created").contains(&"virtualservice.networking.istio.io/shop-canary/reviews"));
    assert!(rows_with(&rows, "updated").contains(&"namespace/shop-stable"), "the label came back");
    assert!(rows_with(&rows, "unchanged").contains(&"namespace/shop-canary"));
    let vs = mesh.plane.get_json(&["virtualservice", "-n", "shop-canary", "reviews", "--show-managed-fields"]).unwrap();
    assert_eq!(vs["spec"]["http"][0]["route"][0]["destination"]["subset"], "v2");
    let secret = mesh.plane.get_json(&["secret", "-n", "istio-system", "cacerts"]).unwrap();
    assert_eq!(secret["data"]["ca-key.pem"], "a2V5", "the CA key, exactly");
    let managers: Vec<&str> =
        vs["metadata"]["managedFields"].as_array().unwrap().iter().map(|m| m["manager"].as_str().unwrap()).collect();
    assert_eq!(managers, ["kubectl-meshbackup"]);

    let (code, out, err) = mesh.run(&["diff", path(&archive)]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");

    let before = mesh.versions();
    let rows: Vec<Value> = serde_json::from_str(&mesh.ok(&["restore", path(&archive), "--yes", "-o", "json"])).unwrap();
    assert_eq!(rows_with(&rows, "unchanged").len(), rows.len(), "a rerun changes nothing");
    assert_eq!(mesh.versions(), before);
}
