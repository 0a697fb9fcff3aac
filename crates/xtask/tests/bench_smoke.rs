//! The benchmark at a tiny size, so that `cargo xtask bench` keeps working: every case runs, the
//! floor is derived from the audit log, istioctl answers, and both reports are written.

mod common;

use meshtest::Tools;
use xtask::benchmark::{Options, run, write};

#[test]
fn the_benchmark_runs_at_a_small_scale() {
    let binaries = common::built_binary("kubectl-revtag").parent().unwrap().to_path_buf();
    let out = tempfile::tempdir().unwrap();
    let options = Options {
        scales: vec![6, 12],
        runs: 1,
        binaries,
        istioctl: Some(Tools::ensure().unwrap().istioctl().unwrap()),
        out: out.path().to_path_buf(),
    };
    let rows = run(&options).unwrap();
    assert_eq!(rows.len(), 14, "seven commands at two sizes");
    let at = |command: &str, namespaces: usize| {
        rows.iter().find(|r| r.command == command && r.namespaces == namespaces).unwrap_or_else(|| panic!("{command}"))
    };
    let status = at("meshmigrate status -A", 12);
    assert_eq!((status.pods, status.custom_resources), (120, 24));
    assert!(status.ours.requests > 0 && status.ours.peak_mib > 0.0, "{status:?}");
    let json = status.json_floor.as_ref().expect("status lists, so it has a floor");
    let protobuf = status.protobuf_floor.as_ref().expect("and one read as protobuf");
    // The floor makes the very lists we made, page for page; protobuf carries the same pods in fewer bytes.
    assert!(json.requests > 0 && json.requests == protobuf.requests, "{json:?} {protobuf:?}");
    assert!(protobuf.bytes > 0 && protobuf.bytes < json.bytes, "{json:?} {protobuf:?}");
    assert!(status.kubectl.as_ref().is_some_and(|k| k.requests > 0), "{status:?}");
    assert!(
        at("meshcheck precheck", 6)
            .istioctl
            .as_ref()
            .is_some_and(|(name, f)| name == "istioctl x precheck" && f.requests > 0)
    );
    assert!(at("meshbackup inspect", 6).json_floor.is_none(), "reading a file lists nothing");
    // Requests grow with kinds, not namespaces.
    assert_eq!(at("revtag list", 6).ours.requests, at("revtag list", 12).ours.requests);
    write(&rows, &options).unwrap();
    let markdown = std::fs::read_to_string(out.path().join("BENCHMARKS.md")).unwrap();
    assert!(markdown.contains("| meshmigrate status -A | 12 / 120 / 24 |"), "{markdown}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("benchmarks.json")).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 14);
}
