//! Malformed input across the four plugins: each gets one error line and one hint line, the
//! usage exit code (2), sends no request (the apiserver's audit log has none from the user that
//! ran them) and changes nothing.

mod common;

use meshtest::{ControlPlane, Fixture, Options, run};

const USER: &str = "bad-input";

/// `(plugin, arguments)`; `{dir}` is a scratch directory, `{file}` a file that exists in it.
const CASES: &[(&str, &[&str])] = &[
    ("revtag", &["set", "Bad_Tag", "-r", "1-31-1"]),
    ("revtag", &["set", "prod", "-r", "Bad_Rev"]),
    ("revtag", &["set", "prod", "--revision", "1.31.1"]),
    ("revtag", &["set", "prod"]),
    ("revtag", &["set", "prod", "-r", "1-31-1", "--dry-run=maybe"]),
    ("revtag", &["set", "prod", "-r", "1-31-1", "extra"]),
    ("revtag", &["revisions", "Bad_Rev"]),
    ("revtag", &["list", "-o", "xml"]),
    ("revtag", &["list", "--request-timeout", "abc"]),
    ("revtag", &["remove"]),
    ("revtag", &["frobnicate"]),
    ("revtag", &["list", "--nope"]),
    ("meshmigrate", &["namespace", "-l", "a in (", "--to", "1-31-1"]),
    ("meshmigrate", &["namespace", "-l", "team=-x", "--to", "1-31-1"]),
    ("meshmigrate", &["namespace", "-l", "x>y", "--to", "1-31-1"]),
    ("meshmigrate", &["namespace", "--selector", "a,,b", "--to", "1-31-1"]),
    ("meshmigrate", &["namespace", "shop-stable", "--to", "Bad_Rev"]),
    ("meshmigrate", &["namespace", "shop-stable"]),
    ("meshmigrate", &["namespace", "shop-stable", "--to", "1-31-1", "--timeout", "forever"]),
    ("meshmigrate", &["namespace", "shop-stable", "--to", "1-31-1", "--max-concurrent", "many"]),
    ("meshmigrate", &["retire", "Bad_Rev"]),
    ("meshmigrate", &["retire", "1-30-3", "--backup", "/nonexistent-dir/x.tgz"]),
    ("meshmigrate", &["retire", "1-30-3", "--backup", "/proc/x.tgz"]),
    ("meshmigrate", &["retire", "1-30-3", "--backup", "{file}"]),
    ("meshmigrate", &["gateway", "istio-ingressgateway", "-n", "istio-ingress", "--to", "Bad_Rev"]),
    ("meshmigrate", &["status", "-o", "xml"]),
    ("meshmigrate", &["frobnicate"]),
    ("meshcheck", &["precheck", "--revision", "Bad_Rev"]),
    ("meshcheck", &["precheck", "--revision", "-canary"]),
    ("meshcheck", &["precheck", "--to-version", "banana"]),
    ("meshcheck", &["precheck", "--fail-on", "sometimes"]),
    ("meshcheck", &["verify", "--wait", "--timeout", "soon"]),
    ("meshcheck", &["version", "-o", "xml"]),
    ("meshcheck", &["frobnicate"]),
    ("meshcheck", &["manifest"]),
    ("revtag", &["remove", "prod-canary", "--backup", "/nonexistent-dir/x.tgz"]),
    ("revtag", &["remove", "prod-canary", "--backup", "{file}"]),
    ("meshbackup", &["create", "/nonexistent-dir/x.tgz"]),
    ("meshbackup", &["create", "/proc/x.tgz"]),
    ("meshbackup", &["create", "{file}"]),
    ("meshbackup", &["create", "{dir}"]),
    ("meshbackup", &["inspect"]),
    ("meshbackup", &["diff"]),
    ("meshbackup", &["frobnicate"]),
    ("meshbackup", &["create", "--request-timeout", "-5s"]),
];

#[test]
fn malformed_input_gets_one_line_a_hint_and_exit_2_without_a_request() {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, true).unwrap();
    let kubeconfig = plane.user_kubeconfig(USER, &["system:masters"]).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("exists.tgz");
    std::fs::write(&file, "keep me").unwrap();
    let before = common::versions(&plane);
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    let mut failures = Vec::new();
    for (plugin, args) in CASES {
        let binary = common::built_binary(&format!("kubectl-{plugin}"));
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("{file}", &file.display().to_string()).replace("{dir}", &scratch.path().display().to_string())
            })
            .collect();
        let (code, out, err) = run(meshtest::plugin(binary.to_str().unwrap(), &kubeconfig).args(&args));
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let shape = lines.len() == 2
            && lines[0].starts_with(&format!("kubectl-{plugin}: error: "))
            && lines[1].starts_with(&format!("kubectl-{plugin}: hint: "));
        if code != 2 || !shape || !out.is_empty() {
            failures.push(format!(
                "kubectl {plugin} {}: exit {code}\n  stdout: {out:?}\n  stderr: {err:?}",
                args.join(" ")
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), CASES.len(), failures.join("\n"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    let changed = common::changed(&before, &common::versions(&plane));
    assert!(changed.is_empty(), "the cluster changed: {changed:?}");
    // The audit backend writes asynchronously.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let audit = std::fs::read_to_string(plane.dir.join("logs/audit.log")).unwrap();
    let sent: Vec<&str> = audit.lines().filter(|l| l.contains(&format!("\"username\":\"{USER}\""))).collect();
    assert!(sent.is_empty(), "{} request(s) were sent, e.g. {}", sent.len(), sent[0]);
}
