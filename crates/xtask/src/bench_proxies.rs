//! `cargo xtask bench proxy-status`: `kubectl meshcheck proxy-status` with many connected proxies
//! over two revisions, on Tier C (real istiods), beside the floor: the same debug requests (one
//! port-forwarded `GET /debug/syncz` per istiod pod, all at once) read raw, in the same run.
//! Not a test: it prints figures and writes them into BENCHMARKS.md.

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use meshkit::args::KubeArgs;
use meshkit::cluster::Cluster;
use meshtest::{ControlPlane, Options, RealFixture, repo_root};
use xtask::benchmark::timed;

const BEGIN: &str = "<!-- proxy-status:begin (written by `cargo xtask bench proxy-status`) -->";
const END: &str = "<!-- proxy-status:end -->";

/// `proxies` connected proxies, half on each revision's istiod; `runs` timed runs of each side.
pub fn run(proxies: usize, runs: usize) -> Result<()> {
    let plane = ControlPlane::start(&Options { nodes: 1, real_istio: true, ..Default::default() })?;
    RealFixture::install(&plane, 2)?;
    let fleet = start_fleet(&plane, proxies)?;
    let outcome = measure(&plane, proxies, runs);
    for mut child in fleet {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = outcome?;
    print!("{text}");
    let path = repo_root().join("BENCHMARKS.md");
    let current = std::fs::read_to_string(&path)?;
    let block = format!("{BEGIN}\n{text}{END}");
    let updated = match (current.find(BEGIN), current.find(END)) {
        (Some(a), Some(b)) => format!("{}{block}{}", &current[..a], &current[b + END.len()..]),
        _ => format!("{}\n\n## Live proxy status\n\n{block}\n", current.trim_end()),
    };
    std::fs::write(&path, updated)?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// One `xdsproxy -count N` per istiod, on its plaintext xDS port.
fn start_fleet(plane: &ControlPlane, proxies: usize) -> Result<Vec<Child>> {
    let binary = plane.tools.xds_proxy()?;
    let istiods = plane.istiods();
    if istiods.len() != 2 {
        bail!("expected two istiods, the kubelet reports {istiods:?}");
    }
    let mut fleet = Vec::new();
    for istiod in &istiods {
        let port = istiod.ports.get(&15010).context("istiod without a plaintext xDS port")?;
        let revision = istiod.revision.clone().unwrap_or_default();
        let log = std::fs::File::create(plane.dir.join("logs").join(format!("bench-fleet-{revision}.log")))?;
        let meta = format!(
            r#"{{"ISTIO_VERSION":"{}","CLUSTER_ID":"Kubernetes","NAMESPACE":"bench","PROXY_CONFIG":{{}}}}"#,
            istiod.version
        );
        fleet.push(
            Command::new(&binary)
                .args([
                    format!("-address=127.0.0.1:{port}"),
                    format!("-node-id=sidecar~{{ip}}~bench-{revision}-{{i}}.bench~bench.svc.cluster.local"),
                    format!("-meta={meta}"),
                    format!("-count={}", proxies / 2),
                ])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?,
        );
    }
    Ok(fleet)
}

fn proxy_status(plane: &ControlPlane) -> Command {
    let mut cmd = Command::new(repo_root().join("target/release/kubectl-meshcheck"));
    cmd.args(["proxy-status", "-o", "json"]).env("KUBECONFIG", &plane.kubeconfig).env("HOME", &plane.dir);
    cmd
}

/// Waits until every proxy of the fleet is listed and synced.
fn wait_connected(plane: &ControlPlane, proxies: usize) -> Result<()> {
    let start = Instant::now();
    loop {
        let out = proxy_status(plane).output()?;
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let rows = doc["proxies"].as_array().cloned().unwrap_or_default();
        let synced = rows.iter().filter(|r| r["verdict"]["state"] == "external" && synced(r)).count();
        if synced >= proxies {
            eprintln!("xtask: {synced} bench proxies connected and synced after {:.1?}", start.elapsed());
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("only {synced} of {proxies} proxies synced after 5 minutes");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn synced(row: &serde_json::Value) -> bool {
    ["CDS", "LDS"].iter().all(|t| row["sync"][t]["state"] == "SYNCED")
}

/// The floor: the same requests, read to the last byte and not decoded; `(seconds, bytes)`.
fn raw_reads(plane: &ControlPlane, pods: &[String]) -> Result<(f64, usize)> {
    let args = KubeArgs { kubeconfig: Some(plane.kubeconfig.display().to_string()), ..KubeArgs::default() };
    let outcome = meshkit::cluster::block_on(async {
        let cluster = Cluster::connect(&args).await?;
        let started = Instant::now();
        let reads = pods.iter().map(|pod| {
            meshkit::kube::portforward::get(
                &cluster,
                "istio-system",
                pod,
                meshkit::fetch::ISTIOD_DEBUG_PORT,
                "/debug/syncz",
            )
        });
        let bodies = futures::future::join_all(reads).await;
        Ok((started.elapsed().as_secs_f64(), bodies))
    })?;
    let (seconds, bodies) = outcome;
    let mut bytes = 0;
    for body in bodies {
        bytes += body.context("raw read of /debug/syncz")?.len();
    }
    Ok((seconds, bytes))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn measure(plane: &ControlPlane, proxies: usize, runs: usize) -> Result<String> {
    wait_connected(plane, proxies)?;
    let pods: Vec<String> = plane.istiods().iter().map(|i| i.name.clone()).collect();
    let (mut ours, mut memory, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for _ in 0..runs {
        let (seconds, mib) = timed(&proxy_status(plane), &[0])?;
        ours.push(seconds);
        memory.push(mib);
        let (seconds, read) = raw_reads(plane, &pods)?;
        floor.push(seconds);
        bytes = read;
    }
    let (ours_median, floor_median) = (median(ours.clone()), median(floor.clone()));
    let mut text = String::new();
    let _ = writeln!(
        text,
        "`kubectl meshcheck proxy-status -o json` with {proxies} connected proxies, half on each of two real istiods \
         (1.30.3 and 1.31.1), on Tier C. *Floor*: the same two port-forwarded `GET /debug/syncz` requests, sent at \
         once and read raw in the same run ({:.1} MB in all). Median of {runs} runs (min–max); peak RSS of the \
         command. Release build, 2 shared cores; measured {}.\n",
        bytes as f64 / 1e6,
        today()
    );
    let _ = writeln!(text, "| proxies | ours | floor | ours ÷ floor | istiod reads | peak MiB |");
    let _ = writeln!(text, "|---|---|---|---|---|---|");
    let range = |v: &[f64]| {
        let (lo, hi) = v.iter().fold((f64::MAX, 0.0_f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        format!("{lo:.2}–{hi:.2}")
    };
    let _ = writeln!(
        text,
        "| {proxies} | {ours_median:.2}s ({}) | {floor_median:.2}s ({}) | {:.2}× | {} port-forwards (one per istiod pod) | {:.0} |",
        range(&ours),
        range(&floor),
        ours_median / floor_median,
        pods.len(),
        memory.iter().copied().fold(0.0, f64::max)
    );
    Ok(text)
}

fn today() -> String {
    let out = Command::new("date").arg("+%F").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    out.unwrap_or_default()
}
