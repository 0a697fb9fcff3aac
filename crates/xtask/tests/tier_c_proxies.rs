//! Tier C: the live proxy status against real istiod. Every injected pod's proxy is a real xDS
//! client (`tests/go/istio/xdsproxy`) connected where its injected configuration points; the
//! plugins read each istiod's `/debug/syncz` through a port-forward the apiserver opens via the
//! node's kubelet (kwok's server, on the loopback egress). istioctl reads the same istiods its own
//! way (xDS over a port-forward to 15012) and must agree.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use meshtest::{ControlPlane, NEW_ISTIO, OLD_ISTIO, Options, RealFixture, run};
use serde_json::Value;

fn plugin(plane: &ControlPlane, name: &str, args: &[&str]) -> (i32, String, String) {
    let binary = common::built_binary(&format!("kubectl-{name}"));
    run(meshtest::plugin(binary.to_str().unwrap(), &plane.kubeconfig).args(args))
}

fn json(plane: &ControlPlane, name: &str, args: &[&str], want: i32) -> Value {
    let (code, out, err) = plugin(plane, name, &[args, &["-o", "json"]].concat());
    assert_eq!(code, want, "{name} {args:?}:\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{name} {args:?} printed no JSON ({e}):\n{out}\n{err}"))
}

/// `meshcheck proxy-status ARGS` once `ready` holds for its rows (within a minute).
fn proxy_status_until(plane: &ControlPlane, args: &[&str], what: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let doc = json(plane, "meshcheck", &[&["proxy-status"], args].concat(), 0);
        let rows = doc["proxies"].as_array().unwrap().clone();
        if ready(&rows) {
            return rows;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: {rows:#?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn verdict(row: &Value) -> &str {
    row["verdict"]["state"].as_str().unwrap_or_default()
}

/// `(proxy, istiod)` pairs as `istioctl proxy-status -r REV` prints them, over both revisions.
fn istioctl_view(plane: &ControlPlane) -> BTreeSet<(String, String)> {
    let istioctl = meshtest::Tools::ensure().unwrap().istioctl().unwrap();
    let mut pairs = BTreeSet::new();
    for revision in [OLD_ISTIO.revision(), NEW_ISTIO.revision()] {
        let out = Command::new(&istioctl)
            .args(["proxy-status", "-r", &revision])
            .env("KUBECONFIG", &plane.kubeconfig)
            .env("HOME", &plane.dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "istioctl proxy-status -r {revision}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in text.lines() {
            let columns: Vec<&str> = line.split_whitespace().collect();
            if let [name, _cluster, istiod, ..] = columns[..]
                && name != "NAME"
            {
                pairs.insert((name.to_string(), istiod.to_string()));
            }
        }
    }
    pairs
}

fn our_view(rows: &[Value]) -> BTreeSet<(String, String)> {
    rows.iter()
        .filter_map(|r| {
            let istiod = r["istiod"].as_str()?;
            Some((format!("{}.{}", r["name"].as_str()?, r["namespace"].as_str()?), istiod.to_string()))
        })
        .collect()
}

fn all_synced(rows: &[Value], count: usize) -> bool {
    rows.len() == count && rows.iter().all(|r| verdict(r) == "synced")
}

const DRIFT_AND_MUTE: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: drift, namespace: shop-canary}
spec:
  replicas: 1
  selector: {matchLabels: {app: drift}}
  template:
    metadata:
      labels: {app: drift}
      # A discovery address left over from the old revision: injected by the canary, talking to the old istiod.
      annotations: {proxy.istio.io/config: '{\"discoveryAddress\": \"istiod-1-30-3.istio-system.svc:15012\"}'}
    spec:
      containers: [{name: web, image: nginx:1.27}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: mute, namespace: shop-canary}
spec:
  replicas: 1
  selector: {matchLabels: {app: mute}}
  template:
    metadata:
      labels: {app: mute}
      # The harness's proxy for this pod never ACKs: istiod reports it STALE.
      annotations: {meshtest.io/xds: withhold}
    spec:
      containers: [{name: web, image: nginx:1.27}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: picky, namespace: shop-canary}
spec:
  replicas: 1
  selector: {matchLabels: {app: picky}}
  template:
    metadata:
      labels: {app: picky}
      # The harness's proxy for this pod rejects every push (NACK): istiod records the error.
      annotations: {meshtest.io/xds: nack}
    spec:
      containers: [{name: web, image: nginx:1.27}]
";

#[test]
fn live_proxy_status_follows_every_move_and_catches_what_pod_specs_cannot() {
    let plane = ControlPlane::start(&Options { nodes: 1, real_istio: true, ..Default::default() }).unwrap();
    RealFixture::install(&plane, 2).unwrap();
    let (old, new) = (OLD_ISTIO.revision(), NEW_ISTIO.revision());

    // Five injected web pods and the gateway, each on the istiod of the revision that injected it.
    let rows = proxy_status_until(&plane, &[], "every proxy connected and synced", |rows| all_synced(rows, 6));
    for row in &rows {
        assert_eq!(row["revision"], row["injected"], "{row:#}");
        assert_eq!(row["sync"]["CDS"]["state"], "SYNCED", "{row:#}");
        assert!(row["istiod"].as_str().unwrap().starts_with(&format!("istiod-{}-", row["revision"].as_str().unwrap())));
    }
    // istioctl, asking the same istiods over xDS, sees the same proxies on the same istiods.
    assert_eq!(istioctl_view(&plane), our_view(&rows), "istioctl proxy-status and meshcheck proxy-status disagree");

    // Least privilege: the read role alone gets one line saying what is refused and the pod
    // specs' view; with meshcheck-live the same rows as the admin's.
    let reader = common::user(&plane, "meshcheck", &["meshcheck-read"]);
    let binary = common::built_binary("kubectl-meshcheck");
    let (code, out, err) =
        run(meshtest::plugin(binary.to_str().unwrap(), &reader).args(["proxy-status", "-o", "json"]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("not allowed to create pods/portforward in namespace istio-system"), "{err}");
    let refused: Value = serde_json::from_str(&out).unwrap();
    assert!(
        refused["proxies"].as_array().unwrap().iter().all(|r| verdict(r) == "unknown" && r["istiod"].is_null()),
        "{refused:#}"
    );
    let live = common::user(&plane, "meshcheck", &["meshcheck-read", "meshcheck-live"]);
    let (code, out, err) = run(meshtest::plugin(binary.to_str().unwrap(), &live).args(["proxy-status", "-o", "json"]));
    assert_eq!(code, 0, "{out}\n{err}");
    let granted: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(our_view(granted["proxies"].as_array().unwrap()), our_view(&rows), "{err}");

    // The same for the other plugins that read it: PROXIES only with their -live role.
    for (name, command, field) in [("meshmigrate", "status", "proxies"), ("revtag", "revisions", "connectedProxies")] {
        let binary = common::built_binary(&format!("kubectl-{name}"));
        let read = common::user(&plane, name, &[&format!("{name}-read")]);
        let (code, out, err) = run(meshtest::plugin(binary.to_str().unwrap(), &read).args([command, "-o", "json"]));
        assert_eq!(code, 0, "{name} {command}: {out}\n{err}");
        assert!(err.contains("not allowed to create pods/portforward"), "{name} {command}: {err}");
        let rows: Value = serde_json::from_str(&out).unwrap();
        assert!(rows.as_array().unwrap().iter().all(|r| r[field].is_null()), "{name} {command} guessed: {rows:#}");
        let live = common::user(&plane, name, &[&format!("{name}-read"), &format!("{name}-live")]);
        let (code, out, err) = run(meshtest::plugin(binary.to_str().unwrap(), &live).args([command, "-o", "json"]));
        assert_eq!(code, 0, "{name} {command}: {out}\n{err}");
        let rows: Value = serde_json::from_str(&out).unwrap();
        assert!(rows.as_array().unwrap().iter().any(|r| !r[field].is_null()), "{name} {command}: {rows:#}\n{err}");
    }

    // The seeds' gateway check: after the move, the gateway's proxy is on the canary istiod.
    let gateway = json(
        &plane,
        "meshmigrate",
        &["gateway", "istio-ingressgateway", "-n", "istio-ingress", "--to", &new, "--take-ownership"],
        0,
    );
    assert_eq!(
        (gateway["proxies"]["proven"].as_u64(), gateway["proxies"]["waiting"].as_array().map(Vec::len)),
        (Some(1), Some(0)),
        "{gateway:#}"
    );
    let rows = proxy_status_until(&plane, &["istio-ingress"], "the gateway on the canary", |rows| {
        rows.len() == 1 && rows[0]["revision"] == new.as_str() && verdict(&rows[0]) == "synced"
    });
    assert!(rows[0]["istiod"].as_str().unwrap().starts_with(&format!("istiod-{new}-")));

    // The seeds' namespace check: a tag moved and a namespace relabelled, restarted and waited
    // for: every new proxy is served by the canary istiod.
    let (code, out, err) =
        plugin(&plane, "revtag", &["set", "prod-stable", "--revision", &new, "--overwrite", "--take-ownership"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let moved = json(
        &plane,
        "meshmigrate",
        &["namespace", "shop-stable", "--to", "prod-stable", "--restart", "--wait", "--yes"],
        0,
    );
    assert_eq!(moved["proxies"]["waiting"].as_array().map(Vec::len), Some(0), "{moved:#}");
    assert_eq!(moved["proxies"]["proven"].as_u64(), Some(1), "{moved:#}");
    // shop-tagged's label did not change; its pods are stale because the tag moved: restart --wait.
    let restarted = json(&plane, "meshmigrate", &["restart", "shop-tagged", "--wait"], 0);
    assert_eq!(restarted["rollouts"]["shop-tagged/deployment/web"]["state"], "complete", "{restarted:#}");
    assert_eq!(
        (restarted["proxies"]["proven"].as_u64(), restarted["proxies"]["waiting"].as_array().map(Vec::len)),
        (Some(1), Some(0)),
        "{restarted:#}"
    );
    let rows = proxy_status_until(&plane, &["shop-stable", "shop-tagged"], "both namespaces on the canary", |rows| {
        rows.len() == 2 && rows.iter().all(|r| r["revision"] == new.as_str() && verdict(r) == "synced")
    });
    assert_eq!(rows.len(), 2);
    let status = json(&plane, "meshmigrate", &["status", "shop-stable"], 0);
    assert_eq!(status[0]["proxies"], serde_json::json!({"onIntended": 1, "total": 1}), "{status:#}");

    // What pod specs cannot show: a proxy on the old istiod while its pod says canary, and one
    // that never ACKs. verify turns red for both, naming them.
    plane.apply(DRIFT_AND_MUTE).unwrap();
    proxy_status_until(&plane, &["shop-canary"], "drift and mute connected", |rows| {
        let find = |prefix: &str| rows.iter().find(|r| r["name"].as_str().unwrap().starts_with(prefix)).map(verdict);
        find("drift-") == Some("wrongRevision") && find("mute-") == Some("stale") && find("picky-") == Some("rejected")
    });
    // mute's pushes must be older than --stale-after first.
    std::thread::sleep(Duration::from_secs(2));
    let report = json(&plane, "meshcheck", &["verify", "--stale-after", "1s"], 1);
    let wrong = common::check(&report, "MC0608");
    assert_eq!(wrong["result"], "error", "{wrong:#}");
    let objects = wrong["objects"].to_string();
    assert!(
        objects.contains("pod/shop-canary/drift-")
            && objects.contains(&format!("connected to {old}, injected by {new}")),
        "{objects}"
    );
    let stale = common::check(&report, "MC0609");
    assert!(stale["objects"].to_string().contains("pod/shop-canary/mute-"), "{stale:#}");
    assert!(stale["objects"].to_string().contains("pod/shop-canary/picky-"), "a NACK is named too: {stale:#}");
    // Connections count as use: the old revision still serves drift's proxy (and the others').
    let revisions = json(&plane, "revtag", &["revisions"], 0);
    let connected = |rev: &str| {
        revisions.as_array().unwrap().iter().find(|r| r["revision"] == rev).unwrap()["connectedProxies"].as_u64()
    };
    // At least: a replaced pod's proxy may still be closing its stream.
    assert!(connected(&old) >= Some(3), "shop-legacy, shop-plain and drift: {revisions:#}");
    assert!(connected(&new) >= Some(5), "canary, stable, tagged, the gateway and mute: {revisions:#}");

    // Stop the old revision's istiod: its proxies are disconnected, and verify names them.
    plane.kubectl_ok(&["scale", "deployment", &format!("istiod-{old}"), "-n", "istio-system", "--replicas=0"]).unwrap();
    proxy_status_until(&plane, &["shop-legacy"], "shop-legacy disconnected", |rows| {
        rows.len() == 1 && verdict(&rows[0]) == "notConnected"
    });
    let report = json(&plane, "meshcheck", &["verify"], 1);
    assert!(
        common::check(&report, "MC0608")["objects"].to_string().contains("not connected to any istiod"),
        "{report:#}"
    );

    // Every port-forward went through the loopback egress to kwok's server; nothing left loopback.
    let egress = std::fs::read_to_string(plane.dir.join("logs/egress.log")).unwrap_or_default();
    assert!(
        egress.contains(&format!("{}:{} -> 127.0.0.1:", meshtest::KWOK_NODE_IP, meshtest::KUBELET_PORT)),
        "{egress}"
    );
    let outside = std::fs::read_to_string(plane.dir.join("logs/non-loopback.log")).unwrap_or_default();
    assert!(outside.trim().is_empty(), "{outside}");
}
