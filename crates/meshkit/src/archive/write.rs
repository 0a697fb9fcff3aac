//! Writing an archive in one stream: the marker, the objects, then the manifest.

use std::collections::HashSet;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;

use super::*;

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

pub(super) fn append<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> io::Result<()> {
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
