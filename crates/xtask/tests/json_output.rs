//! `-o json` prints JSON on every command that has output (mutating ones under --dry-run), and
//! what each prints, as a table and as JSON, is pinned: `tests/snapshots/` holds it, with what
//! differs between runs (times, ages, ports, paths, checksums) replaced by placeholders. A change
//! in what a command prints fails here until the snapshot is regenerated on purpose:
//! `MESHTEST_BLESS=1 cargo test -p xtask --test json_output`.

mod common;

use std::path::Path;

use meshtest::{ControlPlane, Fixture, Options, run};

#[test]
fn every_command_with_output_prints_json() {
    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, true).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("backup.tar.gz");
    let archive = archive.to_str().unwrap();
    let table_archive = scratch.path().join("backup-table.tar.gz");
    let table_archive = table_archive.to_str().unwrap();
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
        ("meshbackup", &["create", archive]),
        ("meshbackup", &["inspect", archive]),
        ("meshbackup", &["diff", archive]),
        ("meshbackup", &["restore", archive, "--dry-run"]),
    ];
    let mut failures = Vec::new();
    let mut stale = Vec::new();
    for (plugin, args) in cases {
        let binary = common::built_binary(&format!("kubectl-{plugin}"));
        let command = || meshtest::plugin(binary.to_str().unwrap(), &plane.kubeconfig);
        let (code, out, err) = run(command().args(*args).args(["-o", "json"]));
        let parsed = serde_json::from_str::<serde_json::Value>(&out);
        if code > 1 || parsed.is_err() {
            failures.push(format!(
                "kubectl {plugin} {} -o json: exit {code}, stdout {out:?}, stderr {err:?}",
                args.join(" ")
            ));
            continue;
        }
        let name = snapshot_name(plugin, args);
        stale.extend(compare(&format!("{name}.json"), &out, scratch.path()));
        // `create` wrote its archive already; its table is pinned on a second file.
        let table_args: Vec<&str> = args.iter().map(|a| if *a == archive { table_archive } else { a }).collect();
        let (code, table, err) = run(command().args(&table_args));
        if code > 1 {
            failures.push(format!("kubectl {plugin} {}: exit {code}, stderr {err:?}", args.join(" ")));
            continue;
        }
        stale.extend(compare(&format!("{name}.txt"), &table, scratch.path()));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        stale.is_empty(),
        "output changed (if on purpose: MESHTEST_BLESS=1 cargo test -p xtask --test json_output):\n{}",
        stale.join("\n")
    );
}

/// `revtag-set-json-test-r-1-31-1-dry-run-server`: the command line, without the scratch paths.
fn snapshot_name(plugin: &str, args: &[&str]) -> String {
    let words: Vec<String> =
        args.iter()
            .map(|a| {
                if a.starts_with('/') { "FILE".to_string() } else { a.trim_start_matches('-').replace(['=', '/'], "-") }
            })
            .collect();
    format!("{plugin}-{}", words.join("-"))
}

/// What differs between two runs of the same command on the same fixture.
fn normalised(text: &str, scratch: &Path) -> String {
    let text = xtask::docs::normalise(&text.replace(scratch.to_str().unwrap(), "SCRATCH"));
    let rules = [
        (r"\b[0-9a-f]{64}\b", "SHA256"),
        // Ages: `12s`, `3m4s`, `2h`, and the JSON fields holding seconds.
        (r"\b\d+(d|h|m|s)(\d+(h|m|s))?\b", "AGE"),
        (r#""(ageSeconds|age)": ?\d+"#, r#""$1": 0"#),
        // Column padding follows the widest cell.
        (r" {2,}", "  "),
    ];
    let mut out = text;
    for (pattern, with) in rules {
        out = regex::Regex::new(pattern).unwrap().replace_all(&out, with).into_owned();
    }
    out
}

/// The difference from the committed snapshot, if any (or writes it, when blessing).
fn compare(name: &str, output: &str, scratch: &Path) -> Option<String> {
    let path = meshtest::repo_root().join("crates/xtask/tests/snapshots").join(name);
    let fresh = normalised(output, scratch);
    if std::env::var_os("MESHTEST_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &fresh).unwrap();
        return None;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    (committed != fresh).then(|| {
        let diff = similar::TextDiff::from_lines(&committed, &fresh);
        format!("{name}:\n{}", diff.unified_diff().context_radius(2))
    })
}
