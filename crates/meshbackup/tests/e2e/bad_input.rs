use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::{CUSTOM_RESOURCES, Mesh, path};

/// Rewrites an archive file by file, as someone who edits or forges one would.
fn rewrite(from: &Path, to: &Path, edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) {
    let mut input = Vec::new();
    std::fs::File::open(from).unwrap().read_to_end(&mut input).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(input.as_slice()));
    let mut out = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if let Some(bytes) = edit(&name, bytes) {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            out.append_data(&mut header, &name, bytes.as_slice()).unwrap();
        }
    }
    std::fs::write(to, out.into_inner().unwrap().finish().unwrap()).unwrap();
}

/// Corrupt, truncated, forged, foreign and newer archives, missing files, directories and unknown
/// kinds: a clear error, the documented exit code, and nothing applied.
#[test]
fn bad_input_is_refused_and_nothing_is_applied() {
    let mesh = Mesh::start();
    let good = mesh.file("good.tar.gz");
    mesh.ok(&["create", path(&good)]);
    // Something a restore would bring back, to prove that it did not.
    mesh.kubectl(&["delete", "virtualservice", "-n", "shop-canary", "reviews"]);
    let bytes = std::fs::read(&good).unwrap();

    let corrupt = mesh.file("corrupt.tar.gz");
    let mut flipped = bytes.clone();
    for b in &mut flipped[bytes.len() / 2..bytes.len() / 2 + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&corrupt, flipped).unwrap();
    let truncated = mesh.file("truncated.tar.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let forged = mesh.file("forged.tar.gz");
    rewrite(&good, &forged, |name, bytes| {
        Some(if name.ends_with("shop-canary/reviews.yaml") {
            String::from_utf8(bytes).unwrap().replace("subset: v2", "subset: evil").into_bytes()
        } else {
            bytes
        })
    });
    let newer = mesh.file("newer.tar.gz");
    rewrite(&good, &newer, |name, bytes| {
        Some(if name == "meshbackup/FORMAT" { b"kubectl-meshbackup archive\nformat: 2\n".to_vec() } else { bytes })
    });
    let manifest_missing = mesh.file("no-manifest.tar.gz");
    rewrite(&good, &manifest_missing, |name, bytes| (name != "meshbackup/manifest.json").then_some(bytes));
    let foreign = mesh.file("foreign.yaml");
    std::fs::File::create(&foreign).unwrap().write_all(CUSTOM_RESOURCES.as_bytes()).unwrap();
    let unreadable = mesh.file("unreadable.tar.gz");
    std::fs::write(&unreadable, &bytes).unwrap();
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
    let as_root = std::fs::File::open(&unreadable).is_ok();

    let before = mesh.versions();
    let mut cases: Vec<(Vec<String>, i32, &str)> = vec![
        (vec![path(&corrupt).into()], 8, "corrupt or truncated"),
        (vec![path(&truncated).into()], 8, "corrupt or truncated"),
        (
            vec![path(&forged).into()],
            8,
            "checksum mismatch for objects/networking.istio.io/VirtualService/shop-canary/reviews.yaml",
        ),
        (vec![path(&newer).into()], 8, "format version 2; this kubectl-meshbackup reads versions up to 1"),
        (vec![path(&manifest_missing).into()], 8, "it ends before the manifest"),
        (vec![path(&foreign).into()], 8, "not a kubectl-meshbackup archive"),
        (vec![path(&mesh.file("missing.tar.gz")).into()], 2, "cannot read"),
        (vec![path(mesh.dir.path()).into()], 2, "is a directory, not a backup archive"),
        (vec![path(&good).into(), "--only".into(), "Telemetry".into()], 2, "unknown kind \"Telemetry\" for --only"),
        (vec![path(&good).into(), "--dry-run=sometimes".into()], 2, "invalid --dry-run value"),
        (vec![path(&good).into(), "-n".into(), "nowhere".into()], 5, "nothing to restore"),
        (vec![path(&good).into()], 6, "not confirmed"),
    ];
    if !as_root {
        cases.push((vec![path(&unreadable).into()], 2, "cannot read"));
    }
    for (args, code, message) in &cases {
        let mut all = vec!["restore"];
        all.extend(args.iter().map(String::as_str));
        if *code != 6 {
            all.push("--yes");
        }
        let (got, out, err) = mesh.run(&all);
        assert_eq!(got, *code, "{all:?}: {err}");
        assert!(err.contains(message) && err.contains("hint:"), "{all:?}: {err}");
        assert!(out.is_empty(), "{all:?}: nothing reported as restored: {out}");
    }
    for (command, code) in [("inspect", 8), ("diff", 8)] {
        let (got, _, err) = mesh.run(&[command, path(&forged)]);
        assert_eq!(got, code, "{command}: {err}");
    }
    let (code, _, err) = mesh.run(&["inspect", path(&newer)]);
    assert_eq!(code, 8, "{err}");
    assert_eq!(mesh.versions(), before, "nothing was written");
    assert!(mesh.plane.get_json(&["virtualservice", "-n", "shop-canary", "reviews"]).is_none());
}
