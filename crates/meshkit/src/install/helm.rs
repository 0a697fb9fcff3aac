//! Helm's release records, read and written the way Helm 3 and 4 store them: a Secret
//! `sh.helm.release.v1.<release>.v<N>` of type `helm.sh/release.v1`, labelled
//! `owner=helm,name=<release>,status=…,version=<N>`, whose `release` key holds
//! base64(gzip(JSON)). The JSON is kept whole, so fields this build does not know survive a rewrite.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::Value;

pub const RELEASE_SECRET_TYPE: &str = "helm.sh/release.v1";
pub const RELEASE_KEY: &str = "release";
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
/// `helm uninstall` keeps this many bytes of a record at most in memory; a record larger than
/// this is not a Helm release (Secrets are limited to 1 MiB, compressed).
const MAX_RELEASE_JSON: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelmError {
    /// The record does not decode; the reason never quotes the payload (it holds the values).
    #[error("Helm release record {secret} cannot be read: {reason}")]
    Unreadable { secret: String, reason: &'static str },
}

pub fn secret_name(release: &str, version: u64) -> String {
    format!("sh.helm.release.v1.{release}.v{version}")
}

/// The label selector of every record of one release.
pub fn release_selector(release: &str) -> String {
    format!("owner=helm,name={release}")
}

/// One decoded release record.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    raw: Value,
}

impl Release {
    /// Decodes the `release` key of a record Secret (the bytes after Kubernetes' own base64).
    pub fn decode(secret: &str, data: &[u8]) -> Result<Release, HelmError> {
        let unreadable = |reason| HelmError::Unreadable { secret: secret.to_string(), reason };
        let bytes = BASE64.decode(data.trim_ascii()).map_err(|_| unreadable("not base64"))?;
        let json = if bytes.starts_with(&GZIP_MAGIC) {
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(bytes.as_slice())
                .take(MAX_RELEASE_JSON)
                .read_to_end(&mut json)
                .map_err(|_| unreadable("not gzip"))?;
            json
        } else {
            bytes // records written before Helm compressed them
        };
        let raw: Value = serde_json::from_slice(&json).map_err(|_| unreadable("not a release (JSON)"))?;
        if !raw.is_object() || raw.get("name").and_then(Value::as_str).is_none() {
            return Err(unreadable("not a release (no name)"));
        }
        Ok(Release { raw })
    }

    /// The `release` key's bytes, as Helm writes them.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(&self.raw).unwrap_or_default();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let _ = gzip.write_all(&json);
        BASE64.encode(gzip.finish().unwrap_or_default()).into_bytes()
    }

    fn text(&self, pointer: &str) -> &str {
        self.raw.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.text("/name")
    }
    pub fn namespace(&self) -> &str {
        self.text("/namespace")
    }
    pub fn version(&self) -> u64 {
        self.raw.get("version").and_then(Value::as_u64).unwrap_or_default()
    }
    /// `deployed`, `superseded`, `failed`, `pending-upgrade`, …
    pub fn status(&self) -> &str {
        self.text("/info/status")
    }
    pub fn description(&self) -> &str {
        self.text("/info/description")
    }
    pub fn chart(&self) -> &str {
        self.text("/chart/metadata/name")
    }
    pub fn chart_version(&self) -> &str {
        self.text("/chart/metadata/version")
    }
    /// The values the user gave (`helm get values`), not the chart's defaults.
    pub fn values(&self) -> &Value {
        self.raw.get("config").unwrap_or(&Value::Null)
    }
    pub fn manifest(&self) -> &str {
        self.text("/manifest")
    }
    /// Hooks run on uninstall (`helm.sh/hook: pre-delete` …): only Helm runs them.
    pub fn has_hooks(&self) -> bool {
        self.raw.get("hooks").and_then(Value::as_array).is_some_and(|h| !h.is_empty())
    }

    /// The labels of this record's Secret.
    pub fn secret_labels(&self) -> BTreeMap<String, String> {
        [
            ("name", self.name().to_string()),
            ("owner", "helm".to_string()),
            ("status", self.status().to_string()),
            ("version", self.version().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The strings a user gave for a list value (`revisionTags`).
    pub fn list_value(&self, key: &str) -> Vec<String> {
        let items = self.values().get(key).and_then(Value::as_array);
        items.into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
    }

    /// Whether this record still renders any of `objects`, or lists any of `tags` in its
    /// `revisionTags`: whether handing them over has anything left to do.
    pub fn claims(&self, objects: &[ObjectKey], tags: &[&str]) -> bool {
        documents(self.manifest()).iter().any(|d| objects.iter().any(|o| d.is(o)))
            || self.list_value("revisionTags").iter().any(|t| tags.contains(&t.as_str()))
    }

    /// The next record of this release: the same chart and values, without `objects` in its
    /// manifest and without `tags` in its `revisionTags`, as `helm upgrade` would write it had
    /// the chart stopped rendering them. `helm uninstall` then leaves those objects alone, and
    /// the previous record stays in the history (`helm history`, `helm rollback`).
    pub fn without(&self, objects: &[ObjectKey], tags: &[&str], description: &str, now: &str) -> Release {
        let mut next = self.clone();
        let kept: Vec<&str> = documents(self.manifest())
            .into_iter()
            .filter(|d| !objects.iter().any(|o| d.is(o)))
            .map(|d| d.text)
            .collect();
        let manifest: String = kept.iter().map(|text| format!("---\n{}\n", text.trim_end_matches('\n'))).collect();
        let raw = &mut next.raw;
        raw["manifest"] = Value::String(manifest);
        raw["version"] = Value::from(self.version() + 1);
        raw["info"]["status"] = Value::from("deployed");
        raw["info"]["description"] = Value::from(description);
        raw["info"]["last_deployed"] = Value::from(now);
        if let Some(list) = raw.get_mut("config").and_then(|c| c.get_mut("revisionTags")).and_then(Value::as_array_mut)
        {
            list.retain(|t| !t.as_str().is_some_and(|t| tags.contains(&t)));
        }
        next
    }

    /// This record, marked as replaced by a newer one.
    pub fn superseded(&self) -> Release {
        let mut old = self.clone();
        old.raw["info"]["status"] = Value::from("superseded");
        old
    }
}

/// An object as a manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: String,
    pub name: String,
    /// `None` for cluster-scoped objects, or when the manifest leaves it to the release namespace.
    pub namespace: Option<String>,
}

impl ObjectKey {
    pub fn new(kind: &str, name: &str, namespace: Option<&str>) -> ObjectKey {
        ObjectKey { kind: kind.into(), name: name.into(), namespace: namespace.map(str::to_string) }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind.to_lowercase(), self.name)
    }
}

/// One document of a release manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document<'a> {
    pub key: ObjectKey,
    /// `helm.sh/resource-policy: keep`: `helm uninstall` leaves it.
    pub keep: bool,
    pub text: &'a str,
}

impl Document<'_> {
    fn is(&self, object: &ObjectKey) -> bool {
        let same_namespace = match (&self.key.namespace, &object.namespace) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.key.kind == object.kind && self.key.name == object.name && same_namespace
    }
}

#[derive(Deserialize, Default)]
struct Head {
    kind: Option<String>,
    #[serde(default)]
    metadata: HeadMeta,
}

#[derive(Deserialize, Default)]
struct HeadMeta {
    name: Option<String>,
    namespace: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

/// The objects of a manifest, split as Helm splits it (on `---` lines); comments-only and
/// unparsable documents are skipped, as Helm skips them on uninstall.
pub fn documents(manifest: &str) -> Vec<Document<'_>> {
    let mut texts = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in manifest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            texts.push(&manifest[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    texts.push(&manifest[start..]);
    texts
        .into_iter()
        .filter_map(|text| {
            let head: Head = serde_saphyr::from_str(text).ok()?;
            let key = ObjectKey { kind: head.kind?, name: head.metadata.name?, namespace: head.metadata.namespace };
            let policy = head.metadata.annotations.as_ref().and_then(|a| a.get(super::owner::HELM_RESOURCE_POLICY));
            let keep = policy.is_some_and(|p| p.trim().eq_ignore_ascii_case(super::owner::HELM_KEEP));
            Some(Document { key, keep, text })
        })
        .collect()
}

#[cfg(test)]
#[path = "helm_tests.rs"]
mod tests;
