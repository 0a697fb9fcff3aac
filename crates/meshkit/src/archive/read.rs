//! Reading an archive, verifying as it goes: the marker first, every object against the manifest.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;
use serde_json::Value;

use super::*;

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

pub(super) fn read_entry<R: Read>(item: io::Result<tar::Entry<'_, R>>) -> Result<(String, Vec<u8>)> {
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
