//! Tier C: real istiod (two Istio builds) injecting through real admission, installed with real
//! `helm install`, with the apiserver's egress confined to loopback. Clusters are heavy on two
//! cores, so these tests take turns.

mod common;
#[path = "tier_c/ownership.rs"]
mod ownership;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use meshtest::{ControlPlane, NEW_ISTIO, OLD_ISTIO, Options, RealFixture, run};
use serde_json::Value;
use xtask::canary::{Session, Show};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn tier_c() -> ControlPlane {
    ControlPlane::start(&Options { nodes: 1, real_istio: true, ..Default::default() }).expect("Tier C control plane")
}

fn plugins_dir() -> std::path::PathBuf {
    common::built_binary("kubectl-revtag").parent().unwrap().to_path_buf()
}

/// The running pod of `deploy/web` in `namespace`, once exactly one is Running and not deleting.
fn web_pod(plane: &ControlPlane, namespace: &str) -> Value {
    let start = Instant::now();
    loop {
        let pods = plane.get_json(&["pods", "-n", namespace, "-l", "app=web"]).unwrap();
        let live: Vec<&Value> = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && p["status"]["phase"] == "Running")
            .collect();
        if live.len() == 1 && pods["items"].as_array().unwrap().len() == 1 {
            return live[0].clone();
        }
        assert!(start.elapsed() < Duration::from_secs(90), "no single running web pod in {namespace}: {pods}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `(proxy image, revision in sidecar.istio.io/status)` of an injected pod.
fn sidecar(pod: &Value) -> (String, String) {
    let all = pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(pod["spec"]["initContainers"].as_array().into_iter().flatten());
    let proxy = all.clone().find(|c| c["name"] == "istio-proxy").unwrap_or_else(|| panic!("no istio-proxy in {pod}"));
    let status: Value =
        serde_json::from_str(pod["metadata"]["annotations"]["sidecar.istio.io/status"].as_str().unwrap()).unwrap();
    (proxy["image"].as_str().unwrap().to_string(), status["revision"].as_str().unwrap().to_string())
}

fn log(plane: &ControlPlane, name: &str) -> String {
    std::fs::read_to_string(plane.dir.join("logs").join(name)).unwrap_or_default()
}

#[test]
fn real_istiod_injects_by_tag_follows_a_moved_tag_and_everything_stays_on_loopback() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let plane = tier_c();
    let started = Instant::now();
    let fixture = RealFixture::install(&plane, 2).unwrap();
    eprintln!("tier C: both revisions installed and serving {:.1?} after the plane started", started.elapsed());
    let (old, new) = (OLD_ISTIO.revision(), NEW_ISTIO.revision());

    // Real Helm releases, and no stand-in injector in this tier.
    let releases =
        plane.kubectl_ok(&["get", "secrets", "-n", "istio-system", "-l", "owner=helm", "-o", "name"]).unwrap();
    for release in ["istio-base", &format!("istiod-{old}"), &format!("istiod-{new}")] {
        assert!(releases.contains(&format!("sh.helm.release.v1.{release}.v1")), "{releases}");
    }
    let policies = plane.kubectl_ok(&["get", "mutatingadmissionpolicies", "-o", "name"]).unwrap();
    assert!(policies.trim().is_empty(), "{policies}");

    // istiod patched every injector's caBundle (tags included) by itself.
    let hooks = plane.get_json(&["mutatingwebhookconfigurations", "-l", "app=sidecar-injector"]).unwrap();
    let names: Vec<&str> =
        hooks["items"].as_array().unwrap().iter().map(|h| h["metadata"]["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"istio-revision-tag-prod-stable") && names.len() >= 5, "{names:?}");
    for hook in hooks["items"].as_array().unwrap() {
        for entry in hook["webhooks"].as_array().unwrap() {
            assert!(
                !entry["clientConfig"]["caBundle"].as_str().unwrap_or("").is_empty(),
                "{}",
                hook["metadata"]["name"]
            );
        }
    }
    let istiods = plane.istiods();
    assert_eq!(istiods.len(), 2, "{istiods:?}");
    for p in &istiods {
        let rss = std::fs::read_to_string(format!("/proc/{}/status", p.pid)).unwrap_or_default();
        eprintln!(
            "tier C: istiod {} pid {} {}",
            p.version,
            p.pid,
            rss.lines().find(|l| l.starts_with("VmRSS")).unwrap_or("")
        );
    }

    // A namespace on a tag gets its sidecar from the tag's revision, through the webhook.
    let pod = web_pod(&plane, "shop-tagged");
    assert_eq!(sidecar(&pod), (format!("docker.io/istio/proxyv2:{}", OLD_ISTIO.version), old.clone()));
    assert_eq!(
        meshtest::injected_shape(&pod),
        meshtest::injected_shape(&meshtest::injected_pod_template()),
        "the benchmark's pod template (tests/harness/data/injected-pod.json) no longer has the shape real istiod injects"
    );
    let legacy = web_pod(&plane, "shop-legacy");
    assert_eq!(sidecar(&legacy).1, old, "istio-injection=enabled follows the default tag");
    let canary = web_pod(&plane, "shop-canary");
    assert_eq!(sidecar(&canary), (format!("docker.io/istio/proxyv2:{}", NEW_ISTIO.version), new.clone()));
    let off = web_pod(&plane, "shop-off");
    assert!(sidecar_absent(&off), "istio-injection=disabled");
    assert!(
        log(
            &plane,
            &format!(
                "istiod-istio-system-{}.log",
                istiods.iter().find(|p| p.version == OLD_ISTIO.version).unwrap().name
            )
        )
        .contains("injection")
    );

    let (code, out, err) =
        run(meshtest::plugin(common::built_binary("kubectl-meshcheck").to_str().unwrap(), &plane.kubeconfig).args([
            "verify",
            "--wait",
            "--timeout",
            "60s",
        ]));
    assert_eq!(code, 0, "meshcheck verify on Tier C:\n{out}\n{err}");

    // The tag is the old release's (revisionTags): moving it behind Helm's back is refused and
    // changes nothing; --take-ownership takes it out of the release first.
    ownership::refused_then_taken_over(&plane, &fixture, &old, &new);
    ownership::a_planted_default_disagreement_is_reported(&plane, &old, &new);
    plane.kubectl_ok(&["rollout", "restart", "deployment/web", "-n", "shop-tagged"]).unwrap();
    let start = Instant::now();
    let moved = loop {
        let pod = web_pod(&plane, "shop-tagged");
        if sidecar(&pod).1 == new {
            break pod;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "shop-tagged still on {old}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(sidecar(&moved).0, format!("docker.io/istio/proxyv2:{}", NEW_ISTIO.version));

    // istiod's debug port through the apiserver's pod proxy: the egress maps the pod's address.
    let istiod_pod = &istiods[0];
    let syncz = plane
        .kubectl_ok(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/istio-system/pods/{}:15014/proxy/metrics", istiod_pod.name),
        ])
        .unwrap();
    assert!(syncz.contains("pilot_"), "istiod metrics through the pod proxy");

    // An address no local process serves is refused by the egress, recorded, and fails.
    let ip = pod["status"]["podIP"].as_str().unwrap();
    let out = plane
        .kubectl()
        .args([
            "get",
            "--raw",
            &format!("/api/v1/namespaces/shop-tagged/pods/{}:80/proxy/", moved["metadata"]["name"].as_str().unwrap()),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let moved_ip = moved["status"]["podIP"].as_str().unwrap();
    let refused = log(&plane, "egress-refused.log");
    assert!(refused.contains(&format!("{moved_ip}:80 refused")), "{refused} (first pod was {ip})");
    let egress = log(&plane, "egress.log");
    assert!(
        egress.lines().any(|l| l.contains(":443 -> 127.0.0.1:")),
        "webhook calls went through the egress: {egress}"
    );

    // helm uninstall of the old release stops its istiod, leaves the tag it handed over, and
    // leaves a leftover that verify reports: istio-base's validator names a revision now gone.
    let old_pid = plane.istiods().iter().find(|p| p.version == OLD_ISTIO.version).unwrap().pid;
    let out = meshtest::helm_command(&plane)
        .args(["uninstall", &format!("istiod-{old}"), "-n", "istio-system"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{old_pid}")).exists() || plane.istiods().len() != 1 {
        assert!(start.elapsed() < Duration::from_secs(60), "old istiod still running: {:?}", plane.istiods());
        std::thread::sleep(Duration::from_millis(200));
    }
    ownership::the_handed_over_tag_outlives_helm_uninstall(&plane, &old, &new);
    ownership::retiring_a_leftover_another_release_owns_is_refused(&plane, &fixture, &old, &new);

    // Over the whole run, no control-plane process held a socket to a non-loopback address.
    let outside = log(&plane, "non-loopback.log");
    assert!(outside.trim().is_empty(), "non-loopback connections: {outside}");
}

fn sidecar_absent(pod: &Value) -> bool {
    pod["spec"]["containers"].as_array().unwrap().iter().all(|c| c["name"] != "istio-proxy")
        && pod["spec"]["initContainers"].as_array().into_iter().flatten().all(|c| c["name"] != "istio-proxy")
}

#[test]
fn the_demo_walkthrough_upgrades_retires_and_rolls_back() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    {
        let plane = tier_c();
        let fixture = RealFixture::install(&plane, 1).unwrap();
        let session = Session::new(&plane, &fixture, &plugins_dir(), Show::Failures).unwrap();
        xtask::canary::upgrade(&session).unwrap();
        assert!(xtask::canary::backup_path(&plane.dir).exists());
        let revisions = plane.get_json(&["deployments", "-n", "istio-system", "-l", "app=istiod"]).unwrap();
        let names: Vec<&str> =
            revisions["items"].as_array().unwrap().iter().map(|d| d["metadata"]["name"].as_str().unwrap()).collect();
        assert_eq!(names, [format!("istiod-{}", NEW_ISTIO.revision())]);
        let tag = plane.get_json(&["mutatingwebhookconfiguration", "istio-revision-tag-default"]).unwrap();
        assert_eq!(
            tag["metadata"]["labels"]["istio.io/rev"],
            NEW_ISTIO.revision(),
            "the default survived retiring the old revision"
        );
        let old_release = format!("name=istiod-{}", OLD_ISTIO.revision());
        let records =
            plane.kubectl_ok(&["get", "secrets", "-n", "istio-system", "-l", &old_release, "-o", "name"]).unwrap();
        assert!(records.trim().is_empty(), "retire left the old release's records: {records}");
        let pod = web_pod(&plane, "shop-legacy");
        assert_eq!(sidecar(&pod).1, NEW_ISTIO.revision());
    }
    let plane = tier_c();
    let fixture = RealFixture::install(&plane, 1).unwrap();
    let session = Session::new(&plane, &fixture, &plugins_dir(), Show::Failures).unwrap();
    xtask::canary::rollback(&session).unwrap();
    assert_eq!(sidecar(&web_pod(&plane, "shop-stable")).1, OLD_ISTIO.revision());
    let start = Instant::now();
    while plane.istiods().iter().any(|p| p.version == NEW_ISTIO.version) {
        assert!(start.elapsed() < Duration::from_secs(60), "the canary's istiod outlived helm uninstall");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `helm upgrade` of a revision in place to the second build, keeping its name: every pod it
/// injected before now runs an older proxy than it injects. `status` says so and why, `restart`
/// restarts exactly those workloads, and the new pods get the new proxy from the real istiod.
#[test]
fn an_in_place_upgrade_makes_pods_stale_by_version_and_restart_replaces_exactly_those() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let plane = tier_c();
    let fixture = RealFixture::install(&plane, 1).unwrap();
    let old = OLD_ISTIO.revision();
    let plugin = |name: &str, args: &[&str]| {
        run(meshtest::plugin(common::built_binary(&format!("kubectl-{name}")).to_str().unwrap(), &plane.kubeconfig)
            .args(args))
    };
    let stale = || -> std::collections::BTreeMap<String, Value> {
        let (code, out, err) = plugin("meshmigrate", &["status", "-o", "json"]);
        assert_eq!(code, 0, "{err}");
        let rows: Value = serde_json::from_str(&out).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .filter(|r| !r["stalePods"].as_array().unwrap().is_empty())
            .map(|r| (r["namespace"].as_str().unwrap().to_string(), r["staleReasons"].clone()))
            .collect()
    };
    assert!(stale().is_empty(), "{:?}", stale());
    // On a fresh install, no finding points at Istio's own pods (their charts set their annotations).
    let (_, out, _) = plugin("meshcheck", &["precheck", "-o", "json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    for check in report["categories"].as_array().unwrap().iter().flat_map(|c| c["checks"].as_array().unwrap()) {
        if check["result"] == "warning" || check["result"] == "error" {
            let objects = check["objects"].to_string();
            assert!(!objects.contains("pod/istio-system/") && !objects.contains("pod/istio-ingress/"), "{check}");
        }
    }

    // `--reuse-values` would keep the old chart's defaults, its image tag among them.
    let discovery = fixture.new_charts.join("istio-control/istio-discovery");
    let out = meshtest::helm_command(&plane)
        .args([
            "upgrade",
            &format!("istiod-{old}"),
            discovery.to_str().unwrap(),
            "-n",
            "istio-system",
            "--reset-then-reuse-values",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let start = Instant::now();
    while !plane
        .istiods()
        .iter()
        .any(|p| p.revision.as_deref() == Some(old.as_str()) && p.version == NEW_ISTIO.version && p.ready)
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "revision {old} does not run {}: {:?}",
            NEW_ISTIO.version,
            plane.istiods()
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    let reasons = stale();
    let expected = format!("proxy {}, revision {old} now injects {}", OLD_ISTIO.version, NEW_ISTIO.version);
    let namespaces: Vec<&str> = reasons.keys().map(String::as_str).collect();
    assert_eq!(namespaces, ["istio-ingress", "shop-legacy", "shop-plain", "shop-stable", "shop-tagged"], "{reasons:?}");
    for (namespace, why) in &reasons {
        assert!(why.as_object().unwrap().values().all(|r| r == &Value::from(expected.clone())), "{namespace}: {why}");
    }
    let generations = || -> std::collections::BTreeMap<String, i64> {
        let list = plane.get_json(&["deployments", "-A"]).unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let key = format!(
                    "{}/{}",
                    d["metadata"]["namespace"].as_str().unwrap(),
                    d["metadata"]["name"].as_str().unwrap()
                );
                (key, d["metadata"]["generation"].as_i64().unwrap())
            })
            .collect()
    };
    let before = generations();
    let (code, _, err) = plugin("meshmigrate", &["restart"]);
    assert_eq!(code, 0, "{err}");
    let after = generations();
    let restarted: Vec<&String> = after.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    assert_eq!(
        restarted,
        [
            "istio-ingress/istio-ingressgateway",
            "shop-legacy/web",
            "shop-plain/web",
            "shop-stable/web",
            "shop-tagged/web"
        ],
        "exactly the stale workloads, and neither istiod nor shop-off"
    );
    let start = Instant::now();
    let pod = loop {
        let pod = web_pod(&plane, "shop-legacy");
        if sidecar(&pod).0.ends_with(NEW_ISTIO.version) {
            break pod;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "shop-legacy still runs the old proxy");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(sidecar(&pod), (format!("docker.io/istio/proxyv2:{}", NEW_ISTIO.version), old.clone()));
    let start = Instant::now();
    while !stale().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(120), "still stale after the restart: {:?}", stale());
        std::thread::sleep(Duration::from_millis(500));
    }
    // --wait: the new pod's proxy connects a moment after the pod runs.
    let (code, out, err) = plugin("meshcheck", &["verify", "--wait", "--timeout", "60s"]);
    assert_eq!(code, 0, "verify after the restart:\n{out}\n{err}");
}
