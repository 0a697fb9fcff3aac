//! The same canary upgrade twice on Tier C: once with the commands Istio's own upgrade guide
//! uses (istioctl, kubectl label, kubectl rollout restart), once with the plugins. The final
//! objects are compared field by field; every difference must be one of the intentional ones
//! listed here (and in the README's "Differences from istioctl").

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use meshtest::{ControlPlane, NEW_ISTIO, OLD_ISTIO, Options, RealFixture};
use serde_json::Value;
use xtask::canary::{Session, Show};

/// `(object name prefix, field path prefix after it, why)` of the differences we intend.
/// An empty field means the whole object (present on one side only).
const INTENTIONAL: &[(&str, &str, &str)] = &[
    // Tags: same webhooks, selectors and Services; different claims about who manages them.
    (
        "mutatingwebhookconfigurations/istio-revision-tag-",
        ".metadata.",
        "revtag labels what it writes managed-by=kubectl-revtag; istioctl stamps Helm labels and release annotations of a release that never rendered them",
    ),
    (
        "services/istio-system/istiod-revision-tag-",
        ".metadata.",
        "the same for the tag Services; istioctl also leaves them claimed by the old release, which `helm uninstall` of it would delete, where the plugins take them out of it (resource-policy keep)",
    ),
    (
        "validatingwebhookconfigurations/istiod-default-validator",
        ".webhooks[0].objectSelector",
        "the plugins leave the default validator to istio-base (`helm upgrade … --set defaultRevision`), whose chart renders no objectSelector; istioctl rewrites it with one",
    ),
    (
        "validatingwebhookconfigurations/istiod-default-validator",
        ".metadata.",
        "the same, for the default validator istio-base rendered",
    ),
    // `istioctl uninstall --revision` does not remove a Helm-installed revision; retire does.
    ("configmaps/istio-system/istio-1-30-3", "", "retire removes the old revision's mesh config"),
    ("configmaps/istio-system/istio-sidecar-injector-1-30-3", "", "retire removes the old revision's injector config"),
    ("configmaps/istio-system/values-1-30-3", "", "retire removes the old revision's values"),
    ("deployments/istio-system/istiod-1-30-3", "", "retire removes the old istiod"),
    ("mutatingwebhookconfigurations/istio-sidecar-injector-1-30-3", "", "retire removes the old injector"),
    ("services/istio-system/istiod-1-30-3", "", "retire removes the old istiod Service"),
    ("validatingwebhookconfigurations/istio-validator-1-30-3-istio-system", "", "retire removes the old validator"),
];

fn tier_c() -> (ControlPlane, RealFixture) {
    let plane = ControlPlane::start(&Options { nodes: 1, real_istio: true, ..Default::default() }).unwrap();
    let fixture = RealFixture::install(&plane, 1).unwrap();
    (plane, fixture)
}

fn session<'a>(plane: &'a ControlPlane, fixture: &'a RealFixture) -> Session<'a> {
    let plugins = common::built_binary("kubectl-revtag").parent().unwrap().to_path_buf();
    Session::new(plane, fixture, &plugins, Show::Failures).unwrap()
}

fn install_canary(s: &Session) {
    let new = NEW_ISTIO.revision();
    s.step("", &format!("helm install istiod-{new} \"$MESHTEST_NEW_CHARTS/istio-control/istio-discovery\" -n istio-system -f \"$MESHTEST_HELM_VALUES\" --set revision={new}"), 0).unwrap();
    s.wait_serving(&new).unwrap();
}

fn settle(s: &Session) {
    xtask::canary::settle(s).unwrap();
}

/// What both clusters are compared on, with the fields that differ between any two clusters
/// (identities, times, addresses, certificates) removed.
fn state(plane: &ControlPlane) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (kind, namespace) in [
        ("mutatingwebhookconfigurations", None),
        ("validatingwebhookconfigurations", None),
        ("services", Some("istio-system")),
        ("deployments", Some("istio-system")),
        ("deployments", Some("istio-ingress")),
        ("configmaps", Some("istio-system")),
        ("namespaces", None),
    ] {
        let mut args = vec![kind];
        if let Some(ns) = namespace {
            args.extend(["-n", ns]);
        }
        let list = plane.get_json(&args).unwrap();
        for mut item in list["items"].as_array().unwrap().clone() {
            let name = item["metadata"]["name"].as_str().unwrap().to_string();
            if kind == "configmaps" && (name == "kube-root-ca.crt" || name.starts_with("meshmigrate")) {
                continue;
            }
            normalise(&mut item);
            out.insert(format!("{kind}/{}{name}", namespace.map(|n| format!("{n}/")).unwrap_or_default()), item);
        }
    }
    let pods = plane.get_json(&["pods", "-A", "-l", "app=web"]).unwrap();
    for pod in pods["items"].as_array().unwrap() {
        let ns = pod["metadata"]["namespace"].as_str().unwrap();
        let status = pod["metadata"]["annotations"]["sidecar.istio.io/status"].as_str().unwrap_or("{}");
        let status: Value = serde_json::from_str(status).unwrap();
        out.insert(format!("pods/{ns}/web"), serde_json::json!({"injectedBy": status["revision"]}));
    }
    out
}

fn normalise(item: &mut Value) {
    let meta = item["metadata"].as_object_mut().unwrap();
    for key in ["uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"] {
        meta.remove(key);
    }
    if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        annotations.remove("deployment.kubernetes.io/revision");
        // istiod's leader election: which pod won.
        annotations.remove("control-plane.alpha.kubernetes.io/leader");
    }
    if let Some(obj) = item.as_object_mut() {
        obj.remove("status");
    }
    for hook in item["webhooks"].as_array_mut().into_iter().flatten() {
        hook["clientConfig"].as_object_mut().map(|c| c.remove("caBundle"));
    }
    if let Some(spec) = item["spec"].as_object_mut() {
        for key in ["clusterIP", "clusterIPs"] {
            spec.remove(key);
        }
        if let Some(template) = spec.get_mut("template").and_then(|t| t["metadata"]["annotations"].as_object_mut()) {
            template.remove("kubectl.kubernetes.io/restartedAt");
        }
    }
    if let Some(data) = item["data"].as_object_mut() {
        // istiod writes its own CA root; each cluster has its own.
        data.remove("root-cert.pem");
    }
}

/// Every leaf that differs: `(path, a, b)`.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<(String, String, String)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                diff(&format!("{path}.{k}"), x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push((path.to_string(), a.to_string(), b.to_string())),
        _ => {}
    }
}

#[test]
fn istioctl_and_the_plugins_end_the_canary_upgrade_in_the_same_state() {
    let (old, new) = (OLD_ISTIO.revision(), NEW_ISTIO.revision());
    let istioctl = meshtest::Tools::ensure().unwrap().istioctl().unwrap();
    let istioctl = istioctl.display();

    // Istio's canary guide, command by command.
    let (a, fixture_a) = tier_c();
    let s = session(&a, &fixture_a);
    s.step("", &format!("{istioctl} x precheck"), 0).unwrap();
    install_canary(&s);
    s.step("", &format!("{istioctl} tag set prod-canary --revision {new}"), 0).unwrap();
    let list = s.step("", &format!("{istioctl} tag list"), 0).unwrap();
    assert!(list.stdout.contains("prod-canary"), "{}", list.stdout);
    s.step("", "kubectl label namespace shop-stable istio.io/rev=prod-canary --overwrite", 0).unwrap();
    s.step("", "kubectl rollout restart deployment/web -n shop-stable", 0).unwrap();
    s.step("", &format!("{istioctl} tag set prod-stable --revision {new} --overwrite"), 0).unwrap();
    s.step("", &format!("{istioctl} tag set default --revision {new} --overwrite -y"), 0).unwrap();
    s.step("", &format!("kubectl patch deployment/istio-ingressgateway -n istio-ingress --type merge -p '{{\"spec\":{{\"template\":{{\"metadata\":{{\"labels\":{{\"istio.io/rev\":\"{new}\"}}}}}}}}}}'"), 0).unwrap();
    for ns in ["shop-legacy", "shop-tagged", "shop-plain"] {
        s.step("", &format!("kubectl rollout restart deployment/web -n {ns}"), 0).unwrap();
    }
    settle(&s);
    s.step("", &format!("{istioctl} uninstall --revision {old} -y"), 0).unwrap();
    let with_istioctl = state(&a);
    drop(s);
    drop(a);

    // The same with the plugins.
    let (b, fixture_b) = tier_c();
    let s = session(&b, &fixture_b);
    s.step("", &format!("kubectl meshcheck precheck --to-version 1.31 --revision {new}"), 0).unwrap();
    install_canary(&s);
    s.step("", &format!("kubectl revtag set prod-canary --revision {new}"), 0).unwrap();
    let list = s.step("", "kubectl revtag list", 0).unwrap();
    assert!(list.stdout.contains("prod-canary"), "{}", list.stdout);
    s.step("", "kubectl meshmigrate namespace shop-stable --to prod-canary --restart --wait --yes", 0).unwrap();
    // What the plugins refuse to change behind Helm's back is moved the Helm way, or taken over.
    s.step("", &format!("kubectl meshmigrate gateway istio-ingressgateway -n istio-ingress --to {new}"), 1).unwrap();
    s.step("", &format!("helm upgrade istio-ingressgateway \"$MESHTEST_OLD_CHARTS/gateway\" -n istio-ingress --reuse-values --set revision={new}"), 0).unwrap();
    s.step("", &format!("kubectl revtag set prod-stable --revision {new} --overwrite --take-ownership"), 0).unwrap();
    s.step("", &format!("kubectl revtag set default --revision {new} --overwrite --take-ownership --yes"), 0).unwrap();
    s.step("", &format!("helm upgrade istio-base \"$MESHTEST_OLD_CHARTS/base\" -n istio-system --reuse-values --set defaultRevision={new}"), 0).unwrap();
    s.step("", "kubectl meshmigrate restart", 0).unwrap();
    settle(&s);
    s.step("", &format!("kubectl meshmigrate retire {old} --dry-run=server"), 0).unwrap();
    assert!(
        b.get_json(&["deployment", "-n", "istio-system", &format!("istiod-{old}")]).is_some(),
        "a server dry run deletes nothing"
    );
    let backup = b.dir.join("retired.tar.gz");
    s.step("", &format!("kubectl meshmigrate retire {old} --yes --backup {}", backup.display()), 0).unwrap();
    let with_plugins = state(&b);

    let mut differences = Vec::new();
    let names: std::collections::BTreeSet<&String> = with_istioctl.keys().chain(with_plugins.keys()).collect();
    for name in names {
        let (x, y) = (with_istioctl.get(name).unwrap_or(&Value::Null), with_plugins.get(name).unwrap_or(&Value::Null));
        diff(name, x, y, &mut differences);
    }
    let intended = |path: &str, (object, field, _): &(&str, &str, &str)| {
        path.strip_prefix(object).is_some_and(|rest| {
            if field.is_empty() {
                rest.is_empty()
            } else {
                rest.split_once('.').is_some_and(|(_, f)| format!(".{f}").starts_with(field))
            }
        })
    };
    let stale: Vec<&str> =
        INTENTIONAL.iter().filter(|i| !differences.iter().any(|(p, _, _)| intended(p, i))).map(|i| i.0).collect();
    assert!(stale.is_empty(), "listed as intentional but no longer different: {stale:?}");
    let unexpected: Vec<String> = differences
        .iter()
        .filter(|(path, _, _)| !INTENTIONAL.iter().any(|i| intended(path, i)))
        .map(|(path, x, y)| format!("{path}: istioctl {x} | plugins {y}"))
        .collect();
    assert!(unexpected.is_empty(), "{} unexpected difference(s):\n{}", unexpected.len(), unexpected.join("\n"));
    assert!(Path::new(&backup).exists(), "retire wrote its backup first");
}
