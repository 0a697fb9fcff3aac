//! `cargo xtask bench`: every read command on a synthetic mesh in the real test control plane,
//! side by side with the floor (the same lists read raw, as JSON and as protobuf), kubectl listing
//! the same collections, and istioctl where it answers the same question. Wall time, peak memory (`/usr/bin/time -v`) and
//! the API requests each made, counted in the apiserver's own audit log by user.
//!
//! One cluster grows through the sizes asked for, so the cost of each size is measured on the
//! same server.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Result, bail};
use meshtest::{CANARY, ControlPlane, Fixture, Options as PlaneOptions, STABLE, realistic_pod};
use serde::Serialize;

mod audit;
mod measure;
mod report;

use audit::{Audit, ListCall};
pub use measure::timed;
use measure::timed_output;
pub use report::{BEGIN, END, markdown, write};

/// Pods and Istio custom resources per namespace.
const PODS_PER_NAMESPACE: usize = 10;
const RESOURCES_PER_NAMESPACE: usize = 2;
/// The page size our plugins list with (`meshkit::cluster::PAGE_SIZE`), given to kubectl too.
const PAGE_SIZE: u32 = meshkit::cluster::PAGE_SIZE;

#[derive(Debug, Clone)]
pub struct Options {
    /// Namespaces per size, ascending.
    pub scales: Vec<usize>,
    pub runs: usize,
    /// Where the plugin binaries are (`target/release` for the bench, `target/debug` for the smoke).
    pub binaries: PathBuf,
    /// istioctl, when it should be measured too.
    pub istioctl: Option<PathBuf>,
    /// Where `BENCHMARKS.md` and `benchmarks.json` go.
    pub out: PathBuf,
}

/// One measured process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    pub seconds: f64,
    pub peak_mib: f64,
    pub requests: usize,
    /// Bytes of the list responses (raw floors only).
    pub bytes: u64,
}

/// Several runs of one side of a comparison.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub median_seconds: f64,
    pub min_seconds: f64,
    pub max_seconds: f64,
    pub peak_mib: f64,
    pub requests: usize,
    pub bytes: u64,
}

impl Figures {
    fn of(samples: &[Sample]) -> Figures {
        let mut seconds: Vec<f64> = samples.iter().map(|s| s.seconds).collect();
        seconds.sort_by(f64::total_cmp);
        Figures {
            median_seconds: seconds.get(seconds.len() / 2).copied().unwrap_or_default(),
            min_seconds: seconds.first().copied().unwrap_or_default(),
            max_seconds: seconds.last().copied().unwrap_or_default(),
            peak_mib: samples.iter().map(|s| s.peak_mib).fold(0.0, f64::max),
            requests: samples.first().map_or(0, |s| s.requests),
            bytes: samples.first().map_or(0, |s| s.bytes),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub command: String,
    pub namespaces: usize,
    pub pods: usize,
    pub custom_resources: usize,
    pub ours: Figures,
    /// The same lists read raw as JSON, and as protobuf (`raw-list`): the physical floor.
    pub json_floor: Option<Figures>,
    pub protobuf_floor: Option<Figures>,
    /// kubectl listing the same collections: what a user would otherwise run.
    pub kubectl: Option<Figures>,
    pub istioctl: Option<(String, Figures)>,
}

/// A command of ours, and istioctl's answer to the same question.
struct Case {
    name: &'static str,
    binary: &'static str,
    args: &'static [&'static str],
    istioctl: Option<&'static [&'static str]>,
    /// Whether exit code 1 (findings) is a normal outcome.
    findings_exit: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "revtag list",
        binary: "kubectl-revtag",
        args: &["list", "-o", "json"],
        istioctl: Some(&["tag", "list"]),
        findings_exit: false,
    },
    Case {
        name: "revtag revisions",
        binary: "kubectl-revtag",
        args: &["revisions", "-o", "json"],
        istioctl: None,
        findings_exit: false,
    },
    Case {
        name: "meshmigrate status -A",
        binary: "kubectl-meshmigrate",
        args: &["status", "-A", "-o", "json"],
        istioctl: None,
        findings_exit: false,
    },
    Case {
        name: "meshcheck precheck",
        binary: "kubectl-meshcheck",
        args: &["precheck", "--to-version", "1.31", "-o", "json"],
        istioctl: Some(&["x", "precheck"]),
        findings_exit: true,
    },
    Case {
        name: "meshcheck version",
        binary: "kubectl-meshcheck",
        args: &["version", "-o", "json"],
        istioctl: Some(&["version"]),
        findings_exit: false,
    },
    Case {
        name: "meshbackup create",
        binary: "kubectl-meshbackup",
        args: &["create", "--force", "{backup}"],
        istioctl: None,
        findings_exit: false,
    },
    Case {
        name: "meshbackup inspect",
        binary: "kubectl-meshbackup",
        args: &["inspect", "{backup}", "-o", "json"],
        istioctl: None,
        findings_exit: false,
    },
];

/// Everything at one size: writes the objects of namespaces `from..to`.
fn grow(plane: &ControlPlane, from: usize, to: usize) -> Result<()> {
    let labels =
        ["istio-injection: enabled", "istio.io/rev: prod-stable", "istio.io/rev: prod-canary", "istio.io/rev: 1-31-1"];
    let mut namespaces = vec![String::new(); 4];
    let mut objects = vec![String::new(); 4];
    let mut pods = vec![String::new(); 4];
    for n in from..to {
        let name = format!("bench-{n:05}");
        let _ = write!(
            namespaces[n % 4],
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{{}}}\n---\n",
            labels[n % labels.len()]
        );
        let revision = if n % 2 == 0 { STABLE } else { CANARY };
        for p in 0..PODS_PER_NAMESPACE {
            pods[(n + p) % 4].push_str(&realistic_pod(&name, &format!("web-{p}"), revision));
        }
        for r in 0..RESOURCES_PER_NAMESPACE {
            let _ = write!(
                objects[(n + r) % 4],
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: route-{r}, namespace: {name}}}\n\
                 spec: {{hosts: [web-{r}], http: [{{route: [{{destination: {{host: web-{r}}}}}]}}]}}\n---\n"
            );
        }
    }
    create_in_parallel(plane, &namespaces)?;
    create_in_parallel(plane, &objects)?;
    create_pods_in_parallel(plane, &pods)
}

/// Pods as the apiserver holds them for a real cluster: created under kube-controller-manager's
/// field manager (the one its managedFields already name), then given their status as kwok does.
pub fn create_pods_in_parallel(plane: &ControlPlane, chunks: &[String]) -> Result<()> {
    run_in_parallel(plane, chunks, &["create", "--field-manager=kube-controller-manager"])?;
    run_in_parallel(plane, chunks, &["replace", "--subresource=status", "--field-manager=kwok"])
}

/// Creates the objects of each chunk (multi-document YAML) with one kubectl per chunk, at once.
pub fn create_in_parallel(plane: &ControlPlane, chunks: &[String]) -> Result<()> {
    run_in_parallel(plane, chunks, &["create"])
}

fn run_in_parallel(plane: &ControlPlane, chunks: &[String], verb: &[&str]) -> Result<()> {
    let mut children = Vec::new();
    for (i, chunk) in chunks.iter().enumerate().filter(|(_, c)| !c.is_empty()) {
        let path = plane.dir.join(format!("bench-chunk-{i}.yaml"));
        fs::write(&path, chunk)?;
        children.push(
            plane.kubectl().args(verb).arg("-f").arg(&path).stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?,
        );
    }
    for child in children {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("kubectl {} failed: {}", verb.join(" "), String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(())
}

struct Bench<'a> {
    plane: &'a ControlPlane,
    options: &'a Options,
    audit: Audit,
    backup: PathBuf,
    run: usize,
}

impl Bench<'_> {
    /// A kubeconfig for a user of its own, so that its requests can be counted.
    fn user(&mut self, role: &str) -> Result<(String, PathBuf)> {
        self.run += 1;
        let name = format!("bench-{role}-{}", self.run);
        Ok((name.clone(), self.plane.user_kubeconfig(&name, &["bench"])?))
    }

    fn sample(
        &mut self,
        role: &str,
        build: impl Fn(&Path) -> Command,
        allowed: &[i32],
    ) -> Result<(Sample, BTreeSet<ListCall>)> {
        let (user, kubeconfig) = self.user(role)?;
        self.audit.mark();
        let (seconds, peak_mib) = timed(&build(&kubeconfig), allowed)?;
        let (requests, lists) = self.audit.since_mark(&user)?;
        Ok((Sample { seconds, peak_mib, requests, bytes: 0 }, lists))
    }

    fn case(&mut self, case: &Case, size: (usize, usize, usize)) -> Result<Row> {
        let binary = self.options.binaries.join(case.binary);
        let backup = self.backup.display().to_string();
        let args: Vec<String> = case.args.iter().map(|a| a.replace("{backup}", &backup)).collect();
        let allowed: &[i32] = if case.findings_exit { &[0, 1] } else { &[0] };
        let mut ours = Vec::new();
        let mut lists = BTreeSet::new();
        for _ in 0..self.options.runs {
            let (sample, seen) = self.sample("ours", |kc| plugin(&binary, &args, kc), allowed)?;
            ours.push(sample);
            lists = seen;
        }
        let (mut json, mut protobuf, mut kubectl) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..if lists.is_empty() { 0 } else { self.options.runs } {
            json.push(self.raw_floor(&lists, "json")?);
            protobuf.push(self.raw_floor(&lists, "protobuf")?);
            kubectl.push(self.floor(&lists)?);
        }
        let figures = |samples: Vec<Sample>| (!samples.is_empty()).then(|| Figures::of(&samples));
        let istioctl = match (case.istioctl, &self.options.istioctl) {
            (Some(words), Some(istioctl)) => {
                let mut samples = Vec::new();
                for _ in 0..self.options.runs {
                    let build = |kc: &Path| {
                        let mut cmd = Command::new(istioctl);
                        cmd.args(words).arg("--kubeconfig").arg(kc).env("HOME", std::env::temp_dir());
                        cmd
                    };
                    samples.push(self.sample("istioctl", build, &[0, 1])?.0);
                }
                Some((format!("istioctl {}", words.join(" ")), Figures::of(&samples)))
            }
            _ => None,
        };
        Ok(Row {
            command: case.name.into(),
            namespaces: size.0,
            pods: size.1,
            custom_resources: size.2,
            ours: Figures::of(&ours),
            json_floor: figures(json),
            protobuf_floor: figures(protobuf),
            kubectl: figures(kubectl),
            istioctl,
        })
    }

    /// kubectl listing the same collections with the same page size, all at once (as our plugins
    /// send their lists together); peak memory is the sum of the kubectl processes.
    fn floor(&mut self, lists: &BTreeSet<ListCall>) -> Result<Sample> {
        let (user, kubeconfig) = self.user("floor")?;
        self.audit.mark();
        let kubectl = self.plane.tools.kubectl();
        let started = Instant::now();
        let handles: Vec<_> = lists
            .iter()
            .map(|list| {
                let mut cmd = Command::new(&kubectl);
                let resource = if list.group.is_empty() {
                    list.resource.clone()
                } else {
                    format!("{}.{}.{}", list.resource, list.version, list.group)
                };
                cmd.arg("get").arg(resource).args(["-o", "json", &format!("--chunk-size={PAGE_SIZE}")]);
                match &list.namespace {
                    Some(ns) => cmd.args(["-n", ns]),
                    None => cmd.arg("-A"),
                };
                if let Some(selector) = &list.selector {
                    cmd.args(["-l", selector]);
                }
                cmd.env("KUBECONFIG", &kubeconfig);
                std::thread::spawn(move || timed(&cmd, &[0]))
            })
            .collect();
        let mut peak = 0.0;
        for handle in handles {
            let (_, mib) = handle.join().map_err(|_| anyhow::anyhow!("a kubectl thread panicked"))??;
            peak += mib;
        }
        let seconds = started.elapsed().as_secs_f64();
        let (requests, _) = self.audit.since_mark(&user)?;
        Ok(Sample { seconds, peak_mib: peak, requests, bytes: 0 })
    }

    /// The same lists, paginated alike and sent together, read to the last byte without decoding
    /// (`raw-list`, a process of its own like ours).
    fn raw_floor(&mut self, lists: &BTreeSet<ListCall>, encoding: &str) -> Result<Sample> {
        let (user, kubeconfig) = self.user(&format!("raw-{encoding}"))?;
        let mut cmd = Command::new(self.options.binaries.join("raw-list"));
        cmd.args(["--encoding", encoding, "--page", &PAGE_SIZE.to_string()]).env("KUBECONFIG", &kubeconfig);
        for list in lists {
            let part = |v: &Option<String>| v.clone().unwrap_or_default();
            cmd.arg(format!(
                "{}|{}|{}|{}|{}",
                list.resource,
                list.group,
                list.version,
                part(&list.namespace),
                part(&list.selector)
            ));
        }
        self.audit.mark();
        let (seconds, peak_mib, stdout) = timed_output(&cmd)?;
        let (requests, _) = self.audit.since_mark(&user)?;
        let bytes = stdout.split_whitespace().next().and_then(|b| b.parse().ok()).unwrap_or(0);
        Ok(Sample { seconds, peak_mib, requests, bytes })
    }
}

fn plugin(binary: &Path, args: &[String], kubeconfig: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args(args).env("KUBECONFIG", kubeconfig).env("NO_COLOR", "1");
    cmd
}

/// Builds the mesh size by size and measures every case at each size.
pub fn run(options: &Options) -> Result<Vec<Row>> {
    let started = Instant::now();
    let plane = ControlPlane::start(&PlaneOptions::default())?;
    Fixture::install(&plane, false)?;
    plane.kubectl_ok(&["create", "clusterrolebinding", "bench", "--clusterrole=cluster-admin", "--group=bench"])?;
    let mut bench = Bench {
        plane: &plane,
        options,
        audit: Audit::new(&plane),
        backup: plane.dir.join("bench-backup.tar.gz"),
        run: 0,
    };
    let mut rows = Vec::new();
    let mut built = 0;
    for &namespaces in &options.scales {
        let building = Instant::now();
        grow(&plane, built, namespaces)?;
        built = namespaces;
        let size = (namespaces, namespaces * PODS_PER_NAMESPACE, namespaces * RESOURCES_PER_NAMESPACE);
        eprintln!(
            "bench: {} namespaces, {} pods, {} VirtualServices written in {:.0?}",
            size.0,
            size.1,
            size.2,
            building.elapsed()
        );
        for case in CASES {
            let row = bench.case(case, size)?;
            eprintln!(
                "bench: {:<24} {:>7.2}s {:>7.1} MiB {:>5} requests",
                row.command, row.ours.median_seconds, row.ours.peak_mib, row.ours.requests
            );
            rows.push(row);
        }
    }
    eprintln!("bench: done in {:.0?}", started.elapsed());
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::audit::decode;
    use super::*;

    #[test]
    fn selectors_are_decoded_from_request_uris() {
        assert_eq!(decode("istio.io%2Frev%2C%21istio.io%2Ftag"), "istio.io/rev,!istio.io/tag");
        assert_eq!(decode("a%3Db"), "a=b");
        assert_eq!(decode("plain"), "plain");
    }

    #[test]
    fn figures_take_median_min_max_and_the_worst_memory() {
        let sample = |s: f64, m: f64| Sample { seconds: s, peak_mib: m, requests: 7, bytes: 0 };
        let f = Figures::of(&[sample(3.0, 10.0), sample(1.0, 30.0), sample(2.0, 20.0)]);
        assert_eq!((f.median_seconds, f.min_seconds, f.max_seconds, f.peak_mib, f.requests), (2.0, 1.0, 3.0, 30.0, 7));
    }
}
