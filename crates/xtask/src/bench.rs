//! `cargo xtask bench migrate|status`: kubectl-meshmigrate at scale against the real test control
//! plane. Not a test: it prints wall time, peak memory (`/usr/bin/time -v`) and the requests the
//! command made, counted in the apiserver's audit log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use meshtest::{ControlPlane, Fixture, OLD_ISTIO, Options, RealFixture, STABLE, realistic_pod, repo_root};

/// The user the measured command runs as, so that its requests can be told apart in the audit log.
const RUNNER: &str = "bench-runner";

pub fn bench(which: &str) -> Result<()> {
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(repo_root())
        .args(["build", "--release", "--quiet", "-p", "meshmigrate", "-p", "meshcheck"])
        .status()?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    match which {
        "migrate" => migrate(100, 5),
        "status" => status_all(5_000, 10),
        "proxy-status" => crate::bench_proxies::run(1_000, 5),
        other => bail!("unknown benchmark {other:?}: migrate, status or proxy-status"),
    }
}

fn runner_kubeconfig(plane: &ControlPlane) -> Result<std::path::PathBuf> {
    plane.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        RUNNER,
        "--clusterrole=cluster-admin",
        &format!("--user={RUNNER}"),
    ])?;
    plane.user_kubeconfig(RUNNER, &[])
}

/// `namespace --restart --wait` over `namespaces` × `deployments` single-replica Deployments.
fn migrate(namespaces: usize, deployments: usize) -> Result<()> {
    let started = Instant::now();
    // 110 pods per kwok node; room for the surge of the rollouts.
    let nodes = (namespaces * deployments * 3 / 2).div_ceil(100).max(1);
    // Tier C: the pods of every rollout are injected by real istiod through admission.
    let plane = ControlPlane::start(&Options { nodes, real_istio: true, ..Default::default() })?;
    RealFixture::install(&plane, 2)?;
    let mut manifest = String::new();
    for n in 0..namespaces {
        let _ = write!(
            manifest,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench-{n:03}\n  labels: {{bench: migrate, istio.io/rev: {}}}\n---\n",
            OLD_ISTIO.revision()
        );
        for d in 0..deployments {
            let _ = write!(
                manifest,
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app-{d}, namespace: bench-{n:03}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: app-{d}}}}}\n  template:\n    metadata: {{labels: {{app: app-{d}}}}}\n    spec: {{containers: [{{name: app, image: nginx:1.27}}]}}\n---\n"
            );
        }
    }
    plane.apply(&manifest)?;
    plane.kubectl_ok(&["wait", "--for=condition=Available", "deployments", "--all", "-A", "--timeout=900s"])?;
    eprintln!(
        "bench: {} Deployments in {namespaces} namespaces on {nodes} nodes ready after {:.0?}",
        namespaces * deployments,
        started.elapsed()
    );
    let kubeconfig = runner_kubeconfig(&plane)?;
    let args = [
        "namespace",
        "-l",
        "bench=migrate",
        "--to",
        "1-31-1",
        "--restart",
        "--wait",
        "--yes",
        "--max-concurrent=50",
        "--timeout=30m",
        "-o",
        "json",
    ];
    let (figures, stdout) = measure(&kubeconfig, &args)?;
    let report: serde_json::Value = serde_json::from_str(&stdout).context("the report")?;
    let restarts = report["restarts"].as_array().map_or(0, Vec::len);
    let off_target = report["notOnTarget"].as_array().map_or(0, Vec::len);
    println!(
        "namespace --restart --wait --max-concurrent=50: {namespaces} namespaces, {restarts} restarts, {off_target} pods off target, complete={}",
        report["complete"]
    );
    print_figures(&figures, &requests(&plane)?);
    Ok(())
}

/// `status -A` over `namespaces` namespaces with `pods_each` injected pods each (Tier A: pods are
/// written directly).
fn status_all(namespaces: usize, pods_each: usize) -> Result<()> {
    let started = Instant::now();
    let plane = ControlPlane::start(&Options::default())?;
    Fixture::install(&plane, false)?;
    let labels = ["istio-injection: enabled", "istio.io/rev: prod-canary", "istio.io/rev: 1-30-3"];
    let mut chunks = vec![String::new(); 4];
    for n in 0..namespaces {
        let chunk = &mut chunks[n % 4];
        let _ = write!(
            chunk,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: scale-{n:05}\n  labels: {{{}}}\n---\n",
            labels[n % labels.len()]
        );
    }
    xtask::benchmark::create_in_parallel(&plane, &chunks)?;
    let mut chunks = vec![String::new(); 4];
    for n in 0..namespaces {
        for p in 0..pods_each {
            chunks[(n * pods_each + p) % 4].push_str(&realistic_pod(
                &format!("scale-{n:05}"),
                &format!("web-{p}"),
                STABLE,
            ));
        }
    }
    xtask::benchmark::create_pods_in_parallel(&plane, &chunks)?;
    eprintln!(
        "bench: {namespaces} namespaces and {} pods written after {:.0?}",
        namespaces * pods_each,
        started.elapsed()
    );
    let kubeconfig = runner_kubeconfig(&plane)?;
    let (figures, stdout) = measure(&kubeconfig, &["status", "-A", "-o", "json"])?;
    let rows: serde_json::Value = serde_json::from_str(&stdout).context("status output")?;
    println!("status -A: {} namespaces reported", rows.as_array().map_or(0, Vec::len));
    print_figures(&figures, &requests(&plane)?);
    Ok(())
}

/// Runs the release binary under `/usr/bin/time -v`: `(time's figures, stdout)`.
fn measure(kubeconfig: &Path, args: &[&str]) -> Result<(BTreeMap<String, String>, String)> {
    let binary = repo_root().join("target/release/kubectl-meshmigrate");
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(&binary)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .context("cannot run /usr/bin/time")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let figures: BTreeMap<String, String> = stderr
        .lines()
        .filter_map(|l| l.trim().rsplit_once(": "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    if !out.status.success() {
        // The report says why (pods off target, proxies not proven): show it too.
        let stdout = String::from_utf8_lossy(&out.stdout);
        bail!("kubectl-meshmigrate {} failed: {stderr}\nits report:\n{stdout}", args.join(" "));
    }
    Ok((figures, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// The runner's requests by verb and resource, from the audit log (written asynchronously).
fn requests(plane: &ControlPlane) -> Result<BTreeMap<String, usize>> {
    std::thread::sleep(Duration::from_secs(3));
    let mut counts = BTreeMap::new();
    let logs = std::fs::read_dir(plane.dir.join("logs"))?;
    for entry in logs {
        let path = entry?.path();
        if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("audit")) {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if event["user"]["username"] != RUNNER || event["stage"] != "ResponseComplete" {
                continue;
            }
            let resource = event["objectRef"]["resource"].as_str().unwrap_or("-");
            let verb = event["verb"].as_str().unwrap_or("-");
            *counts.entry(format!("{verb} {resource}")).or_default() += 1;
        }
    }
    Ok(counts)
}

fn print_figures(figures: &BTreeMap<String, String>, requests: &BTreeMap<String, usize>) {
    for key in
        ["Elapsed (wall clock) time (h:mm:ss or m:ss)", "Maximum resident set size (kbytes)", "User time (seconds)"]
    {
        println!("  {key}: {}", figures.get(key).map_or("?", String::as_str));
    }
    println!("  API requests: {}", requests.values().sum::<usize>());
    for (what, count) in requests {
        println!("    {count:6}  {what}");
    }
}
