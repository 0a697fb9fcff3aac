//! Retiring an unused revision.

use super::*;

/// `kind/name` of every object still labelled with `revision` (tags aside), across the kinds an
/// install owns.
fn owned_by(plane: &ControlPlane, revision: &str) -> Vec<String> {
    let kinds = "mutatingwebhookconfigurations,validatingwebhookconfigurations,clusterroles,clusterrolebindings";
    let selector = format!("istio.io/rev={revision},!istio.io/tag");
    let mut found: Vec<String> =
        plane.kubectl_ok(&["get", kinds, "-l", &selector, "-o", "name"]).unwrap().lines().map(String::from).collect();
    let namespaced = "deployments,services,configmaps,serviceaccounts,roles,rolebindings,poddisruptionbudgets,\
                      horizontalpodautoscalers";
    found.extend(
        plane
            .kubectl_ok(&["get", namespaced, "-n", "istio-system", "-l", &selector, "-o", "name"])
            .unwrap()
            .lines()
            .map(String::from),
    );
    found
}

/// The seed's last step, done safely: refused while used, backed up, deleted by label, rerunnable.
#[test]
fn retire_refuses_a_used_revision_then_backs_up_and_deletes_an_unused_one() {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("canary.tar.gz");
    let everything = || {
        plane
            .kubectl_ok(&[
                "get",
                "deployments,services,configmaps,mutatingwebhookconfigurations,validatingwebhookconfigurations,clusterroles",
                "-A",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}",
            ])
            .unwrap()
    };

    let before = everything();
    let (code, _, err) =
        run(meshmigrate(&plane.kubeconfig).args(["retire", "1-31-1", "--yes", "--backup"]).arg(&backup));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("revision 1-31-1 is still in use") && err.contains("tag/prod-canary"), "{err}");
    assert!(err.contains("namespace/shop-canary (istio.io/rev=prod-canary)"), "{err}");
    assert_eq!(everything(), before, "a refusal changes nothing");
    assert!(!backup.exists());
    let (code, _, err) = run(meshmigrate(&plane.kubeconfig).args(["retire", "1-29-0", "--yes"]));
    assert_eq!(code, 5, "{err}");

    // Move everything off the canary: its tag goes, its namespaces go back to the stable revision.
    plane
        .kubectl_ok(&["delete", "mutatingwebhookconfigurations,services", "-A", "-l", "istio.io/tag=prod-canary"])
        .unwrap();
    plane
        .kubectl_ok(&["label", "namespaces", "-l", "istio.io/rev=prod-canary", "istio.io/rev=1-30-3", "--overwrite"])
        .unwrap();
    let owned = owned_by(&plane, "1-31-1");
    assert!(owned.contains(&"deployment.apps/istiod-1-31-1".to_string()), "{owned:?}");
    // The chart labels its RBAC and ServiceAccount with the Helm release only.
    let release = "app=istiod,app.kubernetes.io/instance=istiod-1-31-1";
    let rbac = || {
        plane
            .kubectl_ok(&[
                "get",
                "clusterroles,clusterrolebindings,serviceaccounts,roles,rolebindings",
                "-A",
                "-l",
                release,
                "-o",
                "name",
            ])
            .unwrap()
    };
    let rbac_before = rbac();
    assert!(
        rbac_before.contains("clusterrole.rbac.authorization.k8s.io/istiod-clusterrole-1-31-1-istio-system"),
        "{rbac_before}"
    );

    let (code, plan, err) = json_run(&plane.kubeconfig, &["retire", "1-31-1", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(plan["deleted"].as_array().unwrap().len(), owned.len() + rbac_before.lines().count(), "{plan:#}");
    assert_eq!(plan["deleted"][0]["kind"], "MutatingWebhookConfiguration", "webhooks go first: {plan:#}");
    assert_eq!(owned_by(&plane, "1-31-1"), owned, "a dry run deletes nothing");

    // `{..resourceVersion}` includes the list's own (empty) one; keep the objects' only.
    let stable = || {
        let versions = plane
            .kubectl_ok(&[
                "get",
                "deployment,service",
                "-n",
                "istio-system",
                "-l",
                "istio.io/rev=1-30-3",
                "-o",
                "jsonpath={range .items[*]}{.metadata.resourceVersion} {end}",
            ])
            .unwrap();
        let mut versions: Vec<String> = versions.split_whitespace().map(String::from).collect();
        versions.sort();
        versions
    };
    let stable_before = stable();
    let crds_before = plane.kubectl_ok(&["get", "crds", "-o", "name"]).unwrap();
    let (code, done, err) =
        json_run(&plane.kubeconfig, &["retire", "1-31-1", "--yes", "--backup", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(owned_by(&plane, "1-31-1").is_empty(), "{:?}", owned_by(&plane, "1-31-1"));
    assert_eq!(rbac(), "", "the release's RBAC is gone too");
    assert_eq!(stable(), stable_before, "the stable revision is untouched");
    assert_eq!(plane.kubectl_ok(&["get", "crds", "-o", "name"]).unwrap(), crds_before, "shared CRDs stay");
    let manifest = meshkit::archive::verify_file(&backup).unwrap();
    assert_eq!(manifest.objects.len(), done["deleted"].as_array().unwrap().len());
    assert!(manifest.objects.iter().any(|o| o.kind == "Deployment" && o.name == "istiod-1-31-1"), "{manifest:?}");

    let (code, _, err) = run(meshmigrate(&plane.kubeconfig).args(["retire", "1-31-1", "--yes"]));
    assert_eq!(code, 0, "a rerun converges: {err}");
    assert!(err.contains("already retired"), "{err}");
    let (_, log, _) = json_run(&plane.kubeconfig, &["log"]);
    let retired = log.as_array().unwrap().iter().find(|e| e["action"] == "retire").expect("journaled");
    assert_eq!((retired["workload"].as_str(), retired["state"].as_str()), (Some("revision/1-31-1"), Some("done")));
}
