use std::io::Write;

use serde_json::Value;

use crate::common::{Mesh, path};

/// Objects changed since the backup: the diff shows how, a restore reports the conflict and
/// leaves them alone, a server dry run with --force-conflicts shows what would change, and
/// --force-conflicts takes them over.
#[test]
fn conflicts_are_reported_and_force_conflicts_takes_over() {
    let mesh = Mesh::start();
    let archive = mesh.file("backup.tar.gz");
    mesh.ok(&["create", path(&archive)]);
    let edited = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: shop-canary}\n\
                  spec:\n  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews, subset: v3}}]}]\n";
    let mut apply = mesh.plane.kubectl();
    apply.args(["apply", "--server-side", "--field-manager=someone-else", "--force-conflicts", "-f", "-"]);
    let mut child = apply.stdin(std::process::Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(edited.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    let subset = || {
        mesh.plane.get_json(&["virtualservice", "-n", "shop-canary", "reviews"]).unwrap()["spec"]["http"][0]["route"][0]
            ["destination"]["subset"]
            .clone()
    };

    let (code, out, err) = mesh.run(&["diff", path(&archive)]);
    assert_eq!(code, 1, "{err}");
    assert!(out.starts_with("changed virtualservice.networking.istio.io/shop-canary/reviews\n--- archive/"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with('-') && l.trim_start_matches('-').trim() == "subset: v2"), "{out}");
    assert!(lines.iter().any(|l| l.starts_with('+') && l.trim_start_matches('+').trim() == "subset: v3"), "{out}");

    let only = ["--only", "virtualservices", "-n", "shop-canary", "-o", "json"];
    let restore = |extra: &[&str]| {
        let (code, out, err) = mesh.run(&[&["restore", path(&archive)][..], extra, &only].concat());
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
        assert_eq!(rows.len(), 1, "{rows:#?}");
        (code, rows[0].clone(), err)
    };
    let (code, row, err) = restore(&["--yes"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        (row["object"].as_str(), row["result"].as_str()),
        (Some("virtualservice.networking.istio.io/shop-canary/reviews"), Some("failed"))
    );
    assert_eq!(row["conflict"], true);
    assert!(row["message"].as_str().unwrap().contains("someone-else"), "the conflict names the other manager: {row}");
    assert!(err.contains("--force-conflicts"), "{err}");
    assert_eq!(subset(), "v3", "left alone");

    let (code, row, err) = restore(&["--dry-run=server", "--force-conflicts"]);
    assert_eq!((code, row["result"].as_str()), (0, Some("updated")), "{err}");
    assert_eq!(subset(), "v3", "a dry run persists nothing");

    let (code, row, err) = restore(&["--yes", "--force-conflicts"]);
    assert_eq!((code, row["result"].as_str()), (0, Some("updated")), "{err}");
    assert_eq!(subset(), "v2");
    let (code, row, _) = restore(&["--yes"]);
    assert_eq!((code, row["result"].as_str()), (0, Some("unchanged")), "meshbackup owns it now");
    let (code, _, err) = mesh.run(&["diff", path(&archive)]);
    assert_eq!(code, 0, "{err}");
}
