//! A real Kubernetes control plane on loopback: etcd + kube-apiserver with RBAC, and optionally
//! (Tier B) kube-controller-manager, kube-scheduler and kwok fake nodes so that Deployments really
//! get Running/Ready pods and rollouts really roll.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

mod clients;
mod nodes;
mod real;

use crate::pki::{self, Pki};
use crate::tools::Tools;

/// Which parts to start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Number of kwok fake nodes; zero means Tier A (no controllers, scheduler or nodes).
    pub nodes: usize,
    /// Keep the admission webhooks on. Off by default: Istio's injector and validator webhooks
    /// point at an istiod that does not run, and their `failurePolicy: Fail` would reject pods.
    pub admission_webhooks: bool,
    /// Run in this directory and leave everything running when dropped (`cargo xtask cluster up`).
    pub persistent_dir: Option<PathBuf>,
    /// Tier C: real istiod. Admission webhooks and the ServiceAccount admission plugin are on,
    /// the apiserver's cluster egress goes through the loopback-only proxy, and the
    /// `meshtest-kubelet` runs a real `pilot-discovery` for every istiod pod (needs `nodes > 0`).
    pub real_istio: bool,
}

struct Process {
    name: &'static str,
    child: Child,
}

/// A running control plane. Dropping it stops every process and removes its directory, and a
/// watchdog does the same if the test process dies without dropping it.
pub struct ControlPlane {
    pub dir: PathBuf,
    pub tools: Tools,
    /// `https://127.0.0.1:PORT`
    pub server: String,
    /// The admin kubeconfig (user `admin` in `system:masters`).
    pub kubeconfig: PathBuf,
    pki: Pki,
    /// How kube-apiserver was started, so that [`ControlPlane::start_apiserver`] can bring the
    /// same one back (same port, same etcd) after [`ControlPlane::stop_apiserver`].
    apiserver_args: Vec<String>,
    processes: Vec<Process>,
    /// kwok's kubelet server (port-forward, logs), on loopback; the egress maps the node's
    /// kubelet address to it (Tier C).
    kwok_server_port: u16,
    watchdog: Option<Child>,
    persistent: bool,
    _temp: Option<tempfile::TempDir>,
}

pub const CONTEXT: &str = "meshtest";
/// Every kwok node's address (kwok gives them all the one it is started with).
pub const KWOK_NODE_IP: &str = "10.244.0.1";
/// The port the apiserver dials for a node's kubelet (Tier C: kwok's server, through the egress).
pub const KUBELET_PORT: u16 = 10250;

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl ControlPlane {
    /// Starts the control plane. Free ports are found by binding and releasing them, so another
    /// process can take one in between: a failed start is retried once, on new ports.
    pub fn start(options: &Options) -> Result<ControlPlane> {
        match Self::start_once(options) {
            Ok(plane) => Ok(plane),
            Err(first) => {
                eprintln!("meshtest: control plane did not start ({first:#}); retrying on new ports");
                if let Some(dir) = &options.persistent_dir {
                    Self::stop_detached(dir)?;
                    fs::remove_dir_all(dir)?;
                }
                Self::start_once(options).with_context(|| format!("second attempt (the first failed with: {first:#})"))
            }
        }
    }

    fn start_once(options: &Options) -> Result<ControlPlane> {
        let tools = Tools::ensure()?;
        let (dir, temp) = match &options.persistent_dir {
            Some(dir) => {
                fs::create_dir_all(dir)?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new().prefix("meshtest-").tempdir()?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        fs::create_dir_all(dir.join("logs"))?;
        let pki = Pki::generate()?;
        pki.save(&dir)?;
        let mut plane = ControlPlane {
            dir: dir.clone(),
            tools,
            server: String::new(),
            kubeconfig: dir.join("kubeconfig"),
            pki,
            apiserver_args: Vec::new(),
            processes: Vec::new(),
            kwok_server_port: 0,
            watchdog: None,
            persistent: options.persistent_dir.is_some(),
            _temp: temp,
        };
        if !plane.persistent {
            plane.watchdog = Some(spawn_watchdog(&dir)?);
        }
        if options.real_istio && options.nodes == 0 {
            bail!("Tier C (real istiod) needs kwok nodes: set nodes to 1 or more");
        }
        plane.start_etcd_and_apiserver(options)?;
        if options.nodes > 0 {
            plane.start_tier_b(options.nodes, options.real_istio)?;
        }
        if options.real_istio {
            plane.start_kubelet()?;
        }
        Ok(plane)
    }

    fn start_etcd_and_apiserver(&mut self, options: &Options) -> Result<()> {
        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd = self.tools.etcd();
        self.spawn(
            "etcd",
            Command::new(etcd).args([
                "--name=meshtest",
                &format!("--data-dir={}", self.dir.join("etcd").display()),
                &format!("--listen-client-urls={etcd_url}"),
                &format!("--advertise-client-urls={etcd_url}"),
                &format!("--listen-peer-urls={peer_url}"),
                &format!("--initial-advertise-peer-urls={peer_url}"),
                &format!("--initial-cluster=meshtest={peer_url}"),
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ]),
        )?;
        self.wait_for_port("etcd", etcd_port, Duration::from_secs(30))?;

        let serving = self.pki.serving()?;
        fs::write(self.dir.join("apiserver.crt"), &serving.cert_pem)?;
        pki::write_private(&self.dir.join("apiserver.key"), &serving.key_pem)?;
        let (sa_private, sa_public) = pki::service_account_key()?;
        pki::write_private(&self.dir.join("sa.key"), &sa_private)?;
        fs::write(self.dir.join("sa.pub"), sa_public)?;
        self.server = format!("https://127.0.0.1:{api_port}");
        // Tier A and B have no token controller to serve the ServiceAccount plugin's needs; Tier C
        // must keep it, or every injected pod (its projected token volume) is refused.
        let mut disabled = if options.real_istio { vec![] } else { vec!["ServiceAccount"] };
        if !options.admission_webhooks && !options.real_istio {
            disabled.extend(["MutatingAdmissionWebhook", "ValidatingAdmissionWebhook"]);
        }
        let d = |name: &str| self.dir.join(name).display().to_string();
        let apiserver = self.tools.kube_apiserver();
        let mut args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            // Loopback is not a valid endpoint for the `kubernetes` Service; nothing needs it here.
            "--endpoint-reconciler-type=none".into(),
            format!("--secure-port={api_port}"),
            format!("--tls-cert-file={}", d("apiserver.crt")),
            format!("--tls-private-key-file={}", d("apiserver.key")),
            format!("--client-ca-file={}", d("ca.crt")),
            "--authorization-mode=RBAC".into(),
            format!("--service-account-issuer=https://127.0.0.1:{api_port}"),
            format!("--service-account-key-file={}", d("sa.pub")),
            format!("--service-account-signing-key-file={}", d("sa.key")),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            format!("--disable-admission-plugins={}", disabled.join(",")),
            // MutatingAdmissionPolicy (beta, off by default in 1.34/1.35) lets the fixture inject
            // sidecars in-process while no istiod runs (see `Fixture::install_injector`).
            "--feature-gates=MutatingAdmissionPolicy=true".into(),
            "--runtime-config=admissionregistration.k8s.io/v1beta1=true".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            format!("--audit-log-path={}", d("logs/audit.log")),
            format!("--audit-policy-file={}", self.write_audit_policy()?.display()),
            "--audit-log-maxsize=200".into(),
            "--audit-log-maxbackup=1".into(),
            format!("--cert-dir={}", d("certs")),
            "--v=1".into(),
        ];
        if disabled.is_empty() {
            args.retain(|a| !a.starts_with("--disable-admission-plugins="));
        }
        if options.real_istio {
            let config = self.dir.join("egress-selector.yaml");
            fs::write(&config, crate::egress::egress_selector_config(&crate::kubelet::egress_socket(&self.dir)))?;
            args.push(format!("--egress-selector-config-file={}", config.display()));
            // kwok nodes also report their name as a Hostname address; names are never resolved here.
            args.push("--kubelet-preferred-address-types=InternalIP".into());
        } else {
            // Without the loopback egress, a port-forward, log or exec would make the apiserver dial
            // a kwok node's address. No node has an ExternalDNS address: it fails without dialing.
            args.push("--kubelet-preferred-address-types=ExternalDNS".into());
        }
        self.apiserver_args = args.clone();
        self.spawn("kube-apiserver", Command::new(apiserver).args(&args))?;
        self.write_kubeconfig(&self.kubeconfig.clone(), "admin", &["system:masters"])?;
        self.wait_ready(Duration::from_secs(90))
    }

    /// Kills kube-apiserver (SIGKILL: no graceful shutdown, as in a crash); etcd and the rest keep
    /// running. Clients get "connection refused" until [`ControlPlane::start_apiserver`].
    pub fn stop_apiserver(&mut self) -> Result<()> {
        let index =
            self.processes.iter().position(|p| p.name == "kube-apiserver").context("kube-apiserver is not running")?;
        let mut process = self.processes.remove(index);
        process.child.kill()?;
        process.child.wait()?;
        self.write_pids()
    }

    /// Starts kube-apiserver again with the arguments it first had (same port, same etcd, same
    /// certificates) and waits until it is ready.
    pub fn start_apiserver(&mut self) -> Result<()> {
        if self.processes.iter().any(|p| p.name == "kube-apiserver") {
            bail!("kube-apiserver is already running");
        }
        let port: u16 = self.server.rsplit(':').next().and_then(|p| p.parse().ok()).context("server port")?;
        // The killed process's socket may linger for a moment.
        let start = Instant::now();
        while TcpListener::bind(("127.0.0.1", port)).is_err() {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("port {port} still taken 30s after kube-apiserver stopped");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let apiserver = self.tools.kube_apiserver();
        let args = self.apiserver_args.clone();
        self.spawn("kube-apiserver", Command::new(apiserver).args(&args))?;
        self.wait_ready(Duration::from_secs(90))
    }

    /// Rewrites the pid file from the processes still running (the watchdog kills what it lists).
    fn write_pids(&self) -> Result<()> {
        let text: String = self.processes.iter().map(|p| format!("{}\n", p.child.id())).collect();
        fs::write(self.dir.join("pids"), text)?;
        Ok(())
    }

    /// Metadata-level audit of every request: lets tests and benchmarks count the requests a
    /// command really made, as the apiserver saw them.
    fn write_audit_policy(&self) -> Result<PathBuf> {
        let path = self.dir.join("audit-policy.yaml");
        fs::write(
            &path,
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n",
        )?;
        Ok(path)
    }

    fn spawn(&mut self, name: &'static str, command: &mut Command) -> Result<()> {
        // Appended: a restarted process keeps its predecessor's log.
        let log =
            fs::OpenOptions::new().create(true).append(true).open(self.dir.join("logs").join(format!("{name}.log")))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C in the terminal that ran `cluster up` does not reach it.
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let mut pids = fs::OpenOptions::new().create(true).append(true).open(self.dir.join("pids"))?;
        std::io::Write::write_all(&mut pids, format!("{}\n", child.id()).as_bytes())?;
        self.processes.push(Process { name, child });
        Ok(())
    }

    fn check_alive(&mut self) -> Result<()> {
        for p in &mut self.processes {
            if let Some(status) = p.child.try_wait()? {
                bail!(
                    "{} exited with {status}; last log lines:\n{}",
                    p.name,
                    tail(&self.dir.join("logs").join(format!("{}.log", p.name)))
                );
            }
        }
        Ok(())
    }

    fn wait_for_port(&mut self, name: &str, port: u16, limit: Duration) -> Result<()> {
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            self.check_alive()?;
            if start.elapsed() > limit {
                bail!("{name} did not listen on port {port} within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            self.check_alive()?;
            let out = self.kubectl().args(["get", "--raw=/readyz"]).output()?;
            if out.status.success() {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!("kube-apiserver not ready within {limit:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A handle on a cluster another process left running in `dir`; dropping it stops nothing.
    pub fn attach(dir: &Path) -> Result<ControlPlane> {
        let kubeconfig = dir.join("kubeconfig");
        let text = fs::read_to_string(&kubeconfig).with_context(|| format!("no cluster in {}", dir.display()))?;
        let server = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .context("kubeconfig without server")?
            .to_string();
        Ok(ControlPlane {
            dir: dir.to_path_buf(),
            tools: Tools::ensure()?,
            server,
            kubeconfig,
            pki: Pki::load(dir)?,
            apiserver_args: Vec::new(),
            processes: Vec::new(),
            kwok_server_port: 0,
            watchdog: None,
            persistent: true,
            _temp: None,
        })
    }

    /// Leaves the processes running (for `cargo xtask cluster up`).
    pub fn detach(mut self) {
        self.persistent = true;
        self.processes.clear();
    }

    /// Stops processes started by an earlier `detach`ed plane in `dir`.
    pub fn stop_detached(dir: &Path) -> Result<bool> {
        let Ok(pids) = fs::read_to_string(dir.join("pids")) else { return Ok(false) };
        // Each process leads its own group; the kubelet's istiods are in the kubelet's.
        for pid in pids.lines().rev().filter(|l| !l.trim().is_empty()) {
            let _ = Command::new("kill").args(["--", &format!("-{}", pid.trim())]).stderr(Stdio::null()).status();
        }
        std::thread::sleep(Duration::from_millis(500));
        for pid in pids.lines().filter(|l| !l.trim().is_empty()) {
            let _ = Command::new("kill").args(["-9", "--", &format!("-{}", pid.trim())]).stderr(Stdio::null()).status();
        }
        fs::remove_file(dir.join("pids"))?;
        Ok(true)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if self.persistent {
            return;
        }
        for p in self.processes.iter_mut().rev() {
            // The whole group: the kubelet's istiods are in the kubelet's.
            let group = format!("-{}", p.child.id());
            let _ = Command::new("kill").args(["-9", "--", &group]).stderr(Stdio::null()).status();
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// A shell that outlives us: when this process is gone (even killed), it stops the processes
/// listed in `pids` and removes the directory. Covers clusters held in statics, which are never
/// dropped, and test binaries that abort.
fn spawn_watchdog(dir: &Path) -> Result<Child> {
    let script = r#"while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
[ -f "$2/pids" ] && for p in $(cat "$2/pids"); do kill -9 -"$p"; kill -9 "$p"; done 2>/dev/null
rm -rf "$2""#;
    Ok(Command::new("sh")
        .args(["-c", script, "meshtest-watchdog"])
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?)
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
