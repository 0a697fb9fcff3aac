use std::io::Write;

use base64::Engine;
use serde_json::json;

use super::*;

const MANIFEST: &str = "---
# Source: istiod/templates/revision-tags-mwc.yaml
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: istio-revision-tag-prod-stable
---
# Source: istiod/templates/revision-tags-svc.yaml
apiVersion: v1
kind: Service
metadata:
  name: istiod-revision-tag-prod-stable
  namespace: istio-system
---
# Source: istiod/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: istiod-1-30-3
  namespace: istio-system
  annotations:
    helm.sh/resource-policy: Keep
---
# Source: istiod/templates/empty.yaml
# nothing rendered
";

fn release() -> Value {
    json!({
        "name": "istiod-1-30-3",
        "namespace": "istio-system",
        "version": 2,
        "info": {"status": "deployed", "description": "Upgrade complete", "notes": "…"},
        "chart": {"metadata": {"name": "istiod", "version": "1.30.3"}, "templates": [{"name": "x", "data": "e30="}]},
        "config": {"revision": "1-30-3", "revisionTags": ["default", "prod-stable"]},
        "manifest": MANIFEST,
        "hooks": [],
        "someFieldFromANewerHelm": {"kept": true}
    })
}

/// A record as Helm writes it: gzip (best compression), then base64.
fn record(value: &Value) -> Vec<u8> {
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&serde_json::to_vec(value).unwrap()).unwrap();
    BASE64.encode(gzip.finish().unwrap()).into_bytes()
}

#[test]
fn a_record_decodes_to_its_release_and_values() {
    let r = Release::decode("sh.helm.release.v1.istiod-1-30-3.v2", &record(&release())).unwrap();
    assert_eq!((r.name(), r.namespace(), r.version(), r.status()), ("istiod-1-30-3", "istio-system", 2, "deployed"));
    assert_eq!((r.chart(), r.chart_version()), ("istiod", "1.30.3"));
    assert_eq!(r.list_value("revisionTags"), ["default", "prod-stable"]);
    assert_eq!(r.secret_labels()["version"], "2");
    assert_eq!(secret_name(r.name(), r.version()), "sh.helm.release.v1.istiod-1-30-3.v2");
}

#[test]
fn uncompressed_records_from_old_helm_decode_too() {
    let plain = BASE64.encode(serde_json::to_vec(&release()).unwrap()).into_bytes();
    assert_eq!(Release::decode("s", &plain).unwrap().name(), "istiod-1-30-3");
}

#[test]
fn unreadable_records_say_why_without_quoting_them() {
    let secret_values = b"c2VjcmV0LXRva2Vu"; // base64 of a token-like string, not a release
    for (data, reason) in [
        (&b"%%% not base64 %%%"[..], "not base64"),
        (&secret_values[..], "not a release (JSON)"),
        (&BASE64.encode([0x1f, 0x8b, 0x08, 0, 1, 2]).into_bytes()[..], "not gzip"),
        (&BASE64.encode(b"{\"other\":1}").into_bytes()[..], "not a release (no name)"),
    ] {
        let error = Release::decode("sh.helm.release.v1.x.v1", data).unwrap_err();
        assert_eq!(error, HelmError::Unreadable { secret: "sh.helm.release.v1.x.v1".into(), reason });
        assert!(!error.to_string().contains("c2VjcmV0"), "{error}");
    }
}

#[test]
fn the_manifest_splits_into_objects_as_helm_splits_it() {
    let docs = documents(MANIFEST);
    let keys: Vec<String> = docs.iter().map(|d| d.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "mutatingwebhookconfiguration/istio-revision-tag-prod-stable",
            "service/istiod-revision-tag-prod-stable",
            "deployment/istiod-1-30-3"
        ]
    );
    assert_eq!(docs.iter().map(|d| d.keep).collect::<Vec<_>>(), [false, false, true]);
    assert_eq!(docs[1].key.namespace.as_deref(), Some("istio-system"));
}

#[test]
fn handing_objects_over_writes_the_next_record_without_them_and_keeps_the_rest() {
    let old = Release::decode("s", &record(&release())).unwrap();
    let objects = [
        ObjectKey::new("MutatingWebhookConfiguration", "istio-revision-tag-prod-stable", None),
        ObjectKey::new("Service", "istiod-revision-tag-prod-stable", Some("istio-system")),
    ];
    let next = old.without(&objects, &["prod-stable"], "kubectl-revtag: handed over", "2026-12-01T00:00:00Z");
    assert_eq!((next.version(), next.status(), next.description()), (3, "deployed", "kubectl-revtag: handed over"));
    let left: Vec<String> = documents(next.manifest()).iter().map(|d| d.key.to_string()).collect();
    assert_eq!(left, ["deployment/istiod-1-30-3"]);
    assert!(next.manifest().starts_with("---\n# Source: istiod/templates/deployment.yaml\n"));
    assert_eq!(next.list_value("revisionTags"), ["default"]);
    assert_eq!(next.values()["revision"], "1-30-3");
    assert_eq!(next.raw["someFieldFromANewerHelm"], json!({"kept": true}));
    assert_eq!(next.raw["chart"], old.raw["chart"]);
    // The record round-trips through Helm's encoding, and the old one is only marked replaced.
    assert_eq!(Release::decode("s", &next.encode()).unwrap(), next);
    // Once handed over, the next record claims none of it: a rerun writes no further record.
    assert!(old.claims(&objects, &["prod-stable"]) && !next.claims(&objects, &["prod-stable"]));
    assert!(!old.claims(&[], &["elsewhere"]));
    let superseded = old.superseded();
    assert_eq!((superseded.status(), superseded.manifest()), ("superseded", MANIFEST));
}

#[test]
fn an_object_in_another_namespace_is_not_the_one_in_the_manifest() {
    let old = Release::decode("s", &record(&release())).unwrap();
    let elsewhere = [ObjectKey::new("Service", "istiod-revision-tag-prod-stable", Some("other"))];
    assert_eq!(documents(old.without(&elsewhere, &[], "", "").manifest()).len(), 3);
}
