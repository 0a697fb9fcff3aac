use super::*;
use meshkit::catalogue::Catalogue;

fn revtag() -> Plugin {
    Catalogue::shipped().plugin("revtag").cloned().expect("revtag is catalogued")
}

#[test]
fn versions_krew_accepts() {
    for good in ["v0.1.0", "v1.22.333", "v1.0.0-rc.1"] {
        check_version(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in ["0.1.0", "v1.0", "v1.x.0", "v", "v1.0.0.0"] {
        assert!(check_version(bad).is_err(), "{bad}");
    }
}

#[test]
fn platforms_map_rust_targets_to_krew_selectors() {
    assert_eq!(Platform::for_triple("aarch64-apple-darwin").unwrap().os, "darwin");
    assert!(Platform::for_triple("x86_64-pc-windows-msvc").unwrap_err().to_string().contains("known:"));
    let host = Platform::host().unwrap();
    assert_eq!(
        archive_name("revtag", "v0.1.0", host),
        format!("kubectl-revtag-v0.1.0-{}-{}.tar.gz", host.os, host.arch)
    );
}

fn entries(path: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(File::open(path).unwrap()));
    tar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (e.path().unwrap().to_string_lossy().into_owned(), e.header().mode().unwrap(), data)
        })
        .collect()
}

#[test]
fn archives_hold_binary_license_readme_and_are_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("kubectl-revtag");
    fs::write(&binary, b"#!/bin/sh\necho hi\n").unwrap();
    let license = dir.path().join("LICENSE");
    fs::write(&license, "Apache-2.0").unwrap();
    let platform = PLATFORMS[0];
    let first = package(&revtag(), &binary, &[&license], "v0.1.0", platform, &dir.path().join("a"), 9).unwrap();
    let second = package(&revtag(), &binary, &[&license], "v0.1.0", platform, &dir.path().join("b"), 9).unwrap();
    assert_eq!(first, second, "same inputs, same bytes");
    assert_eq!(first.sha256.len(), 64);
    let path = dir.path().join("a").join(&first.file_name);
    assert_eq!(sha256_file(&path).unwrap(), first.sha256);
    assert_eq!(
        entries(&path),
        [
            ("kubectl-revtag".to_string(), 0o755, b"#!/bin/sh\necho hi\n".to_vec()),
            ("LICENSE".to_string(), 0o644, b"Apache-2.0".to_vec())
        ]
    );
    let sums = fs::read_to_string(dir.path().join("a").join(format!("{}.sha256", first.file_name))).unwrap();
    assert_eq!(sums, format!("{}  {}\n", first.sha256, first.file_name));
    assert_eq!(archives_in(&dir.path().join("a"), "revtag", "v0.1.0").unwrap(), [first]);
    assert!(archives_in(&dir.path().join("a"), "revtag", "v0.2.0").unwrap().is_empty());
}

#[test]
fn manifests_carry_the_catalogue_and_one_platform_per_archive() {
    let archives: Vec<Archive> = PLATFORMS[..2]
        .iter()
        .map(|&platform| Archive {
            platform,
            file_name: archive_name("revtag", "v0.1.0", platform),
            sha256: "ab".repeat(32),
        })
        .collect();
    let text = render_manifest(&revtag(), "v0.1.0", &archives, "https://example.com/dl/");
    let yaml: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(yaml["apiVersion"], "krew.googlecontainertools.github.com/v1alpha2");
    assert_eq!(yaml["metadata"]["name"], "revtag");
    assert_eq!(yaml["spec"]["version"], "v0.1.0");
    assert_eq!(yaml["spec"]["shortDescription"], revtag().short_description);
    assert_eq!(yaml["spec"]["description"], revtag().description);
    assert_eq!(yaml["spec"]["caveats"], revtag().caveats.unwrap());
    let platforms = yaml["spec"]["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2);
    assert_eq!(platforms[1]["selector"]["matchLabels"], serde_json::json!({"os": "linux", "arch": "arm64"}));
    assert_eq!(platforms[0]["uri"], "https://example.com/dl/kubectl-revtag-v0.1.0-linux-amd64.tar.gz");
    assert_eq!(platforms[0]["bin"], "kubectl-revtag");
    assert_eq!(platforms[0]["files"][1], serde_json::json!({"from": "LICENSE", "to": "."}));
}
