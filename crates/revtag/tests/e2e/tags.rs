//! `set`, `remove`, `generate` and `revisions` end to end: every change checked on the live
//! objects, every refusal checked to leave the cluster exactly as it was.

use meshtest::{CANARY, STABLE};
use serde_json::Value;

use crate::common::*;

/// Runs `command` with a real terminal (util-linux `script`), typing `input`; returns the exit code
/// and everything the terminal showed.
fn on_terminal(plane: &meshtest::ControlPlane, command: &str, input: &str) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env("KUBECONFIG", &plane.kubeconfig)
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn namespace_versions(plane: &meshtest::ControlPlane) -> String {
    plane
        .kubectl_ok(&[
            "get",
            "namespaces",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion} {end}",
        ])
        .unwrap()
}

/// The seed's tag story: a tag moves from the stable to the canary revision with one command and
/// no namespace is relabelled; then the tag is removed.
#[test]
fn moving_and_removing_an_ordinary_tag() {
    let plane = private_fixture();
    let kc = &plane.kubeconfig;
    let namespaces_before = namespace_versions(&plane);

    let (code, _, err) = run(revtag(kc).args(["set", "prod-stable", "--revision", CANARY.name]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("tag prod-stable already points at revision 1-30-3") && err.contains("--overwrite"), "{err}");

    let (code, out, err) = run(revtag(kc).args(["set", "prod-stable", "--revision", CANARY.name, "--overwrite"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "revision tag \"prod-stable\" now points at revision \"1-31-1\" (was \"1-30-3\")");
    assert_eq!(row(&list_json(&plane), Some("prod-stable"), CANARY.name)["namespaces"][0], "shop-tagged");
    assert_eq!(namespace_versions(&plane), namespaces_before, "no namespace was relabelled");
    let webhook =
        get_json(&plane, &["mutatingwebhookconfiguration", "istio-revision-tag-prod-stable", "--show-managed-fields"])
            .unwrap();
    assert_eq!(webhook["metadata"]["labels"]["istio.io/rev"], CANARY.name);
    for entry in webhook["webhooks"].as_array().unwrap() {
        assert_eq!(entry["clientConfig"]["service"]["name"], "istiod-1-31-1");
    }
    assert!(webhook["metadata"]["managedFields"].as_array().unwrap().iter().any(|f| f["manager"] == "kubectl-revtag"));
    let service = get_json(&plane, &["service", "-n", "istio-system", "istiod-revision-tag-prod-stable"]).unwrap();
    assert_eq!(service["spec"]["selector"]["istio.io/rev"], CANARY.name);

    let before = versions(&plane);
    let (code, out, err) = run(revtag(kc).args(["set", "prod-stable", "-r", CANARY.name]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("already points at revision \"1-31-1\""), "{out}");
    assert_eq!(versions(&plane), before, "re-running set changes nothing");

    // Removing a tag that namespaces use needs a yes.
    let (code, _, err) = run(revtag(kc).args(["remove", "prod-canary"]));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("still used by: namespace shop-canary, namespace shop-optout"), "{err}");
    assert_eq!(versions(&plane), before);
    let (code, out, err) = run(revtag(kc).args(["remove", "prod-canary", "--dry-run=server"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("(server dry run) revision tag \"prod-canary\" removed"), "{out}");
    assert_eq!(versions(&plane), before);
    // What it deletes is written to a backup archive first, when asked.
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("tag-prod-canary.tar.gz");
    let archive = archive.to_str().unwrap();
    let (code, out, err) = run(revtag(kc).args(["remove", "prod-canary", "--yes", "--backup", archive]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("backed up 2 objects to {archive}")), "{err}");
    let listing = std::process::Command::new("tar").args(["tzf", archive]).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("MutatingWebhookConfiguration/_cluster/istio-revision-tag-prod-canary.yaml")
            && listing.contains("Service/istio-system/istiod-revision-tag-prod-canary.yaml"),
        "{listing}"
    );
    assert!(
        out.contains("mutatingwebhookconfiguration/istio-revision-tag-prod-canary")
            && out.contains("service/istiod-revision-tag-prod-canary"),
        "{out}"
    );
    assert!(get_json(&plane, &["mutatingwebhookconfiguration", "istio-revision-tag-prod-canary"]).is_none());
    assert!(get_json(&plane, &["service", "-n", "istio-system", "istiod-revision-tag-prod-canary"]).is_none());
    let (code, _, err) = run(revtag(kc).args(["remove", "prod-canary", "--yes"]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("existing tags: default, prod-stable"), "{err}");
    let (code, _, _) = run(revtag(kc).args(["remove", "prod-canary", "--ignore-not-found"]));
    assert_eq!(code, 0);
}

/// `default`: moving it asks first, moves the validating webhook too, and switches a legacy
/// injector off only after the new objects are in place; `remove default` undoes both.
#[test]
fn moving_and_removing_the_default_tag() {
    let plane = private_fixture();
    let kc = &plane.kubeconfig;
    // A legacy, unrevisioned injector as old installs left it, next to the default tag.
    let legacy_entry = |name: &str| {
        format!(
            "- name: {name}\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  clientConfig:\n    service: {{name: istiod, namespace: istio-system, path: /inject}}\n  rules:\n  - {{operations: [CREATE], apiGroups: [''], apiVersions: [v1], resources: [pods]}}\n  namespaceSelector:\n    matchLabels: {{istio-injection: enabled}}\n  objectSelector:\n    matchExpressions:\n    - {{key: sidecar.istio.io/inject, operator: NotIn, values: ['false']}}\n"
        )
    };
    plane
        .apply(&format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata:\n  name: istio-sidecar-injector\n  labels: {{istio.io/rev: default, app: sidecar-injector}}\nwebhooks:\n{}",
            legacy_entry("namespace.sidecar-injector.istio.io")
        ))
        .unwrap();
    let legacy_before = get_json(&plane, &["mutatingwebhookconfiguration", "istio-sidecar-injector"]).unwrap();

    let before = versions(&plane);
    let (code, _, err) = run(revtag(kc).args(["set", "default", "--revision", CANARY.name, "--overwrite"]));
    assert_eq!(code, 6, "no terminal and no --yes: {err}");
    assert!(
        err.contains("Move the default revision from 1-30-3 to 1-31-1 (namespaces using it: shop-both, shop-legacy)"),
        "{err}"
    );
    assert!(err.contains("switch off the legacy injector istio-sidecar-injector"), "{err}");
    assert_eq!(versions(&plane), before, "nothing changes before confirmation");

    // On a terminal it asks; answering no changes nothing either.
    let (code, out, _) = on_terminal(
        &plane,
        &format!("{} set default --revision {} --overwrite", env!("CARGO_BIN_EXE_kubectl-revtag"), CANARY.name),
        "n\n",
    );
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("Move the default revision from 1-30-3 to 1-31-1") && out.contains("[y/N]"), "{out}");
    assert_eq!(versions(&plane), before, "a no changes nothing");

    let (code, out, err) = run(revtag(kc).args(["set", "default", "--revision", CANARY.name, "--overwrite", "--yes"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("now points at revision \"1-31-1\"")
            && out.contains("legacy injector \"istio-sidecar-injector\" switched off"),
        "{out}"
    );
    let validator = get_json(&plane, &["validatingwebhookconfiguration", "istiod-default-validator"]).unwrap();
    assert_eq!(validator["metadata"]["labels"]["istio.io/rev"], CANARY.name);
    assert_eq!(validator["webhooks"][0]["clientConfig"]["service"]["name"], "istiod-1-31-1");
    assert_eq!(validator["webhooks"][0]["clientConfig"]["service"]["path"], "/validate");
    let legacy = get_json(&plane, &["mutatingwebhookconfiguration", "istio-sidecar-injector"]).unwrap();
    assert_eq!(legacy["webhooks"][0]["namespaceSelector"]["matchLabels"]["istio.io/deactivated"], "never-match");
    let revisions: Vec<Value> = serde_json::from_str(&run(revtag(kc).args(["revisions", "-o", "json"])).1).unwrap();
    let default = revisions.iter().find(|r| r["default"] == true).unwrap();
    assert_eq!(default["revision"], CANARY.name);
    assert!(strings(&default["validators"]).contains(&"istiod-default-validator"), "{default}");

    let (code, _, err) = run(revtag(kc).args(["remove", "default"]));
    assert_eq!(code, 6, "{err}");
    let (code, out, err) = run(revtag(kc).args(["remove", "default", "--yes"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("validatingwebhookconfiguration/istiod-default-validator"), "{out}");
    assert!(out.contains("legacy injector \"istio-sidecar-injector\" switched back on"), "{out}");
    assert!(get_json(&plane, &["validatingwebhookconfiguration", "istiod-default-validator"]).is_none());
    assert!(get_json(&plane, &["mutatingwebhookconfiguration", "istio-revision-tag-default"]).is_none());
    let legacy_after = get_json(&plane, &["mutatingwebhookconfiguration", "istio-sidecar-injector"]).unwrap();
    assert_eq!(legacy_after["webhooks"], legacy_before["webhooks"], "the legacy injector is exactly as it was");
    assert!(legacy_after["metadata"]["annotations"].get("revtag.meshkit.dev/deactivated-selectors").is_none());
}

#[test]
fn bad_input_changes_nothing() {
    let plane = private_fixture();
    let kc = &plane.kubeconfig;
    // A revision whose istiod exists but whose injector webhook does not.
    plane
        .apply("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: istiod-half\n  namespace: istio-system\n  labels: {app: istiod, istio.io/rev: half}\nspec:\n  selector: {matchLabels: {app: istiod}}\n  template:\n    metadata: {labels: {app: istiod}}\n    spec:\n      containers: [{name: discovery, image: 'docker.io/istio/pilot:1.31.1'}]\n")
        .unwrap();
    // A user who may read everything revtag reads, and write nothing.
    plane
        .kubectl_ok(&[
            "create",
            "clusterrole",
            "revtag-reader",
            "--verb=get,list",
            "--resource=mutatingwebhookconfigurations,validatingwebhookconfigurations,namespaces,pods,services,deployments",
        ])
        .unwrap();
    plane
        .kubectl_ok(&["create", "clusterrolebinding", "revtag-reader", "--clusterrole=revtag-reader", "--user=reader"])
        .unwrap();
    let reader = plane.user_kubeconfig("reader", &[]).unwrap();

    // A leftover webhook from an old tag that still injects pods labelled `istio.io/rev=reused`.
    let leftover = plane
        .kubectl_ok(&["get", "mutatingwebhookconfiguration", "istio-revision-tag-prod-canary", "-o", "json"])
        .unwrap();
    let leftover =
        leftover.replace("\"prod-canary\"", "\"reused\"").replace("istio-revision-tag-reused", "leftover-injector");
    let mut leftover: Value = serde_json::from_str(&leftover).unwrap();
    leftover["metadata"] = serde_json::json!({"name": "leftover-injector", "labels": {"istio.io/rev": CANARY.name, "istio.io/tag": "old"}});
    plane.apply(&leftover.to_string()).unwrap();

    let before = versions(&plane);
    let cases: &[(&[&str], i32, &str)] = &[
        (&["set", "reused", "-r", STABLE.name], 1, "setting tag reused would inject some pods twice"),
        (
            &["set", "1-30-3", "-r", CANARY.name, "--overwrite"],
            1,
            "cannot use \"1-30-3\" as a tag: a revision of that name is installed",
        ),
        (&["set", "x", "-r", "1-29-0"], 5, "revision \"1-29-0\" is not installed"),
        (&["set", "x", "-r", "prod-canary"], 5, "revision \"prod-canary\" is not installed"),
        (&["set", "prod-canary", "-r", STABLE.name], 1, "tag prod-canary already points at revision 1-31-1"),
        (&["set", "x", "-r", "half"], 5, "revision half has no injector webhook"),
        (&["set", "Bad_Tag", "-r", CANARY.name], 2, "invalid tag name \"Bad_Tag\""),
        (&["set", "x"], 2, "`kubectl revtag set` needs --revision"),
        (&["remove", "nope"], 5, "no revision tag named \"nope\""),
    ];
    for (args, code, message) in cases {
        let (got, out, err) = run(revtag(kc).args(*args));
        assert_eq!(got, *code, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.lines().next().unwrap().contains(message), "{args:?}: {err}");
        assert!(err.contains("hint:"), "{args:?}: {err}");
    }
    let (code, _, err) = run(revtag(&reader).args(["set", "fresh", "-r", CANARY.name]));
    assert_eq!(code, 4, "{err}");
    // A change's first request beyond reading is the run lock.
    assert!(err.contains("User \"reader\" cannot get resource \"leases\""), "{err}");
    assert!(err.contains("take the run lock (lease istio-system/kubectl-mesh-lock)"), "{err}");
    let (code, out, err) = run(revtag(kc).args(["set", "fresh", "-r", CANARY.name, "--dry-run=server"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("(server dry run) revision tag \"fresh\" created"), "{out}");
    assert_eq!(versions(&plane), before, "refusals and dry runs leave the cluster as it was");

    // Two injector webhooks for one revision: which one would a tag copy?
    let copy = plane
        .kubectl_ok(&["get", "mutatingwebhookconfiguration", "istio-sidecar-injector-1-31-1", "-o", "json"])
        .unwrap();
    let mut copy: Value = serde_json::from_str(&copy).unwrap();
    copy["metadata"] =
        serde_json::json!({"name": "istio-sidecar-injector-1-31-1-copy", "labels": copy["metadata"]["labels"]});
    plane.apply(&copy.to_string()).unwrap();
    let before = versions(&plane);
    let (code, _, err) = run(revtag(kc).args(["set", "x", "-r", CANARY.name]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("revision 1-31-1 has 2 injector webhooks"), "{err}");
    assert_eq!(versions(&plane), before);
}

/// What `generate` prints is what Istio's own chart renders for the same tag (the fixture's tags
/// were rendered by helm from Istio's charts), up to the differences listed here.
#[test]
fn generate_matches_what_istios_chart_renders() {
    let plane = fixture();
    let before = versions(plane);
    let (code, out, err) =
        run(revtag(&plane.kubeconfig).args(["generate", "prod-stable", "--revision", STABLE.name, "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(versions(plane), before, "generate changes nothing");
    let list: Value = serde_json::from_str(&out).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "webhook and Service; no validator for an ordinary tag");
    let ours = &items[0];
    let chart = get_json(plane, &["mutatingwebhookconfiguration", "istio-revision-tag-prod-stable"]).unwrap();
    assert_eq!(ours["metadata"]["name"], chart["metadata"]["name"]);
    for key in ["istio.io/rev", "istio.io/tag", "app", "app.kubernetes.io/name", "app.kubernetes.io/part-of"] {
        assert_eq!(ours["metadata"]["labels"][key], chart["metadata"]["labels"][key], "label {key}");
    }
    // Intentional differences: we drop `operator.istio.io/*` (so installers do not prune a
    // user-managed tag, as istioctl does) and Helm's own labels, and say who manages the object.
    assert!(ours["metadata"]["labels"].get("operator.istio.io/component").is_none());
    assert_eq!(ours["metadata"]["labels"]["app.kubernetes.io/managed-by"], "kubectl-revtag");
    let entries = |v: &Value| v["webhooks"].as_array().unwrap().clone();
    let (ours_entries, chart_entries) = (entries(ours), entries(&chart));
    assert_eq!(ours_entries.len(), chart_entries.len());
    for (a, b) in ours_entries.iter().zip(&chart_entries) {
        // The apiserver fills in `scope: "*"` on rules that leave it out, as both do.
        let mut live_rules = b["rules"].clone();
        for rule in live_rules.as_array_mut().unwrap() {
            rule.as_object_mut().unwrap().remove("scope");
        }
        assert_eq!(a["rules"], live_rules, "{} rules", a["name"]);
        for key in [
            "name",
            "namespaceSelector",
            "objectSelector",
            "failurePolicy",
            "sideEffects",
            "admissionReviewVersions",
            "reinvocationPolicy",
        ] {
            assert_eq!(a[key], b[key], "{} {key}", a["name"]);
        }
        assert_eq!(a["clientConfig"]["service"]["name"], b["clientConfig"]["service"]["name"]);
        assert_eq!(a["clientConfig"]["service"]["path"], b["clientConfig"]["service"]["path"]);
    }
    let chart_service = get_json(plane, &["service", "-n", "istio-system", "istiod-revision-tag-prod-stable"]).unwrap();
    assert_eq!(items[1]["spec"]["selector"], chart_service["spec"]["selector"]);
    let ports = |v: &Value| {
        v["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].clone(), p["port"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ports(&items[1]), ports(&chart_service));

    // The default tag also carries the default validator, pointing at the revision.
    let (code, out, err) = run(revtag(&plane.kubeconfig).args(["generate", "default", "-r", STABLE.name]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("\n---\n").count(), 2, "three YAML documents: {out}");
    assert!(out.contains("name: istiod-default-validator") && out.contains("path: /validate"), "{out}");
}

#[test]
fn revisions_side_by_side() {
    let plane = fixture();
    let (code, out, err) = run(revtag(&plane.kubeconfig).args(["revisions", "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 2);
    let (stable, canary) = (&rows[0], &rows[1]);
    assert_eq!(stable["revision"], STABLE.name);
    assert_eq!(stable["version"], STABLE.version);
    assert_eq!(stable["default"], true);
    assert_eq!(strings(&stable["tags"]), ["default", "prod-stable"]);
    assert_eq!(strings(&stable["namespaces"]), ["shop-both", "shop-legacy", "shop-stable", "shop-tagged"]);
    assert_eq!(stable["injectedPods"], 6);
    assert_eq!(strings(&stable["injectors"]), ["istio-sidecar-injector-1-30-3"]);
    assert_eq!(strings(&stable["validators"]), ["istio-validator-1-30-3-istio-system", "istiod-default-validator"]);
    assert_eq!(canary["version"], CANARY.version);
    assert_eq!(strings(&canary["tags"]), ["prod-canary"]);
    assert_eq!(strings(&canary["namespaces"]), ["shop-canary", "shop-optout"]);
    assert_eq!(canary["injectedPods"], 1);
    let (code, out, _) = run(revtag(&plane.kubeconfig).args(["revisions", CANARY.name]));
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().nth(1).unwrap().starts_with("1-31-1"), "{out}");
    let (code, _, err) = run(revtag(&plane.kubeconfig).args(["revisions", "1-29-0"]));
    assert_eq!(code, 5);
    assert!(err.contains("installed revisions: 1-30-3, 1-31-1"), "{err}");
}
