//! `cargo xtask bench backup [--objects N]`: a benchmark, not a test. On a throw-away control plane
//! with the Istio fixture and N Istio custom resources, it measures `kubectl meshbackup create`
//! against listing the same kinds with kubectl, restore throughput, and peak memory (through
//! `/usr/bin/time -v`), with the release build. Figures go to stdout.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use meshtest::{ControlPlane, Fixture, Options, repo_root};

/// Kinds written, with their share of the objects (out of 10).
const KINDS: &[(&str, &str, usize)] = &[
    ("virtualservices.networking.istio.io", "VirtualService", 4),
    ("destinationrules.networking.istio.io", "DestinationRule", 3),
    ("serviceentries.networking.istio.io", "ServiceEntry", 1),
    ("authorizationpolicies.security.istio.io", "AuthorizationPolicy", 1),
    ("sidecars.networking.istio.io", "Sidecar", 1),
];
const NAMESPACES: usize = 20;

fn object(kind: &str, namespace: &str, name: &str) -> String {
    let spec = match kind {
        "VirtualService" => format!(
            "  hosts: [{name}]\n  http:\n  - match: [{{uri: {{prefix: /v2}}}}]\n    route: [{{destination: {{host: {name}, subset: v2}}, weight: 90}}, {{destination: {{host: {name}, subset: v1}}, weight: 10}}]\n    timeout: 5s\n    retries: {{attempts: 3, perTryTimeout: 2s}}\n"
        ),
        "DestinationRule" => format!(
            "  host: {name}\n  trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: 100}}}}, tls: {{mode: ISTIO_MUTUAL}}}}\n  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]\n"
        ),
        "ServiceEntry" => format!(
            "  hosts: [{name}.example.com]\n  ports: [{{number: 443, name: https, protocol: TLS}}]\n  resolution: DNS\n  location: MESH_EXTERNAL\n"
        ),
        "AuthorizationPolicy" => format!(
            "  selector: {{matchLabels: {{app: {name}}}}}\n  action: ALLOW\n  rules: [{{from: [{{source: {{principals: [cluster.local/ns/{namespace}/sa/{name}]}}}}], to: [{{operation: {{methods: [GET]}}}}]}}]\n"
        ),
        _ => format!("  workloadSelector: {{labels: {{app: {name}}}}}\n  egress: [{{hosts: [./*, istio-system/*]}}]\n"),
    };
    let group = if kind == "AuthorizationPolicy" { "security.istio.io" } else { "networking.istio.io" };
    format!(
        "apiVersion: {group}/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{spec}---\n"
    )
}

fn manifest(total: usize) -> String {
    let mut out = String::new();
    for n in 0..NAMESPACES {
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench-{n:02}\n  labels: {{istio.io/rev: 1-30-3}}\n---\n"
        );
    }
    let mut index = 0;
    for (_, kind, share) in KINDS {
        for _ in 0..total * share / 10 {
            let namespace = format!("bench-{:02}", index % NAMESPACES);
            out.push_str(&object(kind, &namespace, &format!("svc-{index:05}")));
            index += 1;
        }
    }
    out
}

fn measure(label: &str, cmd: &mut Command) -> Result<(f64, f64)> {
    xtask::benchmark::timed(cmd, &[0]).with_context(|| format!("{label} failed"))
}

pub fn run(total: usize) -> Result<()> {
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(repo_root())
        .args(["build", "--release", "--quiet", "--bin", "kubectl-meshbackup", "-p", "meshbackup"])
        .status()?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    let binary = repo_root().join("target/release/kubectl-meshbackup");
    let plane = ControlPlane::start(&Options::default())?;
    Fixture::install(&plane, false)?;
    let started = Instant::now();
    plane.apply(&manifest(total))?;
    eprintln!("bench: {total} custom resources written in {:.1?}", started.elapsed());
    let dir = tempfile::tempdir()?;
    let archive = dir.path().join("bench.tar.gz");
    let plugin = |args: &[&str]| {
        let mut cmd = meshtest::plugin(binary.to_str().unwrap(), &plane.kubeconfig);
        cmd.args(args);
        cmd
    };
    let mut results = Vec::new();
    let mut record = |line: String| {
        eprintln!("bench: {line}");
        results.push(line);
    };
    let (seconds, mib) = measure("create", &mut plugin(&["create", archive.to_str().unwrap(), "--include-secrets"]))?;
    let size = std::fs::metadata(&archive)?.len() as f64 / 1024.0 / 1024.0;
    record(format!("meshbackup create: {seconds:.2} s, peak {mib:.0} MiB, archive {size:.1} MiB"));
    let (mut kubectl_seconds, mut kubectl_peak) = (0.0, 0.0f64);
    for (resource, _, _) in KINDS {
        let mut cmd = plane.kubectl();
        cmd.args(["get", resource, "-A", "-o", "yaml"]);
        let (seconds, mib) = measure("kubectl get", &mut cmd)?;
        kubectl_seconds += seconds;
        kubectl_peak = kubectl_peak.max(mib);
    }
    record(format!(
        "kubectl get <each of {} kinds> -A -o yaml: {kubectl_seconds:.2} s in total, peak {kubectl_peak:.0} MiB",
        KINDS.len()
    ));
    let (seconds, mib) = measure("inspect", &mut plugin(&["inspect", archive.to_str().unwrap()]))?;
    record(format!("meshbackup inspect (verify every checksum): {seconds:.2} s, peak {mib:.0} MiB"));
    let (seconds, mib) = measure("diff", &mut plugin(&["diff", archive.to_str().unwrap()]))?;
    record(format!("meshbackup diff (no differences): {seconds:.2} s, peak {mib:.0} MiB"));

    let resources: Vec<&str> = KINDS.iter().map(|(r, _, _)| *r).collect();
    // kubectl's own --wait can miss the last deletion of thousands; poll instead.
    plane.kubectl_ok(&["delete", &resources.join(","), "--all", "-A", "--wait=false"])?;
    while !plane.kubectl_ok(&["get", &resources.join(","), "-A", "-o", "name"])?.trim().is_empty() {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let objects = count_objects(&binary, &plane.kubeconfig, &archive)?;
    let (seconds, mib) = measure("restore", &mut plugin(&["restore", archive.to_str().unwrap(), "--yes"]))?;
    record(format!(
        "meshbackup restore ({total} custom resources created, {objects} objects in all): {seconds:.2} s = {:.0} objects/s, peak {mib:.0} MiB",
        objects as f64 / seconds
    ));
    let (seconds, mib) = measure("restore again", &mut plugin(&["restore", archive.to_str().unwrap(), "--yes"]))?;
    record(format!(
        "meshbackup restore rerun (everything unchanged): {seconds:.2} s = {:.0} objects/s, peak {mib:.0} MiB",
        objects as f64 / seconds
    ));
    println!("{total} Istio custom resources in {NAMESPACES} namespaces (release build, 2 shared cores):");
    for line in &results {
        println!("  {line}");
    }
    Ok(())
}

fn count_objects(binary: &Path, kubeconfig: &Path, archive: &Path) -> Result<usize> {
    let out = meshtest::plugin(binary.to_str().unwrap(), kubeconfig)
        .args(["inspect", archive.to_str().unwrap(), "-o", "json"])
        .output()?;
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    summary["objects"].as_u64().map(|n| n as usize).context("inspect gave no object count")
}
