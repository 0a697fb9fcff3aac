//! A server that accepts connections and never answers, for request-timeout tests.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// Writes a kubeconfig for a loopback server that accepts every connection, reads what the client
/// sends and never replies (a hung apiserver), and returns its path.
pub fn hanging_kubeconfig(dir: &Path) -> PathBuf {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut sink = [0u8; 4096];
                while stream.read(&mut sink).is_ok_and(|n| n > 0) {}
            });
        }
    });
    let path = dir.join("hanging-kubeconfig");
    let config = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: hung\nclusters:\n- name: hung\n  cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}\n\
         users:\n- name: u\n  user: {{token: x}}\ncontexts:\n- name: hung\n  context: {{cluster: hung, user: u}}\n"
    );
    std::fs::write(&path, config).expect("write kubeconfig");
    path
}
