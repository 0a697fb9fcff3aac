//! The canary upgrade with the plugins, on Tier C (real istiod, real Helm releases): what
//! `cargo xtask demo` shows and what its test runs. Each step is a command a user types; a step
//! that does not exit as expected stops the walkthrough with its output.

use std::cell::RefCell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use meshtest::{ControlPlane, NEW_ISTIO, OLD_ISTIO, RealFixture};

/// How a walkthrough shows its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Every command and its output (the demo).
    Everything,
    /// Only a failing step's output (tests).
    Failures,
}

/// A terminal session on a Tier C cluster: the plugins, kubectl and helm on PATH, and the
/// `MESHTEST_*` variables `cargo xtask cluster up --real` prints.
pub struct Session<'a> {
    pub plane: &'a ControlPlane,
    pub fixture: &'a RealFixture,
    path: OsString,
    show: Show,
    transcript: RefCell<Vec<Step>>,
}

/// One step as a user sees it: the command as they would type it, and what it printed.
#[derive(Debug, Clone)]
pub struct Step {
    pub title: String,
    pub command: String,
    pub stdout: String,
}

/// The command as a user types it: Istio's charts from its Helm repository (`istio/base`,
/// `istio/istiod` at a version) where this cluster uses each build's stamped charts, and without
/// the values file that only turns off the autoscaler here.
pub fn as_typed(line: &str) -> String {
    line.replace(" -f \"$MESHTEST_HELM_VALUES\"", "")
        .replace(
            "\"$MESHTEST_NEW_CHARTS/istio-control/istio-discovery\"",
            &format!("istio/istiod --version {}", NEW_ISTIO.version),
        )
        .replace(
            "\"$MESHTEST_OLD_CHARTS/istio-control/istio-discovery\"",
            &format!("istio/istiod --version {}", OLD_ISTIO.version),
        )
        .replace("\"$MESHTEST_NEW_CHARTS/base\"", &format!("istio/base --version {}", NEW_ISTIO.version))
        .replace("\"$MESHTEST_OLD_CHARTS/base\"", &format!("istio/base --version {}", OLD_ISTIO.version))
        .replace("\"$MESHTEST_NEW_CHARTS/gateway\"", &format!("istio/gateway --version {}", NEW_ISTIO.version))
}

/// What a step printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl<'a> Session<'a> {
    pub fn new(plane: &'a ControlPlane, fixture: &'a RealFixture, plugins: &Path, show: Show) -> Result<Self> {
        let mut path = vec![plugins.to_path_buf()];
        path.extend(std::env::split_paths(&plane.tools.path_env()));
        Ok(Session { plane, fixture, path: std::env::join_paths(path)?, show, transcript: RefCell::default() })
    }

    /// The `export …` lines of `cargo xtask cluster up --real`.
    pub fn exports(plane: &ControlPlane, fixture: &RealFixture) -> Vec<(String, String)> {
        vec![
            ("KUBECONFIG".into(), plane.kubeconfig.display().to_string()),
            ("PATH".into(), plane.tools.path_env().to_string_lossy().into_owned()),
            ("MESHTEST_OLD_VERSION".into(), OLD_ISTIO.version.into()),
            ("MESHTEST_NEW_VERSION".into(), NEW_ISTIO.version.into()),
            ("MESHTEST_OLD_CHARTS".into(), fixture.old_charts.display().to_string()),
            ("MESHTEST_NEW_CHARTS".into(), fixture.new_charts.display().to_string()),
            ("MESHTEST_HELM_VALUES".into(), fixture.helm_values.display().to_string()),
        ]
    }

    fn command(&self, line: &str) -> Command {
        let mut cmd = Command::new("sh");
        // In the cluster's directory, so that files the steps write stay there.
        cmd.args(["-c", line]).current_dir(&self.plane.dir).env("PATH", &self.path).env("NO_COLOR", "1");
        for (key, value) in Self::exports(self.plane, self.fixture) {
            if key != "PATH" {
                cmd.env(key, value);
            }
        }
        cmd.envs(self.plane.helm_env());
        cmd
    }

    /// Runs `line` in a shell; it must exit with `expect`. The transcript keeps its stdout.
    pub fn step(&self, title: &str, line: &str, expect: i32) -> Result<Output> {
        self.record(title, line, expect, false)
    }

    /// As [`Session::step`], with stderr in the transcript too: a refusal and its hint, or the
    /// warnings that tell what to do next.
    pub fn step_said(&self, title: &str, line: &str, expect: i32) -> Result<Output> {
        self.record(title, line, expect, true)
    }

    fn record(&self, title: &str, line: &str, expect: i32, with_stderr: bool) -> Result<Output> {
        if self.show == Show::Everything {
            eprintln!("\n\x1b[1m$ {line}\x1b[0m   # {title}");
        }
        let out = self.command(line).output().with_context(|| format!("cannot run {line}"))?;
        let output = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if self.show == Show::Everything || output.code != expect {
            print!("{}", output.stdout);
            eprint!("{}", output.stderr);
        }
        if output.code != expect {
            bail!("`{line}` exited {} (expected {expect})", output.code);
        }
        if !title.is_empty() {
            self.transcript.borrow_mut().push(Step {
                title: title.to_string(),
                command: as_typed(line),
                stdout: if with_stderr { format!("{}{}", output.stdout, output.stderr) } else { output.stdout.clone() },
            });
        }
        Ok(output)
    }

    /// Every titled step so far.
    pub fn transcript(&self) -> Vec<Step> {
        self.transcript.borrow().clone()
    }

    /// Waits until `revision`'s istiod serves (as `kubectl rollout status` would, if kwok's pods
    /// knew when istiod is ready).
    pub fn wait_serving(&self, revision: &str) -> Result<()> {
        if self.show == Show::Everything {
            eprintln!("\n# waiting for istiod-{revision} to serve and patch its webhooks' caBundle");
        }
        self.plane.wait_istiods_ready(&[revision], Duration::from_secs(120))?;
        // And what a user waits for, so that tables show it ready.
        let rollout = format!("kubectl rollout status deployment/istiod-{revision} -n istio-system --timeout=60s");
        let out = self.command(&rollout).output()?;
        if !out.status.success() {
            bail!("{rollout}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }
}

/// Act one: from one revision (1.30) to the next (1.31), ending with one revision and a green
/// verify.
pub fn upgrade(s: &Session) -> Result<()> {
    let (old, new) = (OLD_ISTIO.revision(), NEW_ISTIO.revision());
    let backup = BACKUP;
    s.step("the installation: one revision, installed with Helm", "helm list -n istio-system", 0)?;
    s.step("revisions, tags and the namespaces on each (every way users label namespaces)", "kubectl revtag list", 0)?;
    s.step(
        "before the canary: is it safe?",
        &format!("kubectl meshcheck precheck --to-version 1.31 --revision {new}"),
        0,
    )?;
    s.step(
        "back up the installation first, CA included",
        &format!("kubectl meshbackup create {backup} --include-secrets --force"),
        0,
    )?;
    s.step(
        "the new version's CRDs first (Istio's Helm upgrade order)",
        "helm upgrade --hide-notes istio-base \"$MESHTEST_NEW_CHARTS/base\" -n istio-system --reuse-values",
        0,
    )?;
    s.step(
        "install the canary revision from the new build",
        &format!("helm install --hide-notes istiod-{new} \"$MESHTEST_NEW_CHARTS/istio-control/istio-discovery\" -n istio-system -f \"$MESHTEST_HELM_VALUES\" --set revision={new}"),
        0,
    )?;
    s.wait_serving(&new)?;
    s.step("both revisions side by side", "kubectl revtag revisions", 0)?;
    s.step("a tag for the canary", &format!("kubectl revtag set prod-canary --revision {new}"), 0)?;
    s.step(
        "move a namespace to the canary tag; its pods are re-injected by the canary's istiod",
        "kubectl meshmigrate namespace shop-stable --to prod-canary --restart --wait --yes",
        0,
    )?;
    s.step(
        "the proof istioctl proxy-status gives: its new proxy is connected to the canary's istiod, and in sync",
        "kubectl meshcheck proxy-status shop-stable",
        0,
    )?;
    s.step_said(
        "the gateway is the gateway chart's Helm release: moving it here would be undone by its next upgrade",
        &format!("kubectl meshmigrate gateway istio-ingressgateway -n istio-ingress --to {new}"),
        1,
    )?;
    s.step(
        "so move it in place the Helm way, to the new chart and revision (Istio's Helm upgrade order)",
        &format!("helm upgrade --hide-notes istio-ingressgateway \"$MESHTEST_NEW_CHARTS/gateway\" -n istio-ingress --reuse-values --set revision={new}"),
        0,
    )?;
    wait_proxies_on(s, "istio-ingress", &new)?;
    s.step("the gateway's proxy is on the canary's istiod now", "kubectl meshcheck proxy-status istio-ingress", 0)?;
    s.step_said(
        "prod-stable is rendered by the old revision's Helm release: moving it behind Helm's back is refused",
        &format!("kubectl revtag set prod-stable --revision {new} --overwrite"),
        1,
    )?;
    s.step_said(
        "take it over: the release stops rendering it (a new Helm revision), so its upgrade or uninstall leaves it alone",
        &format!("kubectl revtag set prod-stable --revision {new} --overwrite --take-ownership"),
        0,
    )?;
    s.step_said(
        "move the default the same way; its validator belongs to istio-base, so revtag says how to move it with Helm",
        &format!("kubectl revtag set default --revision {new} --overwrite --take-ownership --yes"),
        0,
    )?;
    s.step(
        "the default validator follows the default, the Helm way",
        &format!("helm upgrade --hide-notes istio-base \"$MESHTEST_NEW_CHARTS/base\" -n istio-system --reuse-values --set defaultRevision={new}"),
        0,
    )?;
    s.step(
        "why a pod is stale: which webhook injects its namespace now, through which label and tag",
        "kubectl meshmigrate explain shop-tagged",
        0,
    )?;
    s.step(
        "restart what is now stale (namespaces on the default and on prod-stable)",
        "kubectl meshmigrate restart",
        0,
    )?;
    wait_no_stale(s)?;
    s.step("after the migration: everything on the canary, webhooks served", "kubectl meshcheck verify", 0)?;
    s.step("nothing uses the old revision any more", &format!("kubectl meshmigrate retire {old} --dry-run"), 0)?;
    s.step(
        "retire it: backed up, its objects deleted, then its Helm release, as helm uninstall does",
        &format!("kubectl meshmigrate retire {old} --backup retired-{old}.tar.gz --yes"),
        0,
    )?;
    s.step("one revision left", "kubectl revtag revisions", 0)?;
    s.step("releases", "helm list -n istio-system", 0)?;
    s.step("and verify is green again", "kubectl meshcheck verify", 0)?;
    Ok(())
}

/// Waits until no pod is stale and none is still terminating: `meshmigrate restart` only starts
/// rollouts, which the controllers and kwok finish shortly after.
pub fn settle(s: &Session) -> Result<()> {
    for _ in 0..240 {
        let status = s.command("kubectl meshmigrate status -o json").output()?;
        let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
        let stale: usize =
            rows.as_array().into_iter().flatten().map(|r| r["stalePods"].as_array().map_or(1, Vec::len)).sum();
        let pods = s.command("kubectl get pods -A -l app=web -o json").output()?;
        let pods: serde_json::Value = serde_json::from_slice(&pods.stdout).unwrap_or_default();
        let terminating =
            pods["items"].as_array().into_iter().flatten().any(|p| !p["metadata"]["deletionTimestamp"].is_null());
        // And every proxy connected to its revision's istiod (a new pod's connects a moment later).
        let live = s.command("kubectl meshcheck proxy-status -o json").output()?;
        let live: serde_json::Value = serde_json::from_slice(&live.stdout).unwrap_or_default();
        let synced =
            live["proxies"].as_array().is_some_and(|rows| rows.iter().all(|r| r["verdict"]["state"] == "synced"));
        if status.status.success() && stale == 0 && !terminating && synced {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    s.step("stale pods remain", "kubectl meshmigrate status", 0)?;
    bail!("pods were still stale, or terminating, two minutes after the restart")
}

/// Waits until every proxy of `namespace` is connected to an istiod of `revision` and synced (a
/// rollout the demo did not wait for, such as the gateway's `helm upgrade`).
fn wait_proxies_on(s: &Session, namespace: &str, revision: &str) -> Result<()> {
    for _ in 0..240 {
        let out = s.command(&format!("kubectl meshcheck proxy-status {namespace} -o json")).output()?;
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let rows = doc["proxies"].as_array().cloned().unwrap_or_default();
        let on = |r: &serde_json::Value| r["revision"] == revision && r["verdict"]["state"] == "synced";
        if !rows.is_empty() && rows.iter().all(on) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    s.step("proxies not on the new revision", &format!("kubectl meshcheck proxy-status {namespace}"), 0)?;
    bail!("the proxies of {namespace} were not on {revision} two minutes after its rollout")
}

fn wait_no_stale(s: &Session) -> Result<()> {
    settle(s)?;
    s.step("every pod carries the sidecar its namespace asks for", "kubectl meshmigrate status", 0).map(drop)
}

/// Act two, on a fresh cluster: install a canary, move a namespace, change your mind, remove
/// the canary; everything is back on the old revision.
pub fn rollback(s: &Session) -> Result<()> {
    let new = NEW_ISTIO.revision();
    s.step(
        "install a canary",
        &format!("helm install --hide-notes istiod-{new} \"$MESHTEST_NEW_CHARTS/istio-control/istio-discovery\" -n istio-system -f \"$MESHTEST_HELM_VALUES\" --set revision={new}"),
        0,
    )?;
    s.wait_serving(&new)?;
    s.step(
        "try it on one namespace",
        &format!("kubectl meshmigrate namespace shop-stable --to {new} --restart --wait --yes"),
        0,
    )?;
    s.step(
        "change your mind: the labels it had, its pods back on the old revision",
        "kubectl meshmigrate rollback shop-stable --restart --wait --yes",
        0,
    )?;
    s.step("nothing uses the canary", &format!("kubectl meshmigrate retire {new} --dry-run"), 0)?;
    s.step("remove it", &format!("helm uninstall istiod-{new} -n istio-system"), 0)?;
    s.step("back to one revision", "kubectl revtag revisions", 0)?;
    s.step("and verify is green", "kubectl meshcheck verify", 0)?;
    Ok(())
}

/// The walkthrough's backup, in the cluster's directory.
pub const BACKUP: &str = "before-canary.tar.gz";

/// Where the walkthrough's backup is.
pub fn backup_path(dir: &Path) -> PathBuf {
    dir.join(BACKUP)
}
