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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::istio::keys;

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

/// Writes an archive in one pass: objects as they come, the manifest at the end.
pub struct Writer<W: Write> {
    tar: tar::Builder<GzEncoder<W>>,
    objects: Vec<Entry>,
    paths: HashSet<String>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> io::Result<Writer<W>> {
        let mut tar = tar::Builder::new(GzEncoder::new(out, Compression::default()));
        append(&mut tar, MARKER_PATH, marker_text(FORMAT_VERSION).as_bytes())?;
        Ok(Writer { tar, objects: Vec::new(), paths: HashSet::new() })
    }

    /// Adds one object (already [`strip`]ped), read through `resource` (its plural name).
    pub fn add(&mut self, object: &Value, resource: &str) -> Result<&Entry, ArchiveError> {
        let key = ObjectKey::of(object);
        if key.kind.is_empty() || key.name.is_empty() || object["apiVersion"].as_str().is_none() {
            return Err(ArchiveError::Object { object: key.to_string(), reason: "no apiVersion, kind or name".into() });
        }
        let path = object_path(&key);
        if !self.paths.insert(path.clone()) {
            return Err(ArchiveError::Object {
                object: key.to_string(),
                reason: "it is already in the archive".into(),
            });
        }
        let yaml = serde_saphyr::to_string(object)
            .map_err(|e| ArchiveError::Object { object: key.to_string(), reason: e.to_string() })?;
        append(&mut self.tar, &path, yaml.as_bytes())
            .map_err(|source| ArchiveError::Write { path: PathBuf::from("the archive"), source })?;
        let labels = &object["metadata"]["labels"];
        self.objects.push(Entry {
            path,
            api_version: object["apiVersion"].as_str().unwrap_or_default().to_string(),
            resource: resource.to_string(),
            revision: labels[keys::REV].as_str().map(str::to_string),
            ca_secret: key.group.is_empty() && key.kind == "Secret" && keys::CA_SECRETS.contains(&key.name.as_str()),
            kind: key.kind,
            namespace: (!key.namespace.is_empty()).then_some(key.namespace),
            name: key.name,
            sha256: sha256_hex(yaml.as_bytes()),
        });
        Ok(self.objects.last().expect("just pushed"))
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Writes the manifest and closes the stream; returns the output and the manifest.
    pub fn finish(mut self, header: Header) -> io::Result<(W, Manifest)> {
        let manifest = Manifest { format_version: FORMAT_VERSION, header, objects: std::mem::take(&mut self.objects) };
        let json = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
        append(&mut self.tar, MANIFEST_PATH, &json)?;
        let out = self.tar.into_inner()?.finish()?;
        Ok((out, manifest))
    }
}

fn append<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, data)
}

/// The file an archive is written to: a temporary file beside the destination (mode 0600), renamed
/// over it only once complete, so that a failed or interrupted backup leaves no half archive, and
/// an existing file is replaced only when `force` says so.
pub struct PendingFile {
    temp: BufWriter<tempfile::NamedTempFile>,
    dest: PathBuf,
    force: bool,
}

impl PendingFile {
    pub fn create(dest: &Path, force: bool) -> Result<PendingFile> {
        if dest.is_dir() {
            return Err(ArchiveError::Directory { path: dest.to_path_buf() });
        }
        if !force && dest.exists() {
            return Err(ArchiveError::Exists { path: dest.to_path_buf() });
        }
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let temp = tempfile::Builder::new()
            .prefix(".meshbackup-")
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(|source| ArchiveError::Write { path: dest.to_path_buf(), source })?;
        Ok(PendingFile { temp: BufWriter::new(temp), dest: dest.to_path_buf(), force })
    }

    /// Flushes to disk and renames into place.
    pub fn persist(self) -> Result<()> {
        let dest = self.dest;
        let write_error = |source: io::Error| ArchiveError::Write { path: dest.clone(), source };
        let temp = self.temp.into_inner().map_err(|e| write_error(e.into_error()))?;
        temp.as_file().sync_all().map_err(write_error)?;
        if self.force {
            temp.persist(&dest).map_err(|e| write_error(e.error))?;
        } else {
            temp.persist_noclobber(&dest).map_err(|e| match e.error.kind() {
                io::ErrorKind::AlreadyExists => ArchiveError::Exists { path: dest.clone() },
                _ => write_error(e.error),
            })?;
        }
        Ok(())
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// Opens an archive file, telling a missing or unreadable path and a directory apart.
pub fn open(path: &Path) -> Result<Reader<BufReader<File>>> {
    if path.is_dir() {
        return Err(ArchiveError::Directory { path: path.to_path_buf() });
    }
    let file = File::open(path).map_err(|source| ArchiveError::Open { path: path.to_path_buf(), source })?;
    Ok(Reader::new(BufReader::new(file)))
}

/// Reads and verifies the whole archive at `path`: its manifest, once every checksum matched.
pub fn verify_file(path: &Path) -> Result<Manifest> {
    open(path)?.verify()
}

/// One pass over an archive.
pub struct Reader<R: Read> {
    tar: tar::Archive<GzDecoder<R>>,
}

impl<R: Read> Reader<R> {
    pub fn new(input: R) -> Reader<R> {
        Reader { tar: tar::Archive::new(GzDecoder::new(input)) }
    }

    /// Reads everything: the format marker first, every object hashed, parsed and matched to its
    /// manifest entry, no entry missing and nothing extra. Returns the manifest.
    pub fn verify(mut self) -> Result<Manifest> {
        let mut hashes: BTreeMap<String, (String, ObjectKey)> = BTreeMap::new();
        let mut manifest: Option<Manifest> = None;
        let mut entries = self.tar.entries().map_err(corrupt)?;
        check_marker(entries.next())?;
        for item in entries {
            let (path, bytes) = read_entry(item)?;
            if manifest.is_some() {
                return Err(corrupt(format!("{path} follows the manifest")));
            }
            if path == MANIFEST_PATH {
                manifest = Some(parse_manifest(&bytes)?);
                continue;
            }
            let object = parse_object(&path, &bytes)?;
            hashes.insert(path, (sha256_hex(&bytes), ObjectKey::of(&object)));
        }
        let manifest = manifest.ok_or_else(|| corrupt("it ends before the manifest"))?;
        for entry in &manifest.objects {
            let (actual, key) =
                hashes.remove(&entry.path).ok_or_else(|| corrupt(format!("{} is in the manifest only", entry.path)))?;
            if actual != entry.sha256 {
                return Err(ArchiveError::Checksum {
                    path: entry.path.clone(),
                    expected: entry.sha256.clone(),
                    actual,
                });
            }
            if key != entry.key() {
                return Err(corrupt(format!("{} holds {key}, the manifest says {}", entry.path, entry.key())));
            }
        }
        if let Some(extra) = hashes.keys().next() {
            return Err(corrupt(format!("{extra} is not in the manifest")));
        }
        Ok(manifest)
    }

    /// The objects `select` picks, in archive order, each checked against `manifest` (from an
    /// earlier [`Reader::verify`] of the same file) before it is handed out: a file changed in
    /// between yields an error, never an unverified object.
    pub fn objects<'a>(
        &'a mut self,
        manifest: &'a Manifest,
        select: impl Fn(&Entry) -> bool + 'a,
    ) -> Result<impl Iterator<Item = Result<(&'a Entry, Value)>> + 'a> {
        let by_path: HashMap<&str, &Entry> = manifest.objects.iter().map(|e| (e.path.as_str(), e)).collect();
        let mut entries = self.tar.entries().map_err(corrupt)?;
        check_marker(entries.next())?;
        Ok(entries.filter_map(move |item| {
            let (path, bytes) = match read_entry(item) {
                Ok(read) => read,
                Err(e) => return Some(Err(e)),
            };
            if path == MANIFEST_PATH {
                return None;
            }
            let Some(entry) = by_path.get(path.as_str()).copied() else {
                return Some(Err(corrupt(format!("{path} is not in the manifest"))));
            };
            if !select(entry) {
                return None;
            }
            let actual = sha256_hex(&bytes);
            if actual != entry.sha256 {
                return Some(Err(ArchiveError::Checksum { path, expected: entry.sha256.clone(), actual }));
            }
            Some(parse_object(&path, &bytes).map(|object| (entry, object)))
        }))
    }
}

type TarItem<'a, R> = Option<io::Result<tar::Entry<'a, GzDecoder<R>>>>;

fn check_marker<R: Read>(first: TarItem<'_, R>) -> Result<()> {
    let foreign = |reason: &str| ArchiveError::Foreign { reason: reason.to_string() };
    let item = first.ok_or_else(|| foreign("it is empty"))?;
    // A file that is not gzip at all fails on this first read.
    let (path, bytes) = read_entry(item).map_err(|e| match e {
        ArchiveError::Corrupt { reason } => foreign(&reason),
        other => other,
    })?;
    if path != MARKER_PATH {
        return Err(foreign(&format!("it starts with {path:?}, not {MARKER_PATH}")));
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(foreign("its format marker is not kubectl-meshbackup's"));
    }
    let version = lines
        .find_map(|l| l.strip_prefix("format: "))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| foreign("its format marker has no version"))?;
    if version > FORMAT_VERSION {
        return Err(ArchiveError::NewerFormat { found: version });
    }
    Ok(())
}

fn read_entry<R: Read>(item: io::Result<tar::Entry<'_, R>>) -> Result<(String, Vec<u8>)> {
    let mut entry = item.map_err(corrupt)?;
    let path = entry.path().map_err(corrupt)?.to_string_lossy().into_owned();
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut bytes).map_err(|e| corrupt(format!("{path}: {e}")))?;
    Ok((path, bytes))
}

fn parse_manifest(bytes: &[u8]) -> Result<Manifest> {
    let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| corrupt(format!("unreadable manifest: {e}")))?;
    if manifest.format_version > FORMAT_VERSION {
        return Err(ArchiveError::NewerFormat { found: manifest.format_version });
    }
    Ok(manifest)
}

fn parse_object(path: &str, bytes: &[u8]) -> Result<Value> {
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt(format!("{path} is not UTF-8")))?;
    let object: Value = serde_saphyr::from_str(text).map_err(|e| corrupt(format!("{path} is not YAML: {e}")))?;
    if !object.is_object() {
        return Err(corrupt(format!("{path} is not an object")));
    }
    Ok(object)
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
