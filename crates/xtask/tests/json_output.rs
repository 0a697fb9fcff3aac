//! `-o json` prints JSON on every command that has output (mutating ones under --dry-run).

mod common;

use meshtest::{ControlPlane, Fixture, Options, run};

#[test]
fn every_command_with_output_prints_json() {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, true).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("backup.tar.gz");
    let archive = archive.to_str().unwrap();
    let manifest = scratch.path().join("manifest.yaml");
    std::fs::write(&manifest, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: istio-system}\n")
        .unwrap();
    let manifest = manifest.to_str().unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("revtag", &["list"]),
        ("revtag", &["revisions"]),
        ("revtag", &["set", "json-test", "-r", "1-31-1", "--dry-run"]),
        ("revtag", &["set", "json-test", "-r", "1-31-1", "--dry-run=server"]),
        ("revtag", &["generate", "json-test", "-r", "1-31-1"]),
        ("revtag", &["remove", "prod-canary", "--dry-run", "--yes"]),
        ("revtag", &["remove", "no-such-tag", "--ignore-not-found"]),
        ("meshcheck", &["precheck", "--to-version", "1.31", "--revision", "1-32-0"]),
        ("meshcheck", &["verify"]),
        ("meshcheck", &["version"]),
        ("meshcheck", &["manifest", "-f", manifest, "--offline"]),
        ("meshmigrate", &["status"]),
        ("meshmigrate", &["log"]),
        ("meshmigrate", &["namespace", "shop-stable", "--to", "1-31-1", "--dry-run"]),
        ("meshmigrate", &["restart", "--dry-run"]),
        ("meshmigrate", &["gateway", "istio-ingressgateway", "-n", "istio-ingress", "--to", "1-31-1", "--dry-run"]),
        ("meshbackup", &["create", "-f", archive]),
        ("meshbackup", &["inspect", archive]),
        ("meshbackup", &["diff", archive]),
        ("meshbackup", &["restore", archive, "--dry-run"]),
    ];
    let mut failures = Vec::new();
    for (plugin, args) in cases {
        let binary = common::built_binary(&format!("kubectl-{plugin}"));
        let (code, out, err) =
            run(meshtest::plugin(binary.to_str().unwrap(), &plane.kubeconfig).args(*args).args(["-o", "json"]));
        let parsed = serde_json::from_str::<serde_json::Value>(&out);
        if code > 1 || parsed.is_err() {
            failures.push(format!(
                "kubectl {plugin} {} -o json: exit {code}, stdout {out:?}, stderr {err:?}",
                args.join(" ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
