//! Writing what a command is about to delete or change to a backup archive in meshbackup's
//! format first (`kubectl meshbackup inspect` verifies it, `restore` puts it back), so that what
//! a user had is recorded before it changes. Written to a temporary file and renamed; never over
//! an existing file.

use std::path::Path;

use serde_json::Value;

use crate::archive::{Header, PendingFile, Writer};
use crate::cluster::Cluster;
use crate::istio::Mesh;
use crate::{Error, Result};

/// Writes `objects` (each with its API resource name, `services`, `secrets` …) to `path`;
/// returns how many were written. `tool` names the command in the header.
pub async fn write(
    cluster: &Cluster,
    mesh: &Mesh,
    tool: &str,
    path: &Path,
    objects: &[(Value, &str)],
) -> Result<usize> {
    let version = cluster.call("get the server version", cluster.client().apiserver_version()).await?;
    let pending = PendingFile::create(path, false)?;
    let mut writer = Writer::new(pending).map_err(Error::Output)?;
    let mut secrets = false;
    for (object, resource) in objects {
        let mut value = object.clone();
        crate::archive::strip(&mut value);
        writer.add(&value, resource)?;
        secrets |= *resource == "secrets";
    }
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let header = Header::describe(cluster, version.git_version, mesh, tool.to_string(), &now, secrets);
    let (file, manifest) = writer.finish(header).map_err(Error::Output)?;
    file.persist()?;
    Ok(manifest.objects.len())
}
