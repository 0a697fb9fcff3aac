//! Never fight the owner, on real Helm releases: a Helm-rendered tag is refused and nothing
//! changes; --take-ownership takes it out of the release; a GitOps-marked tag is refused; a
//! planted default disagreement is reported; after `helm uninstall` of the old release the
//! handed-over tag still injects, and the validator it leaves behind is reported.

use std::time::{Duration, Instant};

use meshtest::{ControlPlane, RealFixture, run};
use serde_json::Value;

use super::{common, sidecar, web_pod};
use common::check;

fn plugin(plane: &ControlPlane, name: &str, args: &[&str]) -> (i32, String, String) {
    let binary = common::built_binary(&format!("kubectl-{name}"));
    run(meshtest::plugin(binary.to_str().unwrap(), &plane.kubeconfig).args(args))
}

fn helm(plane: &ControlPlane, args: &[&str]) -> String {
    let out = meshtest::helm_command(plane).args(args).output().unwrap();
    assert!(out.status.success(), "helm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn history(plane: &ControlPlane, release: &str) -> Vec<String> {
    let history: Value =
        serde_json::from_str(&helm(plane, &["history", release, "-n", "istio-system", "-o", "json"])).unwrap();
    history.as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap().to_string()).collect()
}

pub fn refused_then_taken_over(plane: &ControlPlane, fixture: &RealFixture, old: &str, new: &str) {
    let release = format!("istiod-{old}");
    let (code, out, _) = plugin(plane, "revtag", &["list", "-o", "json"]);
    assert_eq!(code, 0);
    let rows: Value = serde_json::from_str(&out).unwrap();
    let prod = rows.as_array().unwrap().iter().find(|r| r["tag"] == "prod-stable").unwrap();
    assert_eq!(prod["managedBy"], serde_json::json!({"by": "helm", "release": release, "namespace": "istio-system"}));
    let (_, out, _) = plugin(plane, "revtag", &["revisions", "-o", "json"]);
    let revisions: Value = serde_json::from_str(&out).unwrap();
    assert!(revisions.as_array().unwrap().iter().all(|r| r["managedBy"]["by"] == "helm"), "{revisions}");

    let before = common::versions(plane);
    let (code, _, err) = plugin(plane, "revtag", &["set", "prod-stable", "--revision", new, "--overwrite"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("tag prod-stable is managed by helm:istio-system/{release}")), "{err}");
    assert!(err.contains("--take-ownership"), "{err}");
    // A GitOps owner (simulated by its marks) is refused with "change it in Git".
    plane
        .kubectl_ok(&[
            "annotate",
            "mutatingwebhookconfiguration",
            "istio-revision-tag-prod-canary",
            "argocd.argoproj.io/tracking-id=mesh:admissionregistration.k8s.io/MutatingWebhookConfiguration:/istio-revision-tag-prod-canary",
        ])
        .unwrap();
    let before_gitops = common::versions(plane);
    let (code, _, err) = plugin(plane, "revtag", &["remove", "prod-canary", "--yes"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("change it in Git: Argo CD application mesh"), "{err}");
    assert!(common::changed(&before_gitops, &common::versions(plane)).is_empty());
    let changed: Vec<String> = common::changed(&before, &common::versions(plane));
    assert_eq!(changed.len(), 1, "only the annotation we planted changed: {changed:?}");
    assert_eq!(history(plane, &release), ["deployed"]);

    for attempt in 0..2 {
        let (code, _, err) =
            plugin(plane, "revtag", &["set", "prod-stable", "--revision", new, "--overwrite", "--take-ownership"]);
        assert_eq!(code, 0, "attempt {attempt}: {err}");
        if attempt == 0 {
            assert!(err.contains(&format!("Helm release {release}: revision 2 no longer renders")), "{err}");
            assert!(err.contains("helm rollback"), "the caveat is said: {err}");
        }
    }
    // One new release revision, however often it runs; the old one kept in the history.
    assert_eq!(history(plane, &release), ["superseded", "deployed"]);
    let manifest = helm(plane, &["get", "manifest", &release, "-n", "istio-system"]);
    assert!(!manifest.contains("istio-revision-tag-prod-stable"), "the release still renders the tag");
    assert!(manifest.contains("istio-revision-tag-default") && manifest.contains(&format!("name: istiod-{old}")));
    let values: Value =
        serde_json::from_str(&helm(plane, &["get", "values", &release, "-n", "istio-system", "-o", "json"])).unwrap();
    assert_eq!(values["revisionTags"], serde_json::json!(["default"]));
    let tag = plane.get_json(&["mutatingwebhookconfiguration", "istio-revision-tag-prod-stable"]).unwrap();
    let meta = &tag["metadata"];
    assert_eq!(meta["labels"]["istio.io/rev"], new);
    assert_eq!(meta["annotations"]["helm.sh/resource-policy"], "keep");
    assert!(meta["annotations"]["meta.helm.sh/release-name"].is_null(), "{meta}");
    let fields = plane
        .kubectl_ok(&[
            "get",
            "mutatingwebhookconfiguration",
            "istio-revision-tag-prod-stable",
            "--show-managed-fields",
            "-o",
            "json",
        ])
        .unwrap();
    let fields: Value = serde_json::from_str(&fields).unwrap();
    let managers: Vec<&str> =
        fields["metadata"]["managedFields"].as_array().unwrap().iter().filter_map(|m| m["manager"].as_str()).collect();
    assert!(managers.contains(&"kubectl-revtag"), "{managers:?}");
    // A later `helm upgrade --reuse-values` of the old release leaves the moved tag alone.
    let discovery = fixture.old_charts.join("istio-control/istio-discovery");
    helm(plane, &["upgrade", &release, discovery.to_str().unwrap(), "-n", "istio-system", "--reuse-values"]);
    assert_eq!(history(plane, &release), ["superseded", "superseded", "deployed"]);
    let tag = plane.get_json(&["mutatingwebhookconfiguration", "istio-revision-tag-prod-stable"]).unwrap();
    assert_eq!(tag["metadata"]["labels"]["istio.io/rev"], new, "helm upgrade moved the tag back");
}

pub fn a_planted_default_disagreement_is_reported(plane: &ControlPlane, old: &str, new: &str) {
    let label = |rev: &str| {
        plane
            .kubectl_ok(&[
                "label",
                "validatingwebhookconfiguration",
                "istiod-default-validator",
                &format!("istio.io/rev={rev}"),
                "--overwrite",
            ])
            .unwrap()
    };
    label(new);
    for (command, code) in [("precheck", "MC0305"), ("verify", "MC0606")] {
        let (exit, out, err) = plugin(plane, "meshcheck", &[command, "-o", "json"]);
        assert_eq!(exit, 1, "{command}: {err}");
        let report: Value = serde_json::from_str(&out).unwrap();
        let check = check(&report, code);
        assert_eq!(check["result"], "error", "{check}");
        let told = check["objects"].to_string();
        assert!(
            told.contains(&format!("the default tag says {old}"))
                && told.contains(&format!("istiod-default-validator says {new}")),
            "{told}"
        );
    }
    label(old);
}

pub fn the_handed_over_tag_outlives_helm_uninstall(plane: &ControlPlane, old: &str, new: &str) {
    let tag = plane.get_json(&["mutatingwebhookconfiguration", "istio-revision-tag-prod-stable"]).unwrap();
    assert_eq!(tag["metadata"]["labels"]["istio.io/rev"], new, "helm uninstall deleted the tag it had handed over");
    // It still injects: a new pod in the namespace on the tag gets the new revision's sidecar.
    let before = web_pod(plane, "shop-tagged")["metadata"]["name"].clone();
    plane.kubectl_ok(&["rollout", "restart", "deployment/web", "-n", "shop-tagged"]).unwrap();
    let start = Instant::now();
    loop {
        let pod = web_pod(plane, "shop-tagged");
        if pod["metadata"]["name"] != before {
            assert_eq!(sidecar(&pod).1, new, "the new pod's sidecar comes through the handed-over tag");
            let (code, out, _) = plugin(plane, "meshcheck", &["verify", "-o", "json"]);
            assert_eq!(code, 1, "a leftover validator fails verify");
            assert!(
                out.contains("MC0607")
                    && out
                        .contains(&format!("validatingwebhookconfiguration/istiod-default-validator (revision {old}")),
                "{out}"
            );
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "no pod injected through the handed-over tag");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// After `helm uninstall` of the old release, istio-base's validator still names it: retiring the
/// leftover is refused (the validator is istio-base's) and changes nothing; moving the default
/// revision the Helm way clears the leftover.
pub fn retiring_a_leftover_another_release_owns_is_refused(
    plane: &ControlPlane,
    fixture: &RealFixture,
    old: &str,
    new: &str,
) {
    // The pods the old istiod injected still run; without them, only the leftover is left.
    for namespace in ["shop-legacy", "shop-stable", "shop-plain", "istio-ingress"] {
        for kind in ["deployments", "replicasets", "pods"] {
            plane.kubectl_ok(&["delete", kind, "--all", "-n", namespace, "--grace-period=0", "--force"]).unwrap();
        }
    }
    let before = common::versions(plane);
    let (code, _, err) = plugin(plane, "meshmigrate", &["retire", old, "--yes"]);
    let pods = plane.kubectl_ok(&["get", "pods", "-A", "-o", "custom-columns=NS:.metadata.namespace,NAME:.metadata.name,REV:.metadata.annotations.istio\\.io/rev,DEL:.metadata.deletionTimestamp"]).unwrap();
    assert_eq!(code, 1, "{err}\n{pods}");
    assert!(err.contains("istiod-default-validator is managed by helm:istio-system/istio-base"), "{err}\n{pods}");
    assert!(err.contains("--set defaultRevision=REV"), "{err}");
    assert!(common::changed(&before, &common::versions(plane)).is_empty(), "a refused retire changed the cluster");
    let base = fixture.new_charts.join("base");
    helm(
        plane,
        &[
            "upgrade",
            "istio-base",
            base.to_str().unwrap(),
            "-n",
            "istio-system",
            "--reuse-values",
            "--set",
            &format!("defaultRevision={new}"),
        ],
    );
    let (_, out, _) = plugin(plane, "meshcheck", &["verify", "-o", "json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    let leftovers = check(&report, "MC0607");
    assert_eq!(leftovers["result"], "pass", "{leftovers}");
}
