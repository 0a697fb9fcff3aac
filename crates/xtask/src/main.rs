//! Developer tasks: `cargo xtask <task>`.

mod bench;
mod bench_backup;
mod bench_proxies;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use lexopt::prelude::*;
use meshtest::{ControlPlane, Fixture, Options, RealFixture, Tools, repo_root};

const HELP: &str = "\
cargo xtask <task>

Tasks:
  test                  Build the test control plane's Go tools if needed, then run every test
  demo                  Start a throw-away cluster with the Istio fixture and walk through the plugins
  cluster up [--bare] [--nodes N]
                        Start a local control plane and leave it running (Istio fixture unless --bare;
                        controllers, scheduler and N kwok nodes with --nodes)
  cluster up --real [--revisions 1|2]
                        Tier C: real istiod of two Istio builds, installed with helm (both revisions,
                        or only the old one); prints the export lines for KUBECONFIG, PATH and the
                        MESHTEST_* variables (versions, charts, helm values)
  cluster down          Stop it
  bench [--scale N,N,…] [--runs R]
                        Every read command on a synthetic mesh of N namespaces (10 injected pods and 2
                        VirtualServices each; default 500,1500,5000), beside kubectl (the floor) and
                        istioctl: writes BENCHMARKS.md and benchmarks.json (release builds)
  bench backup [--objects N]
                        Benchmark of kubectl-meshbackup (release build) with N Istio custom resources
                        (default 10000): create vs kubectl get, inspect, diff, restore objects/s, peak memory
  bench migrate|status  Benchmarks of kubectl-meshmigrate (release build) on the test control plane:
                        `namespace --restart --wait` over 500 Deployments in 100 namespaces (Tier C:
                        real istiod injects every pod), or
                        `status -A` over 5,000 namespaces and 50,000 pods; prints wall time, peak
                        memory and the API requests the command made (from the audit log)
  dist [--version vX.Y.Z] [--target TRIPLE]… [--base-url URL] [--out DIR] [--index DIR]
                        Release builds, one archive per plugin and platform with its sha256 (in
                        target/dist/<version>), and the krew index rendered from plugins.yaml (krew/)
  docs                  Write docs/<plugin>.md, one reference page per plugin, from the plugins' own help,
                        and the README's canary walkthrough, recorded from a run on Tier C
  tools                 Build the Go tools (kube-apiserver, etcd, kubectl, helm, kwok, istioctl, krew, and
                        pilot-discovery of both Istio builds) into the cache
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
    let mut real = false;
    let mut revisions = 2;
    let mut objects = 10_000;
    let mut dist = xtask::dist::Options::default();
    let mut scales: Vec<usize> = vec![500, 1500, 5000];
    let mut runs = 3;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("bare") => bare = true,
            Long("real") => real = true,
            Long("revisions") => revisions = parser.value()?.parse()?,
            Long("nodes") => options.nodes = parser.value()?.parse()?,
            Long("scale") => {
                scales = parser.value()?.string()?.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            Long("runs") => runs = parser.value()?.parse()?,
            Long("objects") => objects = parser.value()?.parse()?,
            Long("version") => dist.version = Some(parser.value()?.string()?),
            Long("target") => dist.targets.push(parser.value()?.string()?),
            Long("base-url") => dist.base_url = Some(parser.value()?.string()?),
            Long("out") => dist.out = Some(parser.value()?.into()),
            Long("index") => dist.index = Some(parser.value()?.into()),
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
        ["bench", "backup"] => bench_backup::run(objects).map(|_| ExitCode::SUCCESS),
        ["dist"] => xtask::dist::run(&repo_root(), &dist).map(|_| ExitCode::SUCCESS),
        ["bench"] => bench_suite(scales, runs),
        ["bench", which] => bench::bench(which).map(|_| ExitCode::SUCCESS),
        ["cluster", "up"] if real => {
            if !(1..=2).contains(&revisions) {
                bail!("--revisions takes 1 or 2");
            }
            let (plane, fixture) = cluster_up_real(revisions)?;
            for (key, value) in xtask::canary::Session::exports(&plane, &fixture) {
                println!("export {key}={value}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ["cluster", "up"] => {
            let plane = cluster_up(options, bare)?;
            println!("export KUBECONFIG={}", plane.kubeconfig.display());
            println!("export PATH={}", plane.tools.path_env().to_string_lossy());
            Ok(ExitCode::SUCCESS)
        }
        ["cluster", "down"] => cluster_down().map(|_| ExitCode::SUCCESS),
        ["docs"] => {
            build_plugins(&[])?;
            build_kubelet()?;
            let readme_path = repo_root().join("README.md");
            let readme = std::fs::read_to_string(&readme_path)?;
            let block = xtask::docs::record_walkthrough(&repo_root().join("target/debug"))?;
            std::fs::write(&readme_path, xtask::docs::splice(&readme, &block)?)?;
            eprintln!("xtask: wrote the walkthrough into {}", readme_path.display());
            for plugin in xtask::docs::PLUGINS {
                let binary = repo_root().join("target/debug").join(format!("kubectl-{plugin}"));
                let path = repo_root().join("docs").join(format!("{plugin}.md"));
                std::fs::write(&path, xtask::docs::reference(plugin, &binary)?)?;
                eprintln!("xtask: wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ["tools"] => {
            let started = Instant::now();
            let tools = Tools::ensure()?;
            tools.istioctl()?;
            tools.krew()?;
            for build in [meshtest::OLD_ISTIO, meshtest::NEW_ISTIO] {
                tools.pilot_discovery(build)?;
            }
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

/// Builds every plugin binary (`--release` for the benchmarks).
fn build_plugins(profile: &[&str]) -> Result<()> {
    let status = cargo()
        .args(["build", "--quiet", "--bins"])
        .args(profile)
        .args(["-p", "revtag", "-p", "meshcheck", "-p", "meshmigrate", "-p", "meshbackup", "-p", "xtask"])
        .status()?;
    if !status.success() {
        bail!("cargo build {} failed", profile.join(" "));
    }
    Ok(())
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(repo_root());
    cmd
}

/// Builds the Go tools first (with visible progress, and so that parallel test binaries do not
/// wait on each other's build), then runs the whole test suite.
/// `cargo xtask bench`: release builds, istioctl, then the suite; results into the repository root.
fn bench_suite(scales: Vec<usize>, runs: usize) -> Result<ExitCode> {
    build_plugins(&["--release"])?;
    let tools = Tools::ensure()?;
    let options = xtask::benchmark::Options {
        scales,
        runs,
        binaries: repo_root().join("target/release"),
        istioctl: Some(tools.istioctl()?),
        out: repo_root(),
    };
    let rows = xtask::benchmark::run(&options)?;
    xtask::benchmark::write(&rows, &options)?;
    eprintln!("xtask: wrote BENCHMARKS.md and benchmarks.json");
    Ok(ExitCode::SUCCESS)
}

fn test(extra: &[&str]) -> Result<ExitCode> {
    let started = Instant::now();
    let tools = Tools::ensure()?;
    tools.istioctl()?;
    tools.xds_proxy()?;
    tools.krew()?;
    for build in [meshtest::OLD_ISTIO, meshtest::NEW_ISTIO] {
        tools.pilot_discovery(build)?;
        tools.istio_charts(build)?;
    }
    build_kubelet()?;
    eprintln!("xtask: test tools ready after {:.1?}", started.elapsed());
    let mut child = cargo()
        .args(["test", "--workspace", "--locked", "--no-fail-fast"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()?;
    let (mut passed, mut failed) = (0u64, 0u64);
    for line in BufReader::new(child.stdout.take().context("cargo test stdout")?).lines() {
        let line = line?;
        println!("{line}");
        if let Some((p, f)) = test_result_counts(&line) {
            passed += p;
            failed += f;
        }
    }
    let status = child.wait()?;
    eprintln!("xtask: tests finished in {:.1?}", started.elapsed());
    // One closing line for the whole workspace; cargo's own last line is a crate's doc tests.
    println!("tests: {passed} passed, {failed} failed");
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `(passed, failed)` from libtest's `test result: ok. 35 passed; 0 failed; …` line.
fn test_result_counts(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("test result: ")?;
    let count = |label: &str| -> Option<u64> {
        rest.split(';').find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(label)?
                .trim()
                .parse()
                .ok()
        })
    };
    Some((count("passed")?, count("failed")?))
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
        if options.nodes == 0 {
            Fixture::install(&plane, true)?;
        } else {
            Fixture::install_injected(&plane)?;
        }
        eprintln!("xtask: Istio fixture installed in {:.1?}", fixture_started.elapsed());
    }
    Ok(plane)
}

/// Tier C, left running: kwok node, controllers, the kubelet for istiod, Istio from helm.
fn cluster_up_real(revisions: usize) -> Result<(ControlPlane, RealFixture)> {
    build_kubelet()?;
    let options = Options { nodes: 1, real_istio: true, ..Default::default() };
    let plane = cluster_up(options, true)?;
    let started = Instant::now();
    let fixture = RealFixture::install(&plane, revisions)?;
    eprintln!("xtask: Istio installed with helm, every istiod serving, in {:.1?}", started.elapsed());
    Ok((plane, fixture))
}

fn build_kubelet() -> Result<()> {
    let status = cargo().args(["build", "--quiet", "-p", "meshtest", "--bin", "meshtest-kubelet"]).status()?;
    if !status.success() {
        bail!("cargo build -p meshtest failed");
    }
    Ok(())
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

/// The canary upgrade on throw-away Tier C clusters: act one upgrades 1.30 to 1.31 and retires
/// the old revision; act two, on a fresh cluster, tries a canary and rolls it back.
fn demo() -> Result<ExitCode> {
    build_plugins(&[])?;
    let plugins = repo_root().join("target/debug");
    use xtask::canary::{Session, Show};
    for (act, title) in [(1, "the canary upgrade"), (2, "a canary tried and rolled back")] {
        eprintln!("\n\x1b[1m== Act {act}: {title} ==\x1b[0m");
        let (plane, fixture) = cluster_up_real(1)?;
        let session = Session::new(&plane, &fixture, &plugins, Show::Everything)?;
        let result = if act == 1 { xtask::canary::upgrade(&session) } else { xtask::canary::rollback(&session) };
        ControlPlane::stop_detached(&cluster_dir())?;
        result?;
    }
    eprintln!(
        "\nThe demo clusters are stopped. `eval \"$(cargo xtask cluster up --real --revisions 1)\"` starts one\n\
         to explore; `cargo xtask cluster down` stops it."
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::test_result_counts;

    #[test]
    fn reads_libtest_summaries() {
        assert_eq!(
            test_result_counts(
                "test result: ok. 35 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s"
            ),
            Some((35, 0))
        );
        assert_eq!(test_result_counts("test result: FAILED. 9 passed; 2 failed; 0 ignored; 0 measured"), Some((9, 2)));
        assert_eq!(test_result_counts("running 3 tests"), None);
    }
}
