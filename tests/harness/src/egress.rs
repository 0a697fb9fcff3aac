//! The apiserver's "cluster" egress for Tier C: an HTTP CONNECT proxy on a Unix socket.
//!
//! kube-apiserver reaches admission webhooks, Service proxies and pod proxies through it (see
//! `--egress-selector-config-file`). It maps a Service ClusterIP or a pod IP, with a port, to the
//! loopback port of the local process that plays that pod (an istiod), and refuses everything
//! else with `403`. Every CONNECT is logged; refused ones also go to `egress-refused.log`, which
//! the loopback-only test reads. The proxy itself only ever dials `127.0.0.1`.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A pod whose ports are served by a local process.
#[derive(Debug, Clone, Default)]
pub struct LocalPod {
    pub ip: String,
    pub labels: BTreeMap<String, String>,
    /// Container port → the loopback port that serves it.
    pub ports: BTreeMap<u16, u16>,
    /// Container port names → numbers (for Services whose targetPort is a name).
    pub port_names: BTreeMap<String, u16>,
}

/// A Service as far as routing needs it.
#[derive(Debug, Clone, Default)]
pub struct ServiceRoute {
    pub namespace: String,
    pub name: String,
    pub cluster_ip: String,
    pub selector: BTreeMap<String, String>,
    /// Service port → target port (a number, or a container port name).
    pub ports: Vec<(u16, String)>,
}

/// What the proxy knows: kept up to date by the kubelet loop.
#[derive(Debug, Default)]
pub struct Routes {
    pub pods: Vec<LocalPod>,
    pub services: Vec<ServiceRoute>,
    /// A node's kubelet address (`ip`, port) → the loopback port of kwok's server, which
    /// answers port-forwards (and logs) for the node's pods.
    pub kubelets: Vec<((String, u16), u16)>,
}

/// Where a CONNECT goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Local(u16),
    Refused(&'static str),
}

impl Routes {
    /// Maps `host:port` as the apiserver asked for it. Pure, so it is unit-tested on plain data.
    pub fn resolve(&self, host: &str, port: u16) -> Decision {
        let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() else {
            return Decision::Refused("not an IP address (names are never resolved here)");
        };
        if ip.is_loopback() {
            return Decision::Local(port);
        }
        let ip = ip.to_string();
        if let Some((_, local)) = self.kubelets.iter().find(|((node, p), _)| *node == ip && *p == port) {
            return Decision::Local(*local);
        }
        // Address and port together: kwok gives the node and the first pod the same address.
        if let Some(local) = self.pods.iter().filter(|p| p.ip == ip).find_map(|p| p.ports.get(&port)) {
            return Decision::Local(*local);
        }
        let Some(service) = self.services.iter().find(|s| s.cluster_ip == ip) else {
            return Decision::Refused("no local process serves this address");
        };
        let Some((_, target)) = service.ports.iter().find(|(p, _)| *p == port) else {
            return Decision::Refused("the Service has no such port");
        };
        if service.selector.is_empty() {
            return Decision::Refused("the Service has no selector");
        }
        for pod in &self.pods {
            if !service.selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)) {
                continue;
            }
            let number = target.parse::<u16>().ok().or_else(|| pod.port_names.get(target).copied());
            if let Some(local) = number.and_then(|n| pod.ports.get(&n)) {
                return Decision::Local(*local);
            }
        }
        Decision::Refused("no running local process backs this Service")
    }
}

impl Routes {
    /// Maps a Service by name (`istiod-1-30-3.istio-system.svc:15010`), as a pod's proxy would
    /// reach it through cluster DNS, to the local process behind it.
    pub fn resolve_service(&self, namespace: &str, name: &str, port: u16) -> Decision {
        match self.services.iter().find(|s| s.namespace == namespace && s.name == name) {
            Some(service) => self.resolve(&service.cluster_ip, port),
            None => Decision::Refused("no such Service"),
        }
    }
}

/// The proxy: listens on `socket` until the process ends.
pub struct Egress {
    pub routes: Arc<Mutex<Routes>>,
    log_dir: PathBuf,
}

impl Egress {
    pub fn new(routes: Arc<Mutex<Routes>>, log_dir: &Path) -> Egress {
        Egress { routes, log_dir: log_dir.to_path_buf() }
    }

    /// Serves CONNECT requests on `socket` in a background thread.
    pub fn serve(self, socket: &Path, refresh: impl Fn() + Send + Sync + 'static) -> std::io::Result<()> {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)?;
        let this = Arc::new(self);
        let refresh = Arc::new(refresh);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let this = Arc::clone(&this);
                let refresh = Arc::clone(&refresh);
                std::thread::spawn(move || this.handle(conn, &*refresh));
            }
        });
        Ok(())
    }

    fn handle(&self, mut conn: UnixStream, refresh: &dyn Fn()) {
        let Some(target) = read_connect(&mut conn) else {
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            self.log("egress.log", "malformed request refused");
            return;
        };
        let (host, port) = match target.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?))) {
            Some(pair) => pair,
            None => {
                let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
                self.log("egress-refused.log", &format!("{target} refused: no port"));
                return;
            }
        };
        let mut decision = self.routes.lock().expect("routes").resolve(host, port);
        if matches!(decision, Decision::Refused(_)) {
            // A Service or pod may have appeared since the last refresh.
            refresh();
            decision = self.routes.lock().expect("routes").resolve(host, port);
        }
        let local = match decision {
            Decision::Local(local) => local,
            Decision::Refused(why) => {
                let _ = conn.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n");
                self.log("egress.log", &format!("CONNECT {target} refused: {why}"));
                self.log("egress-refused.log", &format!("{target} refused: {why}"));
                return;
            }
        };
        let upstream_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, local));
        let upstream = match TcpStream::connect_timeout(&upstream_addr, Duration::from_secs(5)) {
            Ok(upstream) => upstream,
            Err(e) => {
                let _ = conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
                self.log("egress.log", &format!("CONNECT {target} -> {upstream_addr} failed: {e}"));
                return;
            }
        };
        self.log("egress.log", &format!("CONNECT {target} -> {upstream_addr}"));
        if conn.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").is_err() {
            return;
        }
        splice(conn, upstream);
    }

    fn log(&self, file: &str, line: &str) {
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(self.log_dir.join(file)) {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Reads `CONNECT host:port HTTP/1.1` and its headers, byte by byte so that nothing of the
/// tunnel that follows is consumed.
fn read_connect(conn: &mut UnixStream) -> Option<String> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    conn.set_read_timeout(None).ok()?;
    let text = String::from_utf8(head).ok()?;
    let mut words = text.lines().next()?.split_whitespace();
    (words.next()? == "CONNECT").then_some(())?;
    words.next().map(str::to_string)
}

/// Copies both ways until either side closes.
fn splice(client: UnixStream, upstream: TcpStream) {
    let (Ok(mut client_read), Ok(mut upstream_write)) = (client.try_clone(), upstream.try_clone()) else { return };
    let forward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_read, &mut upstream_write);
        let _ = upstream_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut upstream_read, mut client_write) = (upstream, client);
    let _ = std::io::copy(&mut upstream_read, &mut client_write);
    let _ = client_write.shutdown(std::net::Shutdown::Write);
    let _ = forward.join();
}

/// The apiserver's egress selector configuration: the `cluster` egress over HTTP CONNECT on a
/// Unix socket (the `tcp` transport needs TLS client certificates; without them kube-apiserver
/// panics at start).
pub fn egress_selector_config(socket: &Path) -> String {
    format!(
        "apiVersion: apiserver.k8s.io/v1beta1\nkind: EgressSelectorConfiguration\negressSelections:\n\
         - name: cluster\n  connection:\n    proxyProtocol: HTTPConnect\n    transport:\n      uds:\n        udsName: {}\n",
        socket.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn routes() -> Routes {
        Routes {
            pods: vec![LocalPod {
                ip: "10.244.0.1".into(),
                labels: labels(&[("app", "istiod"), ("istio.io/rev", "1-30-3")]),
                ports: [(15017, 40001), (8080, 40002)].into(),
                port_names: [("https-webhooks".to_string(), 15017)].into(),
            }],
            services: vec![
                ServiceRoute {
                    cluster_ip: "10.0.0.10".into(),
                    selector: labels(&[("app", "istiod"), ("istio.io/rev", "1-30-3")]),
                    ports: vec![(443, "15017".into()), (15014, "15014".into())],
                    namespace: "istio-system".into(),
                    name: "istiod-1-30-3".into(),
                },
                ServiceRoute {
                    cluster_ip: "10.0.0.11".into(),
                    selector: labels(&[("app", "istiod"), ("istio.io/rev", "1-30-3")]),
                    ports: vec![(443, "https-webhooks".into())],
                    ..ServiceRoute::default()
                },
                ServiceRoute {
                    cluster_ip: "10.0.0.12".into(),
                    selector: labels(&[("app", "istiod"), ("istio.io/rev", "1-31-1")]),
                    ports: vec![(443, "15017".into())],
                    ..ServiceRoute::default()
                },
            ],
            kubelets: vec![(("10.244.0.1".into(), 10250), 40100)],
        }
    }

    #[test]
    fn maps_services_and_pods_to_local_ports_only() {
        let r = routes();
        assert_eq!(r.resolve("10.0.0.10", 443), Decision::Local(40001));
        assert_eq!(r.resolve("10.0.0.11", 443), Decision::Local(40001), "named target port");
        assert_eq!(r.resolve("10.244.0.1", 8080), Decision::Local(40002));
        // The node shares the first pod's address: its kubelet port goes to kwok's server.
        assert_eq!(r.resolve("10.244.0.1", 10250), Decision::Local(40100));
        assert!(matches!(r.resolve("10.244.0.1", 10255), Decision::Refused(_)));
        assert_eq!(r.resolve_service("istio-system", "istiod-1-30-3", 443), Decision::Local(40001));
        assert!(matches!(r.resolve_service("istio-system", "istiod", 443), Decision::Refused(_)));
        assert!(matches!(r.resolve("10.0.0.10", 15014), Decision::Refused(_)), "no process port");
        assert!(matches!(r.resolve("10.0.0.12", 443), Decision::Refused(_)), "revision not running");
        assert!(matches!(r.resolve("10.0.0.99", 443), Decision::Refused(_)));
        assert!(matches!(r.resolve("203.0.113.7", 443), Decision::Refused(_)));
        assert!(matches!(r.resolve("istiod.istio-system.svc", 443), Decision::Refused(_)));
        assert_eq!(r.resolve("127.0.0.1", 5000), Decision::Local(5000));
    }

    #[test]
    fn selector_config_uses_a_unix_socket() {
        let text = egress_selector_config(Path::new("/tmp/x.sock"));
        assert!(
            text.contains("udsName: /tmp/x.sock") && text.contains("HTTPConnect") && text.contains("name: cluster")
        );
    }
}
