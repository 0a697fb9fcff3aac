//! The backup archive shared by `kubectl meshbackup` and `kubectl meshmigrate retire`.
//!
//! A gzip-compressed tar, written in one stream:
//!
//! 1. `meshbackup/FORMAT`: a marker naming the format and its version, first so that a foreign or
//!    newer archive is refused before anything else is read;
//! 2. `objects/<group>/<kind>/<namespace or _cluster>/<name>.yaml`: each object as YAML, stripped
//!    of what the server owns ([`strip`]);
//! 3. `meshbackup/manifest.json`: when and where the backup was taken, and one [`Entry`] per object
//!    with its sha256. It comes last because it is only complete once every object is written; an
//!    archive without it is truncated.
//!
//! Reading verifies as it goes: every object's checksum and identity against the manifest, no
//! object missing, none extra. Nothing holds more than one object at a time.

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::istio::keys;

mod read;
mod write;

pub use read::*;
pub use write::*;

/// The version this build writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
const MARKER_PATH: &str = "meshbackup/FORMAT";
const MANIFEST_PATH: &str = "meshbackup/manifest.json";
const MAGIC: &str = "kubectl-meshbackup archive";

/// Where and when a backup was taken; the manifest without its objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    /// RFC 3339, UTC.
    pub created: String,
    /// The program that wrote it, with its version.
    pub tool: String,
    pub cluster: ClusterInfo,
    pub istio_namespace: String,
    pub revisions: Vec<RevisionInfo>,
    pub includes_secrets: bool,
}

impl Header {
    /// A header for a backup of `cluster` taken `now` by `tool`, naming `mesh`'s revisions.
    pub fn describe(
        cluster: &crate::cluster::Cluster,
        kubernetes_version: String,
        mesh: &crate::istio::Mesh,
        tool: String,
        now: &str,
        includes_secrets: bool,
    ) -> Header {
        Header {
            created: now.to_string(),
            tool,
            cluster: ClusterInfo {
                context: cluster.target.context.clone(),
                server: cluster.target.server.clone(),
                kubernetes_version,
            },
            istio_namespace: cluster.istio_namespace.clone(),
            revisions: mesh
                .revisions
                .values()
                .map(|r| RevisionInfo { name: r.name.clone(), version: r.version.as_ref().map(|v| v.to_string()) })
                .collect(),
            includes_secrets,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    pub context: String,
    pub server: String,
    /// The apiserver's `gitVersion`.
    pub kubernetes_version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format_version: u32,
    #[serde(flatten)]
    pub header: Header,
    pub objects: Vec<Entry>,
}

/// One object in the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub path: String,
    pub api_version: String,
    pub kind: String,
    /// The plural resource name, so that the object can be addressed without discovery.
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub sha256: String,
    /// Its `istio.io/rev` label, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// A Secret holding the mesh's CA ([`keys::CA_SECRETS`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ca_secret: bool,
}

impl Entry {
    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(group, _)| group)
    }

    pub fn version(&self) -> &str {
        self.api_version.rsplit_once('/').map_or(self.api_version.as_str(), |(_, version)| version)
    }

    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            group: self.group().to_string(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone().unwrap_or_default(),
            name: self.name.clone(),
        }
    }
}

/// What identifies an object regardless of the version it is read at.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// The key of a Kubernetes object, read from its `apiVersion`, `kind` and metadata.
    pub fn of(object: &Value) -> ObjectKey {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        ObjectKey {
            group: api_version.rsplit_once('/').map_or("", |(group, _)| group).to_string(),
            kind: object["kind"].as_str().unwrap_or_default().to_string(),
            namespace: object["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
            name: object["metadata"]["name"].as_str().unwrap_or_default().to_string(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    /// `kind.group/namespace/name`, as people search for it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = self.kind.to_ascii_lowercase();
        match (self.group.is_empty(), self.namespace.is_empty()) {
            (true, true) => write!(f, "{kind}/{}", self.name),
            (true, false) => write!(f, "{kind}/{}/{}", self.namespace, self.name),
            (false, true) => write!(f, "{kind}.{}/{}", self.group, self.name),
            (false, false) => write!(f, "{kind}.{}/{}/{}", self.group, self.namespace, self.name),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path} is a directory, not a backup archive")]
    Directory { path: PathBuf },
    #[error("{path} already exists")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("not a kubectl-meshbackup archive: {reason}")]
    Foreign { reason: String },
    #[error("the archive is corrupt or truncated: {reason}")]
    Corrupt { reason: String },
    #[error("checksum mismatch for {path}: the manifest says {expected}, the content hashes to {actual}")]
    Checksum { path: String, expected: String, actual: String },
    #[error("the archive has format version {found}; this kubectl-meshbackup reads versions up to {FORMAT_VERSION}")]
    NewerFormat { found: u32 },
    #[error("cannot store {object}: {reason}")]
    Object { object: String, reason: String },
}

impl From<ArchiveError> for crate::Error {
    fn from(err: ArchiveError) -> Self {
        let message = err.to_string();
        match err {
            ArchiveError::Open { .. } | ArchiveError::Directory { .. } => {
                crate::Error::usage(message, "give the path of a backup archive (kubectl meshbackup create writes one)")
            }
            ArchiveError::Exists { .. } => {
                crate::Error::refused(message, "pass --force to replace it, or choose another file with -f")
            }
            ArchiveError::Write { source, .. } => crate::Error::Output(io::Error::new(source.kind(), message)),
            ArchiveError::Object { .. } => crate::Error::refused(message, ""),
            ArchiveError::NewerFormat { .. } => crate::Error::Invalid {
                message,
                hint: "use a newer kubectl-meshbackup to read it; nothing was changed".into(),
            },
            ArchiveError::Foreign { .. } | ArchiveError::Corrupt { .. } | ArchiveError::Checksum { .. } => {
                crate::Error::Invalid { message, hint: "use another copy of the backup; nothing was changed".into() }
            }
        }
    }
}

type Result<T, E = ArchiveError> = std::result::Result<T, E>;

fn corrupt(reason: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Corrupt { reason: reason.to_string() }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A sha256 of an object's content that does not depend on the order of its keys: equal for
/// objects that compare equal, whichever way they were read.
pub fn fingerprint(object: &Value) -> String {
    fn feed(hasher: &mut Sha256, value: &Value) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                hasher.update(b"{");
                for key in keys {
                    feed(hasher, &Value::String(key.clone()));
                    hasher.update(b":");
                    feed(hasher, &map[key]);
                    hasher.update(b",");
                }
                hasher.update(b"}");
            }
            Value::Array(items) => {
                hasher.update(b"[");
                for item in items {
                    feed(hasher, item);
                    hasher.update(b",");
                }
                hasher.update(b"]");
            }
            scalar => hasher.update(scalar.to_string().as_bytes()),
        }
    }
    let mut hasher = Sha256::new();
    feed(&mut hasher, object);
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes what the server writes and owns, so that the object re-applies cleanly with
/// server-side apply, in this cluster or another: identity, versions, timestamps, managed fields,
/// owner references (their uids would dangle), `status`, the last-applied annotation, and
/// addresses the cluster allocates (a Service's cluster IPs, unless headless). Name, namespace,
/// labels, annotations, finalizers and the spec stay.
pub fn strip(object: &mut Value) {
    let Some(map) = object.as_object_mut() else { return };
    map.remove("status");
    if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
            "ownerReferences",
            "generateName",
        ] {
            meta.remove(field);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
            annotations.remove("deployment.kubernetes.io/revision");
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    let is_core_service = map.get("kind").and_then(Value::as_str) == Some("Service")
        && map.get("apiVersion").and_then(Value::as_str) == Some("v1");
    if is_core_service && let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut) {
        let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
        if !headless {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    }
}

fn object_path(key: &ObjectKey) -> String {
    let group = if key.group.is_empty() { "core" } else { &key.group };
    let scope = if key.namespace.is_empty() { "_cluster" } else { &key.namespace };
    format!("objects/{group}/{}/{scope}/{}.yaml", key.kind, key.name)
}

fn marker_text(version: u32) -> String {
    format!("{MAGIC}\nformat: {version}\n")
}

#[cfg(test)]
mod tests;
