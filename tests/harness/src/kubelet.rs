//! Tier C's stand-in for a kubelet, for one kind of pod only: istiod.
//!
//! kwok plays every pod's status. For a pod of an istiod Deployment (label `app=istiod`, created
//! by `helm install`, `istioctl install` or anything else), this also runs the real
//! `pilot-discovery` build whose version the pod's image tag names, with the pod's environment
//! and volumes, in a directory of its own, on loopback ports of its own; the egress proxy maps
//! the pod's address and its Services to those ports. When the pod goes away the process is
//! stopped. Each istiod pod's ports are registered with kwok's server, which answers the
//! apiserver's port-forwards for the node (see [`forwards`]). Every running pod with an injected
//! proxy gets an xDS client that plays its Envoy (see [`proxies`]). It runs as its own process (`meshtest-kubelet`), so a cluster left up by
//! `cargo xtask cluster up --real` keeps its istiods.

pub mod forwards;
pub mod proxies;
mod report;
pub mod volumes;

use report::{istiod_pods, write_proxies, write_status};
pub use report::{proxies_file, status_file};

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::egress::{Egress, LocalPod, Routes, ServiceRoute};

/// What the kubelet is started with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The control plane's directory (logs, pids, pod directories, the egress socket).
    pub dir: PathBuf,
    pub kubectl: PathBuf,
    /// Admin kubeconfig: the kubelet's own access.
    pub kubeconfig: PathBuf,
    /// `(version, pilot-discovery binary)`: the image tag `version` runs that binary.
    pub builds: Vec<(String, PathBuf)>,
    /// A node's kubelet address (`ip`, port) and the loopback port of kwok's server behind it.
    pub kubelet_server: Option<((String, u16), u16)>,
    /// The xDS client binary each injected pod's proxy runs (none: no proxies).
    pub xds_proxy: Option<PathBuf>,
}

/// istiod's ports and the flag that moves each onto loopback.
const ISTIOD_PORTS: [(u16, &str); 5] = [
    (15010, "--grpcAddr"),
    (15012, "--secureGRPCAddr"),
    (15017, "--httpsAddr"),
    (8080, "--httpAddr"),
    (15014, "--monitoringAddr"),
];

struct Running {
    uid: String,
    namespace: String,
    name: String,
    version: String,
    child: Child,
    local: LocalPod,
    started: Instant,
    restarts: u32,
    ready: bool,
}

/// The socket the apiserver's egress selector points at.
pub fn egress_socket(dir: &Path) -> PathBuf {
    dir.join("egress.sock")
}

struct Kubectl {
    config: Config,
}

impl Kubectl {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.config.kubectl);
        cmd.arg(format!("--kubeconfig={}", self.config.kubeconfig.display())).arg("--request-timeout=10s");
        cmd
    }

    /// `kubectl ARGS -o json`; `None` when it printed nothing (`--ignore-not-found`).
    fn json_opt(&self, args: &[&str]) -> Result<Option<Value>> {
        let out = self.command().args(args).args(["-o", "json"]).output()?;
        if !out.status.success() {
            bail!("kubectl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        Ok(Some(serde_json::from_slice(&out.stdout)?))
    }

    fn json(&self, args: &[&str]) -> Result<Value> {
        self.json_opt(args)?.with_context(|| format!("kubectl {} printed nothing", args.join(" ")))
    }

    fn apply(&self, object: &Value) -> Result<()> {
        let mut child = self
            .command()
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        child.stdin.take().context("kubectl stdin")?.write_all(object.to_string().as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("kubectl apply failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }
}

impl volumes::Api for Kubectl {
    fn get(&self, kind: &str, namespace: &str, name: &str) -> Result<Option<Value>> {
        self.json_opt(&["get", kind, name, "-n", namespace, "--ignore-not-found"])
    }

    fn token(&self, pod: &Value, account: &str, audience: &str, seconds: u64) -> Result<String> {
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let mut cmd = self.command();
        cmd.args(["create", "token", account, "-n", namespace, &format!("--duration={seconds}s")]).args([
            "--bound-object-kind=Pod",
            &format!("--bound-object-name={}", pod["metadata"]["name"].as_str().unwrap_or_default()),
            &format!("--bound-object-uid={}", pod["metadata"]["uid"].as_str().unwrap_or_default()),
        ]);
        if !audience.is_empty() {
            cmd.arg(format!("--audience={audience}"));
        }
        let out = cmd.output()?;
        if !out.status.success() {
            bail!("token for {namespace}/{account}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }
}

fn labels(object: &Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

/// The build for an image such as `docker.io/istio/pilot:1.31.1` (or `…:1.31.1-distroless`).
pub fn build_for_image<'a>(builds: &'a [(String, PathBuf)], image: &str) -> Option<&'a (String, PathBuf)> {
    let tag = image.rsplit_once(':').map(|(_, t)| t)?;
    builds
        .iter()
        .find(|(version, _)| tag == version || tag.strip_prefix(version.as_str()).is_some_and(|r| r.starts_with('-')))
}

fn services(kubectl: &Kubectl) -> Result<Vec<ServiceRoute>> {
    let list = kubectl.json(&["get", "services", "-A"])?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            let cluster_ip = s.pointer("/spec/clusterIP")?.as_str()?.to_string();
            let selector = s
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect());
            let ports = s.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten().filter_map(|p| {
                let port = u16::try_from(p["port"].as_u64()?).ok()?;
                let target = match &p["targetPort"] {
                    Value::Number(n) => n.to_string(),
                    Value::String(name) => name.clone(),
                    _ => port.to_string(),
                };
                Some((port, target))
            });
            Some(ServiceRoute {
                namespace: s.pointer("/metadata/namespace")?.as_str()?.to_string(),
                name: s.pointer("/metadata/name")?.as_str()?.to_string(),
                cluster_ip,
                selector: selector.unwrap_or_default(),
                ports: ports.collect(),
            })
        })
        .collect())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts the pod's process, or says why it cannot start yet.
fn start(kubectl: &Kubectl, config: &Config, pod: &Value) -> Result<Running> {
    let meta = &pod["metadata"];
    let (namespace, name) = (meta["namespace"].as_str().unwrap_or_default(), meta["name"].as_str().unwrap_or_default());
    let containers = pod.pointer("/spec/containers").and_then(Value::as_array).context("pod without containers")?;
    let (container, (version, binary)) = containers
        .iter()
        .find_map(|c| Some((c, build_for_image(&config.builds, c["image"].as_str()?)?)))
        .context("no pilot-discovery build for this pod's image")?;
    let root = config.dir.join("pods").join(format!("{namespace}_{name}"));
    fs::create_dir_all(&root)?;
    volumes::materialise(kubectl, pod, container, &root)?;
    let mut env = volumes::environment(kubectl, pod, container)?;
    // Its access to the API: the pod's service account, as in a real pod.
    let account = pod.pointer("/spec/serviceAccountName").and_then(Value::as_str).unwrap_or("default");
    let token = volumes::Api::token(kubectl, pod, account, "", 48 * 3600)?;
    let pod_kubeconfig = root.join("kubeconfig");
    write_token_kubeconfig(&config.kubeconfig, &pod_kubeconfig, &token)?;
    env.retain(|(k, _)| k != "KUBECONFIG");
    env.push(("KUBECONFIG".into(), pod_kubeconfig.display().to_string()));
    env.push(("HOME".into(), root.display().to_string()));
    let mut local = LocalPod {
        ip: pod.pointer("/status/podIP").and_then(Value::as_str).unwrap_or_default().to_string(),
        labels: labels(pod),
        ..LocalPod::default()
    };
    for p in container["ports"].as_array().into_iter().flatten() {
        if let (Some(n), Some(port)) = (p["name"].as_str(), p["containerPort"].as_u64()) {
            local.port_names.insert(n.to_string(), u16::try_from(port)?);
        }
    }
    let mut args: Vec<String> =
        container["args"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_string)).collect();
    // Later flags win: every listener moves to a loopback port of its own.
    for (port, flag) in ISTIOD_PORTS {
        let local_port = free_port()?;
        local.ports.insert(port, local_port);
        args.push(format!("{flag}=127.0.0.1:{local_port}"));
    }
    args.push(format!("--kubeconfig={}", pod_kubeconfig.display()));
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.dir.join("logs").join(format!("istiod-{namespace}-{name}.log")))?;
    let child = Command::new(binary)
        .args(&args)
        .current_dir(&root)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    Ok(Running {
        uid: meta["uid"].as_str().unwrap_or_default().to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        version: version.clone(),
        child,
        local,
        started: Instant::now(),
        restarts: 0,
        ready: false,
    })
}

/// Starts the pod's process and registers its ports for port-forwards.
fn start_forwarded(kubectl: &Kubectl, config: &Config, pod: &Value) -> Result<Running> {
    let running = start(kubectl, config, pod)?;
    kubectl.apply(&forwards::manifest(pod, &running.local))?;
    Ok(running)
}

fn write_token_kubeconfig(admin: &Path, out: &Path, token: &str) -> Result<()> {
    let text = fs::read_to_string(admin)?;
    let server = text.lines().find_map(|l| l.trim().strip_prefix("server: ")).context("kubeconfig without server")?;
    let ca = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .context("kubeconfig without CA")?;
    fs::write(
        out,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: pod\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: pod\n  context: {{cluster: c, user: u}}\n"
        ),
    )?;
    Ok(())
}

/// `GET /ready` on istiod's debug port.
fn ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /ready HTTP/1.0\r\nHost: localhost\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

fn stop(mut running: Running) {
    let pid = running.child.id().to_string();
    let _ = Command::new("kill").arg(&pid).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if running.child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = running.child.kill();
    let _ = running.child.wait();
}

/// Runs until killed.
pub fn run(config: Config) -> Result<()> {
    fs::create_dir_all(config.dir.join("logs"))?;
    let kubectl = Arc::new(Kubectl { config: config.clone() });
    let routes = Arc::new(Mutex::new(Routes::default()));
    let refresher = Arc::new({
        let (kubectl, routes) = (Arc::clone(&kubectl), Arc::clone(&routes));
        let last = Mutex::new(Instant::now() - Duration::from_secs(60));
        move || {
            let mut last = last.lock().expect("refresh clock");
            if last.elapsed() < Duration::from_millis(500) {
                return;
            }
            if let Ok(list) = services(&kubectl) {
                routes.lock().expect("routes").services = list;
            }
            *last = Instant::now();
        }
    });
    Egress::new(Arc::clone(&routes), &config.dir.join("logs")).serve(&egress_socket(&config.dir), {
        let refresher = Arc::clone(&refresher);
        move || refresher()
    })?;
    let pids = Arc::new(Mutex::new(Vec::<u32>::new()));
    let watched = Arc::clone(&pids);
    crate::netwatch::watch(config.dir.join("pids"), config.dir.join("logs/non-loopback.log"), move || {
        watched.lock().expect("pids").clone()
    });
    let log = |line: String| {
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(config.dir.join("logs/kubelet.log")) {
            let _ = writeln!(f, "{line}");
        }
    };
    if let Some(server) = &config.kubelet_server {
        routes.lock().expect("routes").kubelets = vec![server.clone()];
    }
    let mut running: Vec<Running> = Vec::new();
    let mut proxies: Vec<proxies::RunningProxy> = Vec::new();
    let mut waiting: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let pods = kubectl.json(&["get", "pods", "-A"]);
        match &pods {
            Ok(list) => reconcile(&kubectl, &config, &istiod_pods(list), &mut running, &mut waiting, &log),
            Err(e) => log(format!("cannot list pods: {e:#}")),
        }
        for r in &mut running {
            if !r.ready {
                r.ready = ready(r.local.ports[&8080]);
            }
        }
        *pids.lock().expect("pids") = running.iter().map(|r| r.child.id()).collect();
        routes.lock().expect("routes").pods = running.iter().map(|r| r.local.clone()).collect();
        if let (Some(binary), Ok(list)) = (&config.xds_proxy, &pods) {
            refresher();
            let items = list["items"].as_array().map(Vec::as_slice).unwrap_or_default();
            let routes = routes.lock().expect("routes");
            proxies::reconcile(binary, &config.dir.join("logs"), items, &routes, &mut proxies, &log);
        }
        write_status(&config, &running);
        write_proxies(&config, &proxies);
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn reconcile(
    kubectl: &Kubectl,
    config: &Config,
    list: &Value,
    running: &mut Vec<Running>,
    waiting: &mut BTreeMap<String, String>,
    log: &dyn Fn(String),
) {
    let pods: Vec<&Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|p| p.pointer("/status/podIP").and_then(Value::as_str).is_some_and(|ip| !ip.is_empty()))
        .collect();
    let uid = |p: &Value| p["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    // Gone or terminating: stop.
    let (keep, gone): (Vec<Running>, Vec<Running>) =
        std::mem::take(running).into_iter().partition(|r| pods.iter().any(|p| uid(p) == r.uid));
    for r in gone {
        log(format!("stopping istiod for pod {}/{} (pid {})", r.namespace, r.name, r.child.id()));
        let dir = config.dir.join("pods").join(format!("{}_{}", r.namespace, r.name));
        stop(r);
        let _ = fs::remove_dir_all(dir);
    }
    *running = keep;
    // Exited: restart, as a kubelet restarts a crashed container (with a back-off).
    for r in running.iter_mut() {
        if let Ok(Some(status)) = r.child.try_wait()
            && r.started.elapsed() > Duration::from_secs(2u64.pow(r.restarts.min(5)))
        {
            log(format!("istiod for {}/{} exited ({status}); restarting", r.namespace, r.name));
            let pod = pods.iter().find(|p| uid(p) == r.uid).copied();
            let restarted = pod.map(|p| start_forwarded(kubectl, config, p));
            if let Some(Ok(mut fresh)) = restarted {
                fresh.restarts = r.restarts + 1;
                *r = fresh;
            }
        }
    }
    for pod in pods {
        if running.iter().any(|r| r.uid == uid(pod)) {
            continue;
        }
        let key = format!(
            "{}/{}",
            pod["metadata"]["namespace"].as_str().unwrap_or(""),
            pod["metadata"]["name"].as_str().unwrap_or("")
        );
        match start_forwarded(kubectl, config, pod) {
            Ok(r) => {
                log(format!(
                    "started istiod {} for pod {key} (pid {}, ports {:?})",
                    r.version,
                    r.child.id(),
                    r.local.ports
                ));
                waiting.remove(&key);
                running.push(r);
            }
            Err(e) => {
                let why = format!("{e:#}");
                if waiting.get(&key) != Some(&why) {
                    log(format!("pod {key} not started: {why}"));
                    waiting.insert(key, why);
                }
            }
        }
    }
}
