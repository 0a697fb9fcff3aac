//! Developer tasks: `cargo xtask <task>`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use lexopt::prelude::*;
use meshtest::{ControlPlane, Fixture, Options, Tools, repo_root};

const HELP: &str = "\
cargo xtask <task>

Tasks:
  test                  Build the test control plane's Go tools if needed, then run every test
  demo                  Start a throw-away cluster with the Istio fixture and walk through the plugins
  cluster up [--bare] [--nodes N]
                        Start a local control plane and leave it running (Istio fixture unless --bare;
                        controllers, scheduler and N kwok nodes with --nodes)
  cluster down          Stop it
  tools                 Build the Go tools (kube-apiserver, etcd, kubectl, helm, kwok…) into the cache
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let mut parser = lexopt::Parser::from_env();
    let mut words: Vec<String> = Vec::new();
    let mut options = Options::default();
    let mut bare = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("bare") => bare = true,
            Long("nodes") => options.nodes = parser.value()?.parse()?,
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            Value(v) => words.push(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["test", ..] => test(&words[1..]),
        ["demo"] => demo(),
        ["cluster", "up"] => cluster_up(options, bare).map(|_| ExitCode::SUCCESS),
        ["cluster", "down"] => cluster_down().map(|_| ExitCode::SUCCESS),
        ["tools"] => {
            let started = Instant::now();
            let tools = Tools::ensure()?;
            eprintln!(
                "tools ready in {:.1?}: {} and {}",
                started.elapsed(),
                tools.k8s_bin.display(),
                tools.tools_bin.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprint!("{HELP}");
            Ok(ExitCode::from(2))
        }
    }
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(repo_root());
    cmd
}

/// Builds the Go tools first (with visible progress, and so that parallel test binaries do not
/// wait on each other's build), then runs the whole test suite.
fn test(extra: &[&str]) -> Result<ExitCode> {
    let started = Instant::now();
    Tools::ensure()?;
    eprintln!("xtask: test tools ready after {:.1?}", started.elapsed());
    let status = cargo().args(["test", "--workspace", "--locked"]).args(extra).status()?;
    eprintln!("xtask: tests finished in {:.1?}", started.elapsed());
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn cluster_dir() -> PathBuf {
    repo_root().join("target/cluster")
}

fn cluster_up(mut options: Options, bare: bool) -> Result<ControlPlane> {
    let dir = cluster_dir();
    if ControlPlane::stop_detached(&dir)? {
        eprintln!("xtask: stopped the cluster that was running in {}", dir.display());
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clean {}", dir.display()))?;
    }
    options.persistent_dir = Some(dir);
    let started = Instant::now();
    let plane = ControlPlane::start(&options)?;
    eprintln!("xtask: control plane up at {} in {:.1?}", plane.server, started.elapsed());
    if !bare {
        let fixture_started = Instant::now();
        Fixture::install(&plane, options.nodes == 0)?;
        eprintln!("xtask: Istio fixture installed in {:.1?}", fixture_started.elapsed());
    }
    println!("export KUBECONFIG={}", plane.kubeconfig.display());
    println!("export PATH={}", plane.tools.path_env().to_string_lossy());
    Ok(plane)
}

fn cluster_down() -> Result<()> {
    let dir = cluster_dir();
    if !ControlPlane::stop_detached(&dir)? {
        bail!("no cluster is running from {}", dir.display());
    }
    std::fs::remove_dir_all(&dir)?;
    eprintln!("xtask: cluster stopped");
    Ok(())
}

/// The canary-upgrade walkthrough on a throw-away cluster. Each plugin adds its step here.
fn demo() -> Result<ExitCode> {
    let status = cargo().args(["build", "--quiet", "--bins"]).status()?;
    if !status.success() {
        bail!("cargo build failed");
    }
    let plane = cluster_up(Options::default(), false)?;
    let bin = repo_root().join("target/debug");
    let mut path = vec![bin];
    path.extend(std::env::split_paths(&plane.tools.path_env()));
    let path = std::env::join_paths(path)?;
    let step = |title: &str, args: &[&str]| -> Result<()> {
        eprintln!("\n\x1b[1m$ {}\x1b[0m   # {title}", args.join(" "));
        let status = Command::new(args[0])
            .args(&args[1..])
            .env("KUBECONFIG", &plane.kubeconfig)
            .env("PATH", &path)
            .status()
            .with_context(|| format!("cannot run {}", args[0]))?;
        if !status.success() {
            bail!("`{}` failed with {status}", args.join(" "));
        }
        Ok(())
    };
    step(
        "the test cluster: a real kube-apiserver with Istio's CRDs and two revisions",
        &["kubectl", "get", "deployments", "-n", "istio-system"],
    )?;
    step(
        "revision tags, the namespaces that use them, and each revision's Istio version",
        &["kubectl", "revtag", "list"],
    )?;
    eprintln!(
        "\nThe cluster is still running: eval \"$(cargo xtask cluster up)\" starts a fresh one to play with,\n\
         `cargo xtask cluster down` stops it."
    );
    ControlPlane::stop_detached(&cluster_dir())?;
    Ok(ExitCode::SUCCESS)
}
