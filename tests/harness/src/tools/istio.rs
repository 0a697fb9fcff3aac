//! The two Istio builds of Tier C: `pilot-discovery` from each pinned `istio.io/istio` module,
//! and each build's charts stamped as its release ships them.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::{GoModule, Tools, build_module, cache_dir, fingerprint, istio_ldflags, module_dir};

const PILOT_DISCOVERY: &[&str] = &["istio.io/istio/pilot/cmd/pilot-discovery"];
/// Tier C's Envoy stand-in (`tests/go/istio/xdsproxy`): one xDS stream per injected pod.
const XDS_PROXY: &[&str] = &["./xdsproxy"];

/// One Istio build of Tier C: `pilot-discovery` and the charts of one `istio.io/istio` module,
/// stamped with the release version it stands for (as Kubernetes is stamped: see
/// [`kubernetes_ldflags`]). The module proxy serves Istio only as pseudo-versions of commits; each
/// pinned commit is on its release branch after the tag whose version it is stamped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IstioBuild {
    /// `1.31.1`: what the binaries report, the image tag its charts render, its charts' version.
    pub version: &'static str,
    /// The Go module under `tests/go/` that pins the commit.
    pub go_module: &'static str,
}

/// The revision users run today (release-1.30, `tests/go/istio-1.30`).
pub const OLD_ISTIO: IstioBuild = IstioBuild { version: "1.30.3", go_module: "istio-1.30" };
/// The revision being rolled out (release-1.31, `tests/go/istio`, the module istioctl comes from).
pub const NEW_ISTIO: IstioBuild = IstioBuild { version: "1.31.1", go_module: "istio" };

impl IstioBuild {
    /// `1-31-1`: the revision name users give this version.
    pub fn revision(&self) -> String {
        self.version.replace('.', "-")
    }
}

impl Tools {
    /// `pilot-discovery` (istiod) of `build`, built on first use.
    pub fn pilot_discovery(&self, build: IstioBuild) -> Result<PathBuf> {
        let mut versions = self.versions.clone();
        versions.istio = build.version.into();
        let module = GoModule { dir: build.go_module, packages: PILOT_DISCOVERY, ldflags: istio_ldflags };
        Ok(build_module(&module, &versions, &cache_dir())?.join("pilot-discovery"))
    }

    /// The xDS client that plays each injected pod's proxy, built from the newer Istio module.
    pub fn xds_proxy(&self) -> Result<PathBuf> {
        let module = GoModule { dir: NEW_ISTIO.go_module, packages: XDS_PROXY, ldflags: |_| "-s -w".into() };
        Ok(build_module(&module, &self.versions, &cache_dir())?.join("xdsproxy"))
    }

    /// `build`'s `manifests/charts`, stamped as its release would ship them: `global.hub`
    /// `docker.io/istio`, `global.tag` and the charts' versions set to `build.version`.
    pub fn istio_charts(&self, build: IstioBuild) -> Result<PathBuf> {
        let source = module_dir(build.go_module, "istio.io/istio")?.join("manifests/charts");
        let out = cache_dir().join(format!(
            "istio-charts-{}-{}",
            build.version,
            fingerprint(&[source.to_string_lossy().as_bytes(), b"v1"])
        ));
        if out.join(".complete").exists() {
            return Ok(out);
        }
        let _ = fs::remove_dir_all(&out);
        copy_stamped(&source, &out, build.version)?;
        File::create(out.join(".complete"))?;
        Ok(out)
    }
}

/// Copies a chart tree, stamping the release version into `values.yaml` and `Chart.yaml` files.
fn copy_stamped(from: &Path, to: &Path, version: &str) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            copy_stamped(&src, &dst, version)?;
            continue;
        }
        let name = entry.file_name();
        let text = match name.to_str() {
            Some("values.yaml") => Some(stamp_values(&fs::read_to_string(&src)?, version)),
            Some("Chart.yaml") => Some(stamp_chart(&fs::read_to_string(&src)?, version)),
            _ => None,
        };
        match text {
            Some(text) => fs::write(&dst, text)?,
            None => {
                fs::write(&dst, fs::read(&src)?)?;
            }
        }
    }
    Ok(())
}

/// Istio's release build replaces the development hub and tag in every chart's defaults.
fn stamp_values(text: &str, version: &str) -> String {
    text.lines()
        .map(|line| {
            let indent = &line[..line.len() - line.trim_start().len()];
            match line.trim() {
                "hub: registry.istio.io/testing" | "hub: gcr.io/istio-testing" => {
                    format!("{indent}hub: docker.io/istio")
                }
                "tag: latest" => format!("{indent}tag: {version}"),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn stamp_chart(text: &str, version: &str) -> String {
    text.lines()
        .map(|line| match line.split_once(':') {
            Some(("version" | "appVersion", _)) => format!("{}: {version}", line.split_once(':').map_or("", |p| p.0)),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_charts_as_a_release() {
        let values = "_internal_defaults_do_not_set:\n  global:\n    hub: registry.istio.io/testing\n    tag: latest\n  pilot:\n    tag: \"\"\n";
        let stamped = stamp_values(values, "1.31.1");
        assert!(stamped.contains("    hub: docker.io/istio\n    tag: 1.31.1\n"), "{stamped}");
        assert!(stamped.contains("    tag: \"\"\n"), "only the development defaults change");
        let chart = stamp_chart("apiVersion: v2\nname: base\nversion: 1.0.0\nappVersion: 1.0.0\n", "1.30.3");
        assert_eq!(chart, "apiVersion: v2\nname: base\nversion: 1.30.3\nappVersion: 1.30.3\n");
        assert_eq!(NEW_ISTIO.revision(), "1-31-1");
    }
}
