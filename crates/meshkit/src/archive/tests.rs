use std::io::Write;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::json;

use super::read::read_entry;
use super::write::append;
use super::*;

fn header() -> Header {
    Header {
        created: "2026-11-23T10:00:00Z".into(),
        tool: "test".into(),
        cluster: ClusterInfo {
            context: "c".into(),
            server: "https://127.0.0.1:1".into(),
            kubernetes_version: "v1".into(),
        },
        istio_namespace: "istio-system".into(),
        revisions: vec![RevisionInfo { name: "1-30-3".into(), version: Some("1.30.3".into()) }],
        includes_secrets: true,
    }
}

fn virtual_service(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": ns, "labels": {"istio.io/rev": "1-30-3"}},
        "spec": {"hosts": ["reviews"], "tricky": ["1e3", "0x1F", "true", "null", "1-30-3", "", "a: b", "- x", 7, 1.5]},
    })
}

fn archive_of(objects: &[(Value, &str)]) -> (Vec<u8>, Manifest) {
    let mut writer = Writer::new(Vec::new()).unwrap();
    for (object, resource) in objects {
        writer.add(object, resource).unwrap();
    }
    writer.finish(header()).unwrap()
}

fn sample() -> (Vec<u8>, Manifest) {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cacerts", "namespace": "istio-system"}, "data": {"ca-key.pem": "a2V5"}});
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "virtualservices.networking.istio.io"}, "spec": {"group": "networking.istio.io"}});
    archive_of(&[
        (crd, "customresourcedefinitions"),
        (virtual_service("shop", "reviews"), "virtualservices"),
        (secret, "secrets"),
    ])
}

/// Rebuilds a tar.gz from `(path, bytes)` pairs, for archives no writer would produce.
fn raw_archive(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    for (path, bytes) in files {
        append(&mut tar, path, bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Every file of an archive, in order.
fn files_of(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut tar = tar::Archive::new(GzDecoder::new(bytes));
    tar.entries().unwrap().map(|e| read_entry(e).unwrap()).collect()
}

fn verify(bytes: &[u8]) -> Result<Manifest> {
    Reader::new(bytes).verify()
}

#[test]
fn round_trip_keeps_every_object_exactly() {
    let (bytes, written) = sample();
    let manifest = verify(&bytes).unwrap();
    assert_eq!(manifest, written);
    assert_eq!(manifest.format_version, FORMAT_VERSION);
    let paths: Vec<&str> = manifest.objects.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "objects/apiextensions.k8s.io/CustomResourceDefinition/_cluster/virtualservices.networking.istio.io.yaml",
            "objects/networking.istio.io/VirtualService/shop/reviews.yaml",
            "objects/core/Secret/istio-system/cacerts.yaml",
        ]
    );
    let vs = &manifest.objects[1];
    assert_eq!((vs.group(), vs.version(), vs.resource.as_str()), ("networking.istio.io", "v1", "virtualservices"));
    assert_eq!(vs.revision.as_deref(), Some("1-30-3"));
    assert!(manifest.objects[2].ca_secret && !vs.ca_secret);

    let mut reader = Reader::new(bytes.as_slice());
    let objects: Vec<(Entry, Value)> = reader
        .objects(&manifest, |e| e.kind == "VirtualService")
        .unwrap()
        .map(|r| r.map(|(e, v)| (e.clone(), v)))
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].1, virtual_service("shop", "reviews"), "strings that look like numbers stay strings");
}

#[test]
fn the_format_marker_comes_first_and_the_manifest_last() {
    let files = files_of(&sample().0);
    assert_eq!(files[0].0, MARKER_PATH);
    assert_eq!(String::from_utf8_lossy(&files[0].1), "kubectl-meshbackup archive\nformat: 1\n");
    assert_eq!(files.last().unwrap().0, MANIFEST_PATH);
}

#[test]
fn a_changed_object_fails_its_checksum() {
    let mut files = files_of(&sample().0);
    files[2].1 = String::from_utf8(files[2].1.clone()).unwrap().replace("reviews", "ratings").into_bytes();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let err = verify(&raw_archive(&files)).unwrap_err();
    assert!(matches!(err, ArchiveError::Checksum { ref path, .. } if path.ends_with("shop/reviews.yaml")), "{err}");
}

#[test]
fn missing_extra_and_swapped_objects_are_refused() {
    let files = files_of(&sample().0);
    let as_refs = |files: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> { files.to_vec() };
    let build = |files: Vec<(String, Vec<u8>)>| {
        let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
        verify(&raw_archive(&refs)).unwrap_err().to_string()
    };
    let mut missing = as_refs(&files);
    missing.remove(2);
    assert!(build(missing).contains("is in the manifest only"));
    let mut extra = as_refs(&files);
    extra.insert(1, ("objects/core/ConfigMap/x/y.yaml".into(), b"kind: ConfigMap\n".to_vec()));
    assert!(build(extra).contains("objects/core/ConfigMap/x/y.yaml is not in the manifest"));
    // Same bytes under another object's path: the checksum is the other's, so it must fail too.
    let mut swapped = as_refs(&files);
    let (a, b) = (swapped[1].1.clone(), swapped[2].1.clone());
    swapped[1].1 = b;
    swapped[2].1 = a;
    assert!(build(swapped).contains("checksum mismatch"));
}

#[test]
fn truncated_archives_are_corrupt() {
    let (bytes, _) = sample();
    for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 30] {
        let err = verify(&bytes[..cut]).unwrap_err();
        assert!(matches!(err, ArchiveError::Corrupt { .. }), "cut at {cut}: {err}");
    }
    // A complete gzip stream whose tar stops before the manifest.
    let files = files_of(&bytes);
    let refs: Vec<(&str, Vec<u8>)> = files[..files.len() - 1].iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    assert_eq!(
        verify(&raw_archive(&refs)).unwrap_err().to_string(),
        "the archive is corrupt or truncated: it ends before the manifest"
    );
}

#[test]
fn foreign_files_are_named_as_such() {
    let not_gzip = verify(b"apiVersion: v1\nkind: List\n").unwrap_err();
    assert!(matches!(not_gzip, ArchiveError::Foreign { .. }), "{not_gzip}");
    let other_tar = verify(&raw_archive(&[("etc/passwd", b"root".to_vec())])).unwrap_err();
    assert_eq!(
        other_tar.to_string(),
        "not a kubectl-meshbackup archive: it starts with \"etc/passwd\", not meshbackup/FORMAT"
    );
    let empty = verify(&raw_archive(&[])).unwrap_err();
    assert_eq!(empty.to_string(), "not a kubectl-meshbackup archive: it is empty");
    assert_eq!(crate::Error::from(empty).exit() as u8, 8);
}

#[test]
fn a_newer_format_is_refused_before_anything_else() {
    let newer = raw_archive(&[(MARKER_PATH, marker_text(FORMAT_VERSION + 1).into_bytes()), ("garbage", vec![0; 10])]);
    let err = verify(&newer).unwrap_err();
    assert!(matches!(err, ArchiveError::NewerFormat { found: 2 }), "{err}");
    assert_eq!(err.to_string(), "the archive has format version 2; this kubectl-meshbackup reads versions up to 1");
    let err = crate::Error::from(err);
    assert_eq!((err.exit() as u8, err.hint().unwrap().contains("newer kubectl-meshbackup")), (8, true));
}

#[test]
fn the_writer_refuses_nameless_and_duplicate_objects() {
    let mut writer = Writer::new(Vec::new()).unwrap();
    assert!(writer.add(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}), "configmaps").is_err());
    writer.add(&virtual_service("a", "b"), "virtualservices").unwrap();
    let err = writer.add(&virtual_service("a", "b"), "virtualservices").unwrap_err();
    assert_eq!(err.to_string(), "cannot store virtualservice.networking.istio.io/a/b: it is already in the archive");
    assert_eq!(writer.len(), 1);
}

#[test]
fn strip_removes_what_the_server_owns_and_keeps_what_users_wrote() {
    let mut object = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": "istiod", "namespace": "istio-system", "uid": "u", "resourceVersion": "7", "generation": 2,
            "creationTimestamp": "t", "managedFields": [{}], "ownerReferences": [{}], "selfLink": "/x",
            "finalizers": ["keep/me"], "labels": {"app": "istiod"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "mesh"},
        },
        "spec": {"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ports": [{"port": 15012}]},
        "status": {"loadBalancer": {}},
    });
    strip(&mut object);
    assert_eq!(
        object,
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "istiod", "namespace": "istio-system", "finalizers": ["keep/me"],
                         "labels": {"app": "istiod"}, "annotations": {"team": "mesh"}},
            "spec": {"ports": [{"port": 15012}]},
        })
    );
    let mut headless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h", "annotations": {"deployment.kubernetes.io/revision": "3"}}, "spec": {"clusterIP": "None"}});
    strip(&mut headless);
    assert_eq!(
        headless,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h"}, "spec": {"clusterIP": "None"}})
    );
    let mut not_a_service =
        json!({"apiVersion": "networking.istio.io/v1", "kind": "Service", "spec": {"clusterIP": "x"}});
    strip(&mut not_a_service);
    assert_eq!(not_a_service["spec"]["clusterIP"], "x", "only core Services have allocated IPs");
}

#[test]
fn pending_files_are_private_never_clobber_and_vanish_on_failure() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backup.tar.gz");
    let mut file = PendingFile::create(&dest, false).unwrap();
    file.write_all(b"one").unwrap();
    assert!(!dest.exists(), "nothing at the destination before persist");
    file.persist().unwrap();
    assert_eq!(std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(matches!(PendingFile::create(&dest, false), Err(ArchiveError::Exists { .. })));
    let mut again = PendingFile::create(&dest, true).unwrap();
    again.write_all(b"two").unwrap();
    again.persist().unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"two");
    drop(PendingFile::create(&dir.path().join("other"), false).unwrap());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("backup.tar.gz")], "an abandoned file leaves nothing behind");
    assert!(matches!(PendingFile::create(dir.path(), true), Err(ArchiveError::Directory { .. })));
}

#[test]
fn open_tells_missing_files_from_directories() {
    let dir = tempfile::tempdir().unwrap();
    let missing = open(&dir.path().join("nope")).err().unwrap();
    assert!(missing.to_string().starts_with("cannot read "), "{missing}");
    assert_eq!(crate::Error::from(missing).exit() as u8, 2);
    let directory = open(dir.path()).err().unwrap();
    assert!(directory.to_string().ends_with("is a directory, not a backup archive"));
}

#[test]
fn keys_print_as_people_search_for_them() {
    let key = |group: &str, namespace: &str| ObjectKey {
        group: group.into(),
        kind: "Gateway".into(),
        namespace: namespace.into(),
        name: "g".into(),
    };
    assert_eq!(key("networking.istio.io", "ns").to_string(), "gateway.networking.istio.io/ns/g");
    assert_eq!(key("", "").to_string(), "gateway/g");
}

#[test]
fn fingerprints_ignore_key_order_but_not_content() {
    let a: Value = serde_json::from_str(r#"{"b": [1, {"y": "2", "x": null}], "a": "s"}"#).unwrap();
    let b: Value = serde_json::from_str(r#"{"a": "s", "b": [1, {"x": null, "y": "2"}]}"#).unwrap();
    assert_eq!(fingerprint(&a), fingerprint(&b));
    let c: Value = serde_json::from_str(r#"{"a": "s", "b": [1, {"x": null, "y": 2}]}"#).unwrap();
    assert_ne!(fingerprint(&a), fingerprint(&c), "a number is not the string of it");
    let d: Value = serde_json::from_str(r#"{"a": "s", "b": [{"x": null, "y": "2"}, 1]}"#).unwrap();
    assert_ne!(fingerprint(&a), fingerprint(&d), "list order matters");
}
