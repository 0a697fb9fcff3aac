//! `--dry-run=server` on every mutating command: the apiserver validates each write and nothing
//! changes (resourceVersions compared over everything the plugins touch).

mod common;

use meshtest::{ControlPlane, Fixture, Options, run};

#[test]
fn server_dry_run_changes_nothing_on_any_mutating_command() {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, true).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("backup.tar.gz");
    let archive = archive.to_str().unwrap();
    let binary = |p: &str| common::built_binary(&format!("kubectl-{p}"));
    let plugin = |p: &str| meshtest::plugin(binary(p).to_str().unwrap(), &plane.kubeconfig);
    // A move in the journal, for `rollback` to undo (before the backup, which restore checks).
    let (code, _, err) = run(plugin("meshmigrate").args(["namespace", "shop-canary", "--to", "1-30-3"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(plugin("meshbackup").args(["create", archive]));
    assert_eq!(code, 0, "{err}");
    // Someone else's run holds the lock: dry runs persist nothing, so they need no lock.
    plane
        .apply(
            "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: kubectl-mesh-lock, namespace: istio-system}\n\
             spec:\n  holderIdentity: alice on laptop (pid 42) via kubectl-meshmigrate\n  leaseDurationSeconds: 300\n  \
             acquireTime: \"2099-01-01T00:00:00.000000Z\"\n  renewTime: \"2099-01-01T00:00:00.000000Z\"\n",
        )
        .unwrap();
    let before = common::versions(&plane);
    let cases: &[(&str, &[&str])] = &[
        ("revtag", &["set", "dry", "-r", "1-31-1"]),
        ("revtag", &["set", "prod-stable", "-r", "1-31-1", "--overwrite"]),
        ("revtag", &["remove", "prod-canary", "--yes"]),
        ("meshmigrate", &["namespace", "shop-stable", "--to", "1-31-1"]),
        ("meshmigrate", &["namespace", "shop-legacy", "shop-tagged", "--to", "prod-canary", "--restart", "--yes"]),
        ("meshmigrate", &["rollback", "shop-canary"]),
        ("meshmigrate", &["restart"]),
        ("meshmigrate", &["gateway", "istio-ingressgateway", "-n", "istio-ingress", "--to", "1-31-1"]),
        ("meshbackup", &["restore", archive, "--yes"]),
    ];
    for (name, args) in cases {
        let (code, out, err) = run(plugin(name).args(*args).arg("--dry-run=server"));
        assert_eq!(code, 0, "kubectl {name} {} --dry-run=server:\n{out}\n{err}", args.join(" "));
    }
    let changed = common::changed(&before, &common::versions(&plane));
    assert!(changed.is_empty(), "a server dry run changed {changed:?}");
    // For real, every plugin's changes refuse while the lock is held, name the holder and change
    // nothing (one lock for all the plugins).
    let real: &[(&str, &[&str])] = &[
        ("revtag", &["set", "dry", "-r", "1-31-1"]),
        ("revtag", &["remove", "prod-canary", "--yes"]),
        ("meshmigrate", &["namespace", "shop-legacy", "shop-tagged", "--to", "prod-canary", "--restart", "--yes"]),
        ("meshmigrate", &["rollback", "shop-canary"]),
        ("meshmigrate", &["gateway", "istio-ingressgateway", "-n", "istio-ingress", "--to", "1-31-1"]),
        ("meshbackup", &["restore", archive, "--yes"]),
    ];
    for (name, args) in real {
        let (code, out, err) = run(plugin(name).args(*args));
        assert_eq!(code, 1, "kubectl {name} {} under another run's lock:\n{out}\n{err}", args.join(" "));
        assert!(
            err.contains("another run holds the lock: alice on laptop (pid 42) via kubectl-meshmigrate"),
            "kubectl {name} {}: {err}",
            args.join(" ")
        );
    }
    let changed = common::changed(&before, &common::versions(&plane));
    assert!(changed.is_empty(), "a run refused for the lock changed {changed:?}");
    // The apiserver really was asked: dry-run writes appear in its audit log.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let audit = std::fs::read_to_string(plane.dir.join("logs/audit.log")).unwrap();
    let dry_writes: Vec<serde_json::Value> = audit
        .lines()
        .filter(|l| l.contains("dryRun=All") && (l.contains("\"verb\":\"patch\"") || l.contains("\"verb\":\"delete\"")))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(dry_writes.len() >= 6, "{} dry-run writes in the audit log", dry_writes.len());
    // Every request says who sent it, so audit logs tell our writes from anyone else's.
    let agents: std::collections::BTreeSet<&str> =
        dry_writes.iter().map(|e| e["userAgent"].as_str().unwrap_or_default()).collect();
    let version = env!("CARGO_PKG_VERSION");
    let expected: std::collections::BTreeSet<String> =
        ["meshbackup", "meshmigrate", "revtag"].iter().map(|p| format!("kubectl-{p}/{version}")).collect();
    assert_eq!(agents, expected.iter().map(String::as_str).collect(), "User-Agents of the dry-run writes");
}
