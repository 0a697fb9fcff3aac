//! Cluster access from the global flags, and the translation of API failures into [`Error`]s that
//! name the cluster, the user and what we were doing.

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use serde::de::DeserializeOwned;

use crate::args::{KubeArgs, format_duration};
use crate::error::{Error, Result, Target};

/// Runs a command's async work on a single-threaded runtime (a plugin does one thing at a time;
/// concurrency comes from joined requests, not threads).
pub fn block_on<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Output(std::io::Error::other(e)))?
        .block_on(work)
}

/// Items per page when listing; the same chunk size kubectl uses.
pub const PAGE_SIZE: u32 = 500;

/// Without `--request-timeout`, how long to wait for a TCP/TLS connection before calling the
/// cluster unreachable (kubectl waits indefinitely; a plugin should not hang on a dead address).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `kubectl-<plugin>/<version>`: audit logs tell our requests from anyone else's, and writes
/// without an explicit field manager are recorded under `kubectl-<plugin>` (the apiserver takes
/// the User-Agent up to its first `/`).
pub fn user_agent(plugin: &str) -> http::HeaderValue {
    let plugin = if plugin.is_empty() { "meshkit" } else { plugin };
    let agent = format!("kubectl-{plugin}/{}", env!("CARGO_PKG_VERSION"));
    http::HeaderValue::from_str(&agent).unwrap_or(http::HeaderValue::from_static("kubectl-meshkit"))
}

/// A connected client plus what we need to explain failures.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    pub target: Target,
    pub istio_namespace: String,
    /// The plugin that connected (`revtag`, `meshmigrate`, …), named in the run lock.
    pub plugin: &'static str,
    request_timeout: Option<Duration>,
}

impl Cluster {
    /// Loads the kubeconfig the way kubectl does (`--kubeconfig`, else every file in `KUBECONFIG`
    /// merged, else `~/.kube/config`), applies the context, cluster and user overrides and
    /// impersonation, and builds a client. Nothing is sent yet.
    pub async fn connect(args: &KubeArgs) -> Result<Cluster> {
        let kubeconfig = load_kubeconfig(args.kubeconfig.as_deref())?;
        let target = target_of(&kubeconfig, args)?;
        let options =
            KubeConfigOptions { context: args.context.clone(), cluster: args.cluster.clone(), user: args.user.clone() };
        let mut config =
            Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| kubeconfig_error(e, args))?;
        if let Some(user) = &args.as_user {
            config.auth_info.impersonate = Some(user.clone());
        }
        if !args.as_groups.is_empty() {
            config.auth_info.impersonate_groups = Some(args.as_groups.clone());
        }
        config.headers.push((http::header::USER_AGENT, user_agent(args.plugin)));
        config.connect_timeout = Some(args.request_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT));
        config.read_timeout = args.request_timeout;
        let client = crate::kube::client::build(config)
            .map_err(|e| Error::Unreachable { target: target.clone(), reason: innermost(&e) })?;
        Ok(Cluster {
            client,
            target,
            istio_namespace: args.istio_namespace().to_string(),
            plugin: args.plugin,
            request_timeout: args.request_timeout,
        })
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Lists every object `api` selects, page by page. `what` names the request in errors
    /// ("list namespaces").
    pub async fn list<K>(&self, api: &Api<K>, label_selector: Option<&str>, what: &str) -> Result<Vec<K>>
    where
        K: Clone + DeserializeOwned + Debug,
    {
        self.list_map(api, label_selector, what, K::clone).await
    }

    /// Lists page by page and keeps only `view` of each object, so that no more than one page of
    /// full objects is in memory at a time (pods at scale are mostly managedFields we never read).
    pub async fn list_map<K, T>(
        &self,
        api: &Api<K>,
        label_selector: Option<&str>,
        what: &str,
        view: impl Fn(&K) -> T,
    ) -> Result<Vec<T>>
    where
        K: Clone + DeserializeOwned + Debug,
    {
        let mut items = Vec::new();
        self.list_each(api, label_selector, what, |object: K| {
            items.push(view(&object));
            Ok(())
        })
        .await?;
        Ok(items)
    }

    /// Lists page by page and hands each object to `visit` as its page arrives; nothing is kept
    /// (a backup streams tens of thousands of objects into an archive this way).
    pub async fn list_each<K>(
        &self,
        api: &Api<K>,
        label_selector: Option<&str>,
        what: &str,
        mut visit: impl FnMut(K) -> Result<()>,
    ) -> Result<()>
    where
        K: Clone + DeserializeOwned + Debug,
    {
        let mut params = ListParams::default().limit(PAGE_SIZE);
        if let Some(selector) = label_selector {
            params = params.labels(selector);
        }
        loop {
            let page = self.call(what, api.list(&params)).await?;
            let token = page.metadata.continue_.clone().filter(|c| !c.is_empty());
            for object in page.items {
                visit(object)?;
            }
            match token {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(()),
            }
        }
    }

    /// Runs one request under the request timeout and classifies its failure.
    pub async fn call<T>(&self, what: &str, request: impl Future<Output = kube::Result<T>>) -> Result<T> {
        let outcome = match self.request_timeout {
            Some(limit) => tokio::time::timeout(limit, request).await.map_err(|_| self.timeout())?,
            None => request.await,
        };
        outcome.map_err(|e| self.classify(e, what))
    }

    fn timeout(&self) -> Error {
        Error::Timeout {
            target: self.target.clone(),
            timeout: self.request_timeout.map(format_duration).unwrap_or_default(),
        }
    }

    /// Turns a client error into one of ours; `what` is the action, e.g. "list namespaces".
    pub fn classify(&self, err: kube::Error, what: &str) -> Error {
        match err {
            kube::Error::Api(status) => match status.code {
                401 => Error::Unauthorized { target: self.target.clone(), reason: status.message },
                403 => Error::Forbidden { action: what.to_string(), message: status.message },
                code => Error::Api { action: what.to_string(), code, message: status.message },
            },
            kube::Error::Auth(e) => Error::Unauthorized { target: self.target.clone(), reason: innermost(&e) },
            other => {
                let reason = innermost(&other);
                if is_timeout(&reason) && self.request_timeout.is_some() {
                    self.timeout()
                } else {
                    Error::Unreachable { target: self.target.clone(), reason }
                }
            }
        }
    }
}

fn is_timeout(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    reason.contains("timed out") || reason.contains("elapsed") || reason.contains("timeout")
}

/// The most specific message in an error's chain ("Connection refused (os error 111)").
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// What went wrong reading a kubeconfig, never quoting it: parse errors show the offending lines
/// and values, and a kubeconfig holds tokens and keys. Only the position is kept.
fn without_content(err: &KubeconfigError) -> String {
    match err {
        KubeconfigError::Parse(parse) => {
            let text = parse.to_string();
            let first = text.lines().next().unwrap_or_default();
            let position = first.find("line ").map(|at| {
                let rest = &first[at..];
                let end = rest.find(':').unwrap_or(rest.len());
                rest[..end].replace(" column", ", column")
            });
            match position {
                Some(position) => format!("not a valid kubeconfig (YAML error at {position})"),
                None => "not a valid kubeconfig (YAML error)".to_string(),
            }
        }
        KubeconfigError::ReadConfig(io, _) => io.to_string(),
        other => innermost(other),
    }
}

/// `--kubeconfig` wins; else every file listed in `KUBECONFIG` that exists, merged in order (first
/// one to set a value wins, as in kubectl); else `~/.kube/config`.
/// The context names of the kubeconfig kubectl would load (for completion).
pub fn context_names(args: &KubeArgs) -> Result<Vec<String>> {
    Ok(load_kubeconfig(args.kubeconfig.as_deref())?.contexts.into_iter().map(|c| c.name).collect())
}

fn load_kubeconfig(flag: Option<&str>) -> Result<Kubeconfig> {
    let unreadable = |source: String, err: KubeconfigError, hint: &str| Error::Kubeconfig {
        reason: format!("cannot read {source}: {}", without_content(&err)),
        hint: hint.to_string(),
    };
    if let Some(path) = flag {
        return Kubeconfig::read_from(path)
            .map_err(|e| unreadable(format!("--kubeconfig {path}"), e, "check the path given to --kubeconfig"));
    }
    let listed = std::env::var_os("KUBECONFIG").unwrap_or_default();
    let paths: Vec<PathBuf> = std::env::split_paths(&listed).filter(|p| !p.as_os_str().is_empty()).collect();
    if paths.is_empty() {
        let default = home_kubeconfig().ok_or_else(|| Error::Kubeconfig {
            reason: "no kubeconfig: KUBECONFIG is not set and there is no home directory".into(),
            hint: "set KUBECONFIG or pass --kubeconfig PATH".into(),
        })?;
        return Kubeconfig::read_from(&default)
            .map_err(|e| unreadable(default.display().to_string(), e, "set KUBECONFIG or pass --kubeconfig PATH"));
    }
    let existing: Vec<&PathBuf> = paths.iter().filter(|p| p.exists()).collect();
    if existing.is_empty() {
        return Err(Error::Kubeconfig {
            reason: format!("none of the files in KUBECONFIG exist ({})", listed.to_string_lossy()),
            hint: "fix KUBECONFIG or pass --kubeconfig PATH".into(),
        });
    }
    existing.into_iter().try_fold(Kubeconfig::default(), |merged, path| {
        Kubeconfig::read_from(path)
            .and_then(|next| merged.merge(next))
            .map_err(|e| unreadable(path.display().to_string(), e, "fix or remove that file from KUBECONFIG"))
    })
}

fn home_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|home| PathBuf::from(home).join(".kube").join("config"))
}

/// Which context, server and user the flags select, for messages.
fn target_of(kubeconfig: &Kubeconfig, args: &KubeArgs) -> Result<Target> {
    let context_name =
        args.context.clone().or_else(|| kubeconfig.current_context.clone()).ok_or_else(|| Error::Kubeconfig {
            reason: "no current context is set and no --context was given".into(),
            hint: "pass --context NAME, or run `kubectl config use-context NAME`".into(),
        })?;
    let context =
        kubeconfig.contexts.iter().find(|c| c.name == context_name).and_then(|c| c.context.clone()).ok_or_else(
            || {
                let known: Vec<&str> = kubeconfig.contexts.iter().map(|c| c.name.as_str()).collect();
                Error::Kubeconfig {
                    reason: format!("context \"{context_name}\" is not in the kubeconfig"),
                    hint: if known.is_empty() {
                        "the kubeconfig has no contexts".into()
                    } else {
                        format!("known contexts: {}", known.join(", "))
                    },
                }
            },
        )?;
    let cluster_name = args.cluster.clone().unwrap_or(context.cluster.clone());
    let server = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .unwrap_or_else(|| format!("<cluster \"{cluster_name}\" has no server>"));
    let user = args.as_user.clone().or(args.user.clone()).or(context.user.clone()).unwrap_or_default();
    Ok(Target { context: context_name, server, user })
}

fn kubeconfig_error(err: KubeconfigError, args: &KubeArgs) -> Error {
    let hint = match &err {
        KubeconfigError::LoadClusterOfContext(_) => "pass an existing --cluster, or fix the context's cluster",
        _ if args.kubeconfig.is_some() => "check the file given to --kubeconfig",
        _ => "check the kubeconfig (kubectl config view)",
    };
    Error::Kubeconfig { reason: without_content(&err), hint: hint.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_kubeconfig_is_reported_by_position_never_by_content() {
        let dir = tempfile::tempdir().unwrap();
        for (i, text) in [
            "users:\n- name: u\n  user:\n    token: SECRET-TOKEN-123\n  : : bad\n",
            "{\"token\": \"SECRET-TOKEN-123\",\n",
            "SECRET-TOKEN-123\n",
            "users: SECRET-TOKEN-123\n",
        ]
        .iter()
        .enumerate()
        {
            let path = dir.path().join(format!("config-{i}"));
            std::fs::write(&path, text).unwrap();
            let err = load_kubeconfig(path.to_str()).unwrap_err();
            let shown = format!("{err} {}", err.hint().unwrap_or_default());
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(shown.contains("not a valid kubeconfig (YAML error"), "{shown}");
            assert_eq!(shown.lines().count(), 1, "{shown}");
        }
    }

    const TWO_CONTEXTS: &str = "
apiVersion: v1
kind: Config
current-context: a
clusters:
- name: ca
  cluster: {server: 'https://127.0.0.1:1'}
- name: cb
  cluster: {server: 'https://127.0.0.1:2'}
users:
- name: ua
  user: {token: t}
contexts:
- name: a
  context: {cluster: ca, user: ua}
- name: b
  context: {cluster: cb, user: ua, namespace: team}
";

    #[test]
    fn target_follows_context_cluster_and_impersonation_flags() {
        let kc = Kubeconfig::from_yaml(TWO_CONTEXTS).unwrap();
        let t = target_of(&kc, &KubeArgs::default()).unwrap();
        assert_eq!((t.context.as_str(), t.server.as_str(), t.user.as_str()), ("a", "https://127.0.0.1:1", "ua"));
        let args = KubeArgs { context: Some("b".into()), as_user: Some("alice".into()), ..Default::default() };
        let t = target_of(&kc, &args).unwrap();
        assert_eq!((t.context.as_str(), t.server.as_str(), t.user.as_str()), ("b", "https://127.0.0.1:2", "alice"));
        let args = KubeArgs { cluster: Some("cb".into()), ..Default::default() };
        assert_eq!(target_of(&kc, &args).unwrap().server, "https://127.0.0.1:2");
    }

    #[test]
    fn unknown_context_lists_the_known_ones() {
        let kc = Kubeconfig::from_yaml(TWO_CONTEXTS).unwrap();
        let err = target_of(&kc, &KubeArgs { context: Some("nope".into()), ..Default::default() }).unwrap_err();
        assert_eq!(err.to_string(), "cannot use the kubeconfig: context \"nope\" is not in the kubeconfig");
        assert_eq!(err.hint().as_deref(), Some("known contexts: a, b"));
        assert_eq!(err.exit() as u8, 3);
    }

    #[test]
    fn no_current_context_is_explained() {
        let kc = Kubeconfig::from_yaml("apiVersion: v1\nkind: Config\n").unwrap();
        let err = target_of(&kc, &KubeArgs::default()).unwrap_err();
        assert!(err.to_string().contains("no current context"), "{err}");
    }

    #[test]
    fn timeouts_are_recognised_in_messages() {
        assert!(is_timeout("operation timed out"));
        assert!(is_timeout("deadline has elapsed"));
        assert!(!is_timeout("Connection refused (os error 111)"));
    }
}
