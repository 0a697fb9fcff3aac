//! The release path end to end: archives and manifests made by `xtask::dist`, checked by krew's own
//! validator, installed by real krew (from a manifest and archive, and from a custom index served
//! over loopback), found by real kubectl, run against the test control plane, and completed
//! through kubectl's `__complete`.
//!
//! The archives pack the debug binaries `cargo test --workspace` has just built (the release build
//! is `cargo xtask dist`'s job); packing and manifests are the same code either way.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use meshkit::catalogue::Catalogue;
use meshtest::{ControlPlane, Fixture, Options, Tools, repo_root, run};
use xtask::dist::{self, Platform};

mod common;

use common::built_binary;

const VERSION: &str = "v0.0.1-test";

/// Serves the files of `dir` over HTTP on loopback, for krew to download archives from.
fn serve(dir: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let name = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
                let body = (!name.contains('/') && !name.contains("..")).then(|| std::fs::read(dir.join(&name)).ok());
                let mut stream = stream;
                match body.flatten() {
                    Some(body) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(&body);
                    }
                    None => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                }
            });
        }
    });
    format!("http://{address}")
}

/// A krew home of its own, with only krew, kubectl and the system tools on PATH so that
/// `kubectl plugin list` sees exactly what krew installed.
struct Krew {
    root: PathBuf,
    home: PathBuf,
    tools: Tools,
    krew_dir: PathBuf,
}

impl Krew {
    fn new(dir: &Path, tools: &Tools) -> Krew {
        let root = dir.join("krew-root");
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        Krew { root, home, tools: tools.clone(), krew_dir: tools.krew().unwrap() }
    }

    fn path(&self) -> std::ffi::OsString {
        std::env::join_paths([
            self.root.join("bin"),
            self.krew_dir.clone(),
            self.tools.k8s_bin.clone(),
            "/usr/local/bin".into(),
            "/usr/bin".into(),
            "/bin".into(),
        ])
        .unwrap()
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", self.path())
            .env("HOME", &self.home)
            .env("KREW_ROOT", &self.root)
            .env("KREW_NO_UPGRADE_CHECK", "1");
        cmd
    }

    fn kubectl(&self, args: &[&str]) -> (i32, String, String) {
        run(self.command("kubectl").args(args))
    }

    fn kubectl_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.kubectl(args);
        assert_eq!(code, 0, "kubectl {args:?}:\n{out}\n{err}");
        out
    }
}

/// One archive per plugin (host platform) and the manifests pointing at `base_url`.
fn release(dir: &Path, base_url: &str) -> (PathBuf, PathBuf) {
    let catalogue = Catalogue::shipped();
    let (out, index) = (dir.join("dist"), dir.join("index"));
    let root = repo_root();
    let extras = [root.join("LICENSE"), root.join("README.md")];
    let extras: Vec<&Path> = extras.iter().map(PathBuf::as_path).collect();
    for plugin in &catalogue.plugins {
        let binary = built_binary(&plugin.binary);
        let archive = dist::package(plugin, &binary, &extras, VERSION, Platform::host().unwrap(), &out, 1).unwrap();
        let manifest = dist::render_manifest(plugin, VERSION, &[archive], base_url);
        dist::write_manifest(&index, plugin, &manifest).unwrap();
    }
    (out, index)
}

#[test]
fn committed_index_is_valid_and_matches_the_catalogue() {
    let tools = Tools::ensure().unwrap();
    let krew = Krew::new(tempfile::tempdir().unwrap().path(), &tools);
    for plugin in &Catalogue::shipped().plugins {
        let path = repo_root().join("krew/plugins").join(format!("{}.yaml", plugin.name));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask dist` to render the index", path.display()));
        let manifest: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        for (field, expected) in [
            ("shortDescription", &plugin.short_description),
            ("description", &plugin.description),
            ("homepage", &plugin.homepage),
        ] {
            assert_eq!(
                manifest["spec"][field],
                **expected,
                "{}: {field} differs from plugins.yaml; run `cargo xtask dist`",
                path.display()
            );
        }
        let validator = krew.krew_dir.join("validate-krew-manifest");
        let (code, out, err) = run(krew.command(&validator).arg("-manifest").arg(&path).arg("-skip-install"));
        assert_eq!(code, 0, "{}:\n{out}\n{err}", path.display());
    }
}

#[test]
fn krew_installs_the_plugins_and_kubectl_runs_and_completes_them() {
    let tools = Tools::ensure().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("dist");
    let base_url = serve(served.clone());
    let (out, index) = release(dir.path(), &base_url);
    assert_eq!(out, served);
    let krew = Krew::new(dir.path(), &tools);
    let catalogue = Catalogue::shipped();

    for plugin in &catalogue.plugins {
        let manifest = index.join("plugins").join(format!("{}.yaml", plugin.name));
        // krew-index's own check: structure, platforms, and an install that must extract a licence.
        let validator = krew.krew_dir.join("validate-krew-manifest");
        let (code, stdout, stderr) = run(krew.command(&validator).arg("-manifest").arg(&manifest));
        assert_eq!(code, 0, "validate-krew-manifest {}:\n{stdout}\n{stderr}", plugin.name);
        assert!(stderr.contains("installed fine"), "{stderr}");

        let archive = out.join(dist::archive_name(&plugin.name, VERSION, Platform::host().unwrap()));
        let manifest_flag = format!("--manifest={}", manifest.display());
        let archive_flag = format!("--archive={}", archive.display());
        krew.kubectl_ok(&["krew", "install", &manifest_flag, &archive_flag]);
        let store = krew.root.join("store").join(&plugin.name).join(VERSION);
        for file in ["LICENSE", "README.md", plugin.binary.as_str()] {
            assert!(store.join(file).exists(), "{file} not installed in {}", store.display());
        }
    }

    let (code, listed, warnings) = krew.kubectl(&["plugin", "list"]);
    assert_eq!(code, 0, "kubectl plugin list warns:\n{listed}\n{warnings}");
    assert!(!warnings.to_lowercase().contains("warning"), "{warnings}");
    for plugin in &catalogue.plugins {
        let linked = krew.root.join("bin").join(&plugin.binary);
        assert!(listed.contains(&linked.display().to_string()), "{} not in:\n{listed}", plugin.binary);
    }

    let plane = ControlPlane::start(&Options::default()).unwrap();
    Fixture::install(&plane, false).unwrap();
    let kubeconfig = plane.kubeconfig.display().to_string();
    let tags = krew.kubectl_ok(&["revtag", "list", "-o", "json", "--kubeconfig", &kubeconfig]);
    for tag in ["default", "prod-stable", "prod-canary"] {
        assert!(tags.contains(&format!("\"{tag}\"")), "{tag} missing from {tags}");
    }
    let versions = krew.kubectl_ok(&["meshcheck", "version", "-o", "json", "--kubeconfig", &kubeconfig]);
    assert!(versions.contains("1-31-1"), "{versions}");
    let status = krew.kubectl_ok(&["meshmigrate", "status", "shop-canary", "-o", "json", "--kubeconfig", &kubeconfig]);
    assert!(status.contains("\"intendedRevision\": \"1-31-1\""), "{status}");

    for plugin in &catalogue.plugins {
        krew.kubectl_ok(&[&plugin.name, "completion", "--install"]);
        assert!(krew.root.join("bin").join(format!("kubectl_complete-{}", plugin.name)).exists());
    }
    let complete = |args: &[&str]| -> Vec<String> {
        let mut cmd = krew.command("kubectl");
        cmd.arg("__complete").args(args).env("KUBECONFIG", &plane.kubeconfig);
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 0, "kubectl __complete {args:?}: {err}");
        out.lines().map(|l| l.split('\t').next().unwrap_or("").to_string()).collect()
    };
    let commands = complete(&["revtag", ""]);
    assert!(commands.contains(&"set".to_string()) && commands.contains(&"revisions".to_string()), "{commands:?}");
    let revisions = complete(&["revtag", "set", "prod-canary", "--revision", ""]);
    assert_eq!(revisions, ["1-30-3", "1-31-1", ":4"]);
    let targets = complete(&["meshmigrate", "namespace", "shop-stable", "--to", "prod-"]);
    assert_eq!(targets, ["prod-canary", "prod-stable", ":4"]);
    let namespaces = complete(&["meshmigrate", "status", "shop-c"]);
    assert_eq!(namespaces, ["shop-canary", ":4"]);
    let flags = complete(&["meshcheck", "precheck", "--fail-on", ""]);
    assert_eq!(flags, ["error", "warning", ":4"]);
    let (code, _, warnings) = krew.kubectl(&["plugin", "list"]);
    assert_eq!((code, warnings.contains("arning")), (0, false), "the shims must not upset kubectl: {warnings}");
}

#[test]
fn krew_installs_from_a_custom_index() {
    let tools = Tools::ensure().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base_url = serve(dir.path().join("dist"));
    let (_, index) = release(dir.path(), &base_url);
    let krew = Krew::new(dir.path(), &tools);
    let git = |args: &[&str]| {
        let (code, out, err) = run(krew
            .command("git")
            .current_dir(&index)
            .args(["-c", "user.name=meshtest", "-c", "user.email=meshtest@localhost"])
            .args(args));
        assert_eq!(code, 0, "git {args:?}:\n{out}\n{err}");
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "plugins"]);
    git(&["commit", "-q", "-m", "index"]);

    let location = index.display().to_string();
    krew.kubectl_ok(&["krew", "index", "add", "meshkit", &location]);
    let indexes = krew.kubectl_ok(&["krew", "index", "list"]);
    assert!(indexes.contains("meshkit"), "{indexes}");
    let catalogue = Catalogue::shipped();
    for plugin in &catalogue.plugins {
        krew.kubectl_ok(&["krew", "install", &format!("meshkit/{}", plugin.name)]);
        let version = krew.kubectl_ok(&[&plugin.name, "--version"]);
        assert!(version.starts_with(&plugin.binary), "{version}");
    }
    let installed = krew.kubectl_ok(&["krew", "list"]);
    for plugin in &catalogue.plugins {
        assert!(installed.contains(&format!("meshkit/{}", plugin.name)), "{installed}");
    }
}
