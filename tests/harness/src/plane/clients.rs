//! Clients of a running plane: kubeconfigs and credentials for users, helm's directories, and
//! kubectl pointed at it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use base64::Engine;

use super::{CONTEXT, ControlPlane};
use crate::pki;

impl ControlPlane {
    /// Writes a kubeconfig for `user` in `groups`, authenticated by a client certificate.
    pub fn write_kubeconfig(&self, path: &Path, user: &str, groups: &[&str]) -> Result<()> {
        let pair = self.pki.client(user, groups)?;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {CONTEXT}\n\
             clusters:\n- name: {CONTEXT}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
             users:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n\
             contexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {user}\n",
            server = self.server,
            ca = b64(&self.pki.ca_pem),
            cert = b64(&pair.cert_pem),
            key = b64(&pair.key_pem),
        );
        pki::write_private(path, &text)
    }

    /// A client certificate and key (PEM) for `user`, and the cluster's CA (PEM).
    pub fn client_credentials(&self, user: &str, groups: &[&str]) -> Result<(String, String, String)> {
        let pair = self.pki.client(user, groups)?;
        Ok((pair.cert_pem, pair.key_pem, self.pki.ca_pem.clone()))
    }

    /// A kubeconfig for a new user with no rights beyond what RBAC later grants it.
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let path = self.dir.join(format!("kubeconfig-{user}"));
        self.write_kubeconfig(&path, user, groups)?;
        Ok(path)
    }

    /// helm's cache, configuration and data directories, inside the plane's directory, so that
    /// no helm run touches the user's own.
    pub fn helm_env(&self) -> [(&'static str, PathBuf); 3] {
        [
            ("HELM_CACHE_HOME", self.dir.join("helm/cache")),
            ("HELM_CONFIG_HOME", self.dir.join("helm/config")),
            ("HELM_DATA_HOME", self.dir.join("helm/data")),
        ]
    }

    /// The built kubectl, pointed at this cluster as admin.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.tools.kubectl());
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()));
        cmd
    }

    /// Runs kubectl and fails with its stderr if it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl().args(args).output()?;
        if !out.status.success() {
            bail!("kubectl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// An object as JSON (`kubectl get ARGS -o json`), or `None` when it does not exist.
    pub fn get_json(&self, args: &[&str]) -> Option<serde_json::Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend(["-o", "json", "--ignore-not-found"]);
        let out = self.kubectl_ok(&all).expect("kubectl get");
        (!out.trim().is_empty()).then(|| serde_json::from_str(&out).expect("kubectl prints JSON"))
    }

    /// Server-side applies a multi-document manifest.
    pub fn apply(&self, manifest: &str) -> Result<()> {
        self.kubectl_stdin(
            &["apply", "--server-side", "--force-conflicts", "--field-manager=meshtest", "-f", "-"],
            manifest,
        )
        .map(drop)
    }

    /// Runs kubectl with `input` on its stdin; its stdout, or an error with its stderr.
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Result<String> {
        use std::io::Write;
        let mut child =
            self.kubectl().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        child.stdin.take().context("kubectl stdin")?.write_all(input.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("kubectl {} failed: {}", args.first().unwrap_or(&""), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
