//! Builds the real Kubernetes components and test tools from the Go modules under `tests/go/`,
//! once, into a cache outside the repository keyed by everything that affects the build.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

mod istio;

pub use istio::{IstioBuild, NEW_ISTIO, OLD_ISTIO};

use crate::repo_root;

/// A Go module under `tests/go/` and how to build its binaries.
struct GoModule {
    dir: &'static str,
    packages: &'static [&'static str],
    ldflags: fn(&ModuleVersions) -> String,
}

const K8S: GoModule = GoModule {
    dir: "k8s",
    packages: &[
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "k8s.io/kubernetes/cmd/kube-scheduler",
        "k8s.io/kubernetes/cmd/kubectl",
        "go.etcd.io/etcd/server/v3",
    ],
    ldflags: kubernetes_ldflags,
};

const TOOLS: GoModule = GoModule {
    dir: "tools",
    packages: &["helm.sh/helm/v3/cmd/helm", "sigs.k8s.io/kwok/cmd/kwok"],
    ldflags: tools_ldflags,
};

const ISTIO: GoModule =
    GoModule { dir: "istio", packages: &["istio.io/istio/istioctl/cmd/istioctl"], ldflags: istio_ldflags };

/// krew and the validator krew-index's CI runs on every manifest.
const KREW: GoModule = GoModule {
    dir: "krew",
    packages: &["sigs.k8s.io/krew/cmd/krew", "sigs.k8s.io/krew/cmd/validate-krew-manifest"],
    // Unstamped on purpose: krew skips its GitHub upgrade check for development builds.
    ldflags: |_| "-s -w".into(),
};

/// Versions read from the go.mod files, so the Rust side never repeats them.
#[derive(Debug, Clone)]
pub struct ModuleVersions {
    /// `v1.35.4`
    pub kubernetes: String,
    pub helm: String,
    /// What the pinned Istio source calls itself (its `VERSION` file, as Istio's own dev builds do:
    /// `1.31-dev`); empty until istioctl is asked for.
    pub istio: String,
}

fn require_version(go_mod: &str, module: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let first = words.next()?;
        let (name, version) = if first == "require" { (words.next()?, words.next()?) } else { (first, words.next()?) };
        (name == module && version.starts_with('v')).then(|| version.to_string())
    })
}

impl ModuleVersions {
    pub fn read() -> Result<Self> {
        let k8s = fs::read_to_string(go_dir().join("k8s/go.mod"))?;
        let tools = fs::read_to_string(go_dir().join("tools/go.mod"))?;
        Ok(ModuleVersions {
            kubernetes: require_version(&k8s, "k8s.io/kubernetes")
                .context("k8s.io/kubernetes not required in tests/go/k8s/go.mod")?,
            helm: require_version(&tools, "helm.sh/helm/v3").context("helm not required in tests/go/tools/go.mod")?,
            istio: String::new(),
        })
    }

    /// `(1, 35)`
    pub fn kubernetes_minor(&self) -> (u32, u32) {
        let mut parts = self.kubernetes.trim_start_matches('v').split('.').map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(1), parts.next().unwrap_or(0))
    }
}

/// Stamp the version the way Kubernetes' own build does, so `/version` and `kubectl version`
/// report the real release instead of `v0.0.0-master`.
fn kubernetes_ldflags(v: &ModuleVersions) -> String {
    let (major, minor) = v.kubernetes_minor();
    let mut flags = String::from("-s -w");
    for package in ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"] {
        for (key, value) in [
            ("gitVersion", v.kubernetes.clone()),
            ("gitMajor", major.to_string()),
            ("gitMinor", minor.to_string()),
            ("gitTreeState", "clean".into()),
            ("buildDate", "1970-01-01T00:00:00Z".into()),
        ] {
            flags.push_str(&format!(" -X {package}.{key}={value}"));
        }
    }
    flags
}

fn tools_ldflags(v: &ModuleVersions) -> String {
    let (major, minor) = v.kubernetes_minor();
    format!(
        "-s -w -X helm.sh/helm/v3/internal/version.version={} \
         -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor={major} -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={minor}",
        v.helm
    )
}

/// istioctl stamped like a release build, so it reports a version and renders real hub/tag values.
fn istio_ldflags(v: &ModuleVersions) -> String {
    let mut flags = String::from("-s -w");
    for (key, value) in [
        ("buildVersion", v.istio.as_str()),
        ("buildTag", v.istio.as_str()),
        ("buildHub", "docker.io/istio"),
        ("buildStatus", "Clean"),
    ] {
        flags.push_str(&format!(" -X istio.io/istio/pkg/version.{key}={value}"));
    }
    flags
}

/// Paths of the built binaries.
#[derive(Debug, Clone)]
pub struct Tools {
    pub k8s_bin: PathBuf,
    pub tools_bin: PathBuf,
    pub versions: ModuleVersions,
}

impl Tools {
    /// Builds whatever is missing from the cache, then returns the paths. Safe to call from
    /// several processes at once: builds are serialised with a lock file.
    pub fn ensure() -> Result<Tools> {
        let versions = ModuleVersions::read()?;
        let cache = cache_dir();
        fs::create_dir_all(&cache).with_context(|| format!("cannot create the tool cache {}", cache.display()))?;
        Ok(Tools {
            k8s_bin: build_module(&K8S, &versions, &cache)?,
            tools_bin: build_module(&TOOLS, &versions, &cache)?,
            versions,
        })
    }

    pub fn kube_apiserver(&self) -> PathBuf {
        self.k8s_bin.join("kube-apiserver")
    }
    pub fn kube_controller_manager(&self) -> PathBuf {
        self.k8s_bin.join("kube-controller-manager")
    }
    pub fn kube_scheduler(&self) -> PathBuf {
        self.k8s_bin.join("kube-scheduler")
    }
    pub fn kubectl(&self) -> PathBuf {
        self.k8s_bin.join("kubectl")
    }
    pub fn etcd(&self) -> PathBuf {
        self.k8s_bin.join("etcd")
    }
    pub fn helm(&self) -> PathBuf {
        self.tools_bin.join("helm")
    }
    pub fn kwok(&self) -> PathBuf {
        self.tools_bin.join("kwok")
    }

    /// istioctl from the pinned `istio.io/istio` module, built on first use, stamped as
    /// [`NEW_ISTIO`] so that `istioctl install` renders images the Tier C kubelet can run.
    pub fn istioctl(&self) -> Result<PathBuf> {
        let mut versions = self.versions.clone();
        versions.istio = NEW_ISTIO.version.into();
        Ok(build_module(&ISTIO, &versions, &cache_dir())?.join("istioctl"))
    }

    /// A directory holding krew (also as `kubectl-krew`, the name kubectl dispatches
    /// `kubectl krew` to) and `validate-krew-manifest`, built on first use.
    pub fn krew(&self) -> Result<PathBuf> {
        let dir = build_module(&KREW, &self.versions, &cache_dir())?;
        match std::os::unix::fs::symlink("krew", dir.join("kubectl-krew")) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).context("cannot link kubectl-krew");
            }
            _ => {}
        }
        Ok(dir)
    }

    /// A PATH with the built kubectl and tools first.
    pub fn path_env(&self) -> std::ffi::OsString {
        let mut paths = vec![self.k8s_bin.clone(), self.tools_bin.clone()];
        paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
        std::env::join_paths(paths).expect("PATH entries are valid")
    }
}

/// `meshtest-kubelet`: `$MESHTEST_KUBELET`, else the workspace's debug build (cargo builds it
/// for `cargo test`; built here when missing).
pub fn kubelet_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("MESHTEST_KUBELET") {
        return Ok(PathBuf::from(path));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo_root().join("target"), PathBuf::from);
    let binary = target.join("debug/meshtest-kubelet");
    if !binary.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run(Command::new(cargo).current_dir(repo_root()).args([
            "build",
            "--quiet",
            "-p",
            "meshtest",
            "--bin",
            "meshtest-kubelet",
        ]))?;
    }
    Ok(binary)
}

pub fn go_dir() -> PathBuf {
    repo_root().join("tests/go")
}

/// `$MESHTEST_CACHE`, else `$XDG_CACHE_HOME/meshtest`, else `~/.cache/meshtest`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MESHTEST_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache"));
    base.join("meshtest")
}

/// FNV-1a: stable across Rust releases, unlike `DefaultHasher`.
fn fingerprint(parts: &[&[u8]]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

fn go_version() -> Result<String> {
    let out = Command::new("go")
        .arg("version")
        .output()
        .context("`go` is not on PATH; the test control plane is built with Go")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn build_module(module: &GoModule, versions: &ModuleVersions, cache: &Path) -> Result<PathBuf> {
    let src = go_dir().join(module.dir);
    let go_mod = fs::read(src.join("go.mod"))?;
    let go_sum = fs::read(src.join("go.sum"))?;
    let ldflags = (module.ldflags)(versions);
    // Packages of the module itself (`./xdsproxy`): their sources are part of what is built.
    let mut local_sources = Vec::new();
    for package in module.packages.iter().filter(|p| p.starts_with("./")) {
        let mut files: Vec<_> = fs::read_dir(src.join(package))?.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            local_sources.extend(fs::read(&file)?);
        }
    }
    let go = go_version()?;
    let mut parts: Vec<&[u8]> = vec![&go_mod, &go_sum, ldflags.as_bytes()];
    let packages = module.packages.join(" ");
    parts.extend([packages.as_bytes(), go.as_bytes()]);
    if !local_sources.is_empty() {
        parts.push(&local_sources);
    }
    let key = fingerprint(&parts);
    let out = cache.join(format!("{}-{key}", module.dir));
    let done = out.join(".complete");
    if done.exists() {
        return Ok(out);
    }
    let lock = File::create(cache.join(format!(".{}.lock", module.dir)))?;
    lock.lock()?;
    if done.exists() {
        return Ok(out);
    }
    eprintln!(
        "meshtest: building {} from tests/go/{} into {} (first time only)",
        module.packages.join(", "),
        module.dir,
        out.display()
    );
    let started = Instant::now();
    fs::create_dir_all(&out)?;
    let mut go = Command::new("go");
    go.current_dir(&src)
        .args(["build", "-trimpath", "-buildvcs=false", "-mod=readonly", "-ldflags", &ldflags, "-o"])
        .arg(format!("{}/", out.display()))
        .args(module.packages.iter().filter(|p| !p.starts_with("go.etcd.io")))
        .env("CGO_ENABLED", "0")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "");
    run(&mut go)?;
    // etcd's main package is the module root, so its binary would be called "v3".
    if let Some(etcd) = module.packages.iter().find(|p| p.starts_with("go.etcd.io")) {
        let mut go = Command::new("go");
        go.current_dir(&src)
            .args(["build", "-trimpath", "-buildvcs=false", "-mod=readonly", "-ldflags", "-s -w", "-o"])
            .arg(out.join("etcd"))
            .arg(etcd)
            .env("CGO_ENABLED", "0")
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "");
        run(&mut go)?;
    }
    File::create(&done)?;
    eprintln!("meshtest: built tests/go/{} in {:.0?}", module.dir, started.elapsed());
    Ok(out)
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// The source directory of `module` as pinned by the Go module in `tests/go/<go_module>`,
/// downloaded through the Go module proxy on first use.
pub fn module_dir(go_module: &str, module: &str) -> Result<PathBuf> {
    let out = Command::new("go")
        .current_dir(go_dir().join(go_module))
        .args(["mod", "download", "-json", module])
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=readonly")
        .output()
        .context("cannot run `go mod download`")?;
    if !out.status.success() {
        bail!("go mod download {module} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let info: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let dir = info["Dir"].as_str().with_context(|| format!("go mod download gave no Dir for {module}"))?;
    Ok(PathBuf::from(dir))
}

/// Istio's source at the version pinned in `tests/go/istio/go.mod`; its `manifests/charts` are
/// Istio's own charts.
pub fn istio_module_dir() -> Result<PathBuf> {
    module_dir("istio", "istio.io/istio")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_from_go_mod() {
        assert_eq!(
            require_version("require k8s.io/kubernetes v1.35.4\n", "k8s.io/kubernetes").as_deref(),
            Some("v1.35.4")
        );
        assert_eq!(
            require_version("require (\n\thelm.sh/helm/v3 v3.21.4\n)", "helm.sh/helm/v3").as_deref(),
            Some("v3.21.4")
        );
        assert_eq!(require_version("\tk8s.io/api => k8s.io/api v0.35.4", "k8s.io/api"), None);
        let v = ModuleVersions::read().unwrap();
        assert!(v.kubernetes.starts_with("v1."), "{v:?}");
        assert!(kubernetes_ldflags(&v).contains(&format!("gitVersion={}", v.kubernetes)));
    }

    #[test]
    fn fingerprint_depends_on_every_part() {
        assert_ne!(fingerprint(&[b"a", b"b"]), fingerprint(&[b"ab"]));
        assert_eq!(fingerprint(&[b"a"]), fingerprint(&[b"a"]));
    }
}
