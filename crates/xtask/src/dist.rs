//! Release archives and the krew index, from `plugins.yaml`.
//!
//! Per plugin and platform: `kubectl-<name>-<version>-<os>-<arch>.tar.gz` holding the binary,
//! LICENSE and README.md, written byte-for-byte reproducibly (sorted entries, fixed times and
//! owners), with its sha256 beside it. The krew manifests list every platform whose archive is in
//! the output directory, so archives built on other machines can be dropped in and the manifests
//! rendered again.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use meshkit::catalogue::Plugin;
use sha2::{Digest, Sha256};

/// A platform krew knows, and the Rust target that builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    pub os: &'static str,
    pub arch: &'static str,
    pub triple: &'static str,
}

pub const PLATFORMS: [Platform; 4] = [
    Platform { os: "linux", arch: "amd64", triple: "x86_64-unknown-linux-gnu" },
    Platform { os: "linux", arch: "arm64", triple: "aarch64-unknown-linux-gnu" },
    Platform { os: "darwin", arch: "amd64", triple: "x86_64-apple-darwin" },
    Platform { os: "darwin", arch: "arm64", triple: "aarch64-apple-darwin" },
];

impl Platform {
    pub fn for_triple(triple: &str) -> Result<Platform> {
        PLATFORMS.iter().copied().find(|p| p.triple == triple).with_context(|| {
            let known: Vec<&str> = PLATFORMS.iter().map(|p| p.triple).collect();
            format!("no krew platform for target {triple}; known: {}", known.join(", "))
        })
    }

    /// The platform this xtask was compiled for (the host).
    pub fn host() -> Result<Platform> {
        let os = match std::env::consts::OS {
            "macos" => "darwin",
            other => other,
        };
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        PLATFORMS
            .iter()
            .copied()
            .find(|p| p.os == os && p.arch == arch)
            .with_context(|| format!("{os}/{arch} is not a release platform"))
    }
}

/// krew wants `vMAJOR.MINOR.PATCH` with an optional pre-release.
pub fn check_version(version: &str) -> Result<()> {
    let core = version.strip_prefix('v').context("the version must start with v, as krew requires (v0.1.0)")?;
    let core = core.split_once(['-', '+']).map_or(core, |(c, _)| c);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        bail!("{version} is not a semantic version like v0.1.0");
    }
    Ok(())
}

pub fn archive_name(plugin: &str, version: &str, platform: Platform) -> String {
    format!("kubectl-{plugin}-{version}-{}-{}.tar.gz", platform.os, platform.arch)
}

/// One written archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub platform: Platform,
    pub file_name: String,
    pub sha256: String,
}

/// gzip level of release archives; tests pack unstripped debug builds and trade size for time.
pub const RELEASE_COMPRESSION: u32 = 9;

/// Writes the archive of `plugin` for `platform` into `out`: the binary, then each extra file at
/// the archive root. Reproducible: same inputs, same bytes.
pub fn package(
    plugin: &Plugin,
    binary: &Path,
    extras: &[&Path],
    version: &str,
    platform: Platform,
    out: &Path,
    compression: u32,
) -> Result<Archive> {
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let file_name = archive_name(&plugin.name, version, platform);
    let path = out.join(&file_name);
    let staging = out.join(format!(".{file_name}.tmp"));
    let gz = flate2::write::GzEncoder::new(File::create(&staging)?, flate2::Compression::new(compression));
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut entries: Vec<(String, &Path, u32)> = vec![(plugin.binary.clone(), binary, 0o755)];
    for extra in extras {
        let name = extra.file_name().context("an extra file has no name")?.to_string_lossy().into_owned();
        entries.push((name, extra, 0o644));
    }
    for (name, source, mode) in entries {
        let data = fs::read(source).with_context(|| format!("cannot read {}", source.display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, &name, data.as_slice())?;
    }
    tar.into_inner()?.finish()?.sync_all()?;
    fs::rename(&staging, &path)?;
    let sha256 = sha256_file(&path)?;
    fs::write(out.join(format!("{file_name}.sha256")), format!("{sha256}  {file_name}\n"))?;
    Ok(Archive { platform, file_name, sha256 })
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Every platform's archive of `plugin` at `version` found in `dir`, in [`PLATFORMS`] order.
pub fn archives_in(dir: &Path, plugin: &str, version: &str) -> Result<Vec<Archive>> {
    let mut found = Vec::new();
    for platform in PLATFORMS {
        let file_name = archive_name(plugin, version, platform);
        let path = dir.join(&file_name);
        if path.exists() {
            found.push(Archive { platform, sha256: sha256_file(&path)?, file_name });
        }
    }
    Ok(found)
}

/// A YAML double-quoted scalar (JSON's string syntax is valid YAML).
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialise")
}

fn block(text: &str, indent: &str) -> String {
    text.trim_end().lines().map(|l| if l.is_empty() { "\n".to_string() } else { format!("{indent}{l}\n") }).collect()
}

/// The krew manifest of `plugin`, one platform per archive, each fetched from `base_url`.
pub fn render_manifest(plugin: &Plugin, version: &str, archives: &[Archive], base_url: &str) -> String {
    let mut out = format!(
        "# Generated by `cargo xtask dist` from plugins.yaml; do not edit by hand.\n\
         apiVersion: krew.googlecontainertools.github.com/v1alpha2\n\
         kind: Plugin\n\
         metadata:\n  name: {name}\n\
         spec:\n  version: {version}\n  homepage: {homepage}\n  shortDescription: {short}\n  description: |\n{description}",
        name = plugin.name,
        homepage = quoted(&plugin.homepage),
        short = quoted(&plugin.short_description),
        description = block(&plugin.description, "    "),
    );
    if let Some(caveats) = plugin.caveats.as_deref().filter(|c| !c.trim().is_empty()) {
        out.push_str(&format!("  caveats: |\n{}", block(caveats, "    ")));
    }
    out.push_str("  platforms:\n");
    let base = base_url.trim_end_matches('/');
    for archive in archives {
        out.push_str(&format!(
            "  - selector:\n      matchLabels:\n        os: {os}\n        arch: {arch}\n\
             \x20   uri: {uri}\n    sha256: {sha}\n    files:\n\
             \x20   - from: {bin}\n      to: .\n    - from: LICENSE\n      to: .\n    - from: README.md\n      to: .\n\
             \x20   bin: {bin}\n",
            os = archive.platform.os,
            arch = archive.platform.arch,
            uri = quoted(&format!("{base}/{}", archive.file_name)),
            sha = archive.sha256,
            bin = plugin.binary,
        ));
    }
    out
}

/// Writes `plugins/<name>.yaml` under `index`, atomically.
pub fn write_manifest(index: &Path, plugin: &Plugin, manifest: &str) -> Result<PathBuf> {
    let dir = index.join("plugins");
    fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}.yaml", plugin.name));
    let staging = dir.join(format!(".{}.yaml.tmp", plugin.name));
    let mut file = File::create(&staging)?;
    file.write_all(manifest.as_bytes())?;
    file.sync_all()?;
    fs::rename(&staging, &path)?;
    Ok(path)
}

/// `cargo xtask dist` options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `v0.1.0`; default: the workspace version.
    pub version: Option<String>,
    /// Rust targets to build; default: the host.
    pub targets: Vec<String>,
    /// Where the archives will be downloadable; default: the GitHub release of `version`.
    pub base_url: Option<String>,
    /// Default: `target/dist/<version>`.
    pub out: Option<PathBuf>,
    /// Default: `krew/` in the repository.
    pub index: Option<PathBuf>,
}

/// Builds release binaries, packs them, and renders the krew index.
pub fn run(root: &Path, options: &Options) -> Result<()> {
    let version = options.version.clone().unwrap_or_else(|| format!("v{}", env!("CARGO_PKG_VERSION")));
    check_version(&version)?;
    let catalogue = meshkit::catalogue::Catalogue::parse(&fs::read_to_string(root.join("plugins.yaml"))?)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let out = options.out.clone().unwrap_or_else(|| target_dir.join("dist").join(&version));
    let index = options.index.clone().unwrap_or_else(|| root.join("krew"));
    let base_url = options
        .base_url
        .clone()
        .unwrap_or_else(|| format!("{}/releases/download/{version}", env!("CARGO_PKG_REPOSITORY")));
    let host = Platform::host()?;
    let platforms: Vec<Platform> = if options.targets.is_empty() {
        vec![host]
    } else {
        options.targets.iter().map(|t| Platform::for_triple(t)).collect::<Result<_>>()?
    };
    let license = root.join("LICENSE");
    let readme = root.join("README.md");
    for platform in platforms {
        let mut cargo = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo.current_dir(root).args(["build", "--release", "--locked"]);
        for plugin in &catalogue.plugins {
            cargo.args(["-p", &plugin.crate_name]);
        }
        let release_dir = if platform == host {
            target_dir.join("release")
        } else {
            cargo.args(["--target", platform.triple]);
            target_dir.join(platform.triple).join("release")
        };
        eprintln!("xtask: building release binaries for {}/{} ({})", platform.os, platform.arch, platform.triple);
        let status = cargo.status().context("cannot run cargo")?;
        if !status.success() {
            bail!("cargo build --release for {} failed ({status})", platform.triple);
        }
        for plugin in &catalogue.plugins {
            let binary = release_dir.join(&plugin.binary);
            let archive =
                package(plugin, &binary, &[&license, &readme], &version, platform, &out, RELEASE_COMPRESSION)?;
            let size = fs::metadata(&binary)?.len() as f64 / (1024.0 * 1024.0);
            eprintln!("xtask: {} ({:.1} MiB binary) sha256 {}", archive.file_name, size, archive.sha256);
        }
    }
    for plugin in &catalogue.plugins {
        let archives = archives_in(&out, &plugin.name, &version)?;
        let path = write_manifest(&index, plugin, &render_manifest(plugin, &version, &archives, &base_url))?;
        eprintln!("xtask: {} lists {} platform(s)", path.display(), archives.len());
    }
    eprintln!("xtask: archives in {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests;
