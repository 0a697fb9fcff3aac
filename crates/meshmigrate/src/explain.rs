//! `kubectl meshmigrate explain POD -n NS | NAMESPACE`: fetch (the control plane, the namespace,
//! its pods or the one pod) → decide (`meshkit::istio::explain::explain` per pod) → render.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use meshkit::cluster::Cluster;
use meshkit::istio::explain::{Explanation, explain};
use meshkit::istio::{Mesh, NamespaceView, PodView, WebhookConfigView};
use meshkit::render::{Cell, Renderer, Table, Tone};
use meshkit::{Error, Exit, Result};
use serde::Serialize;

/// What the user asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Pod { namespace: String, name: String },
    Namespace(String),
}

impl Subject {
    /// `explain POD -n NS | NS`.
    pub fn from_matches(m: &meshkit::cli::Matches) -> Result<Subject> {
        let [word] = m.args.as_slice() else {
            return Err(m.usage("needs one POD (with -n) or NAMESPACE".into()));
        };
        Subject::parse(word, m.kube.namespace.as_deref())
    }

    /// `pod/NAME` or `NAME` with -n: a pod; `namespace/NAME`, `ns/NAME` or `NAME` alone: a namespace.
    pub fn parse(word: &str, namespace: Option<&str>) -> Result<Subject> {
        let (kind, name) = word.split_once('/').map_or((None, word), |(k, n)| (Some(k), n));
        let invalid =
            || Error::usage(format!("invalid name {word:?}"), "e.g. `explain shop` or `explain web-1 -n shop`");
        // Pod and namespace names are DNS-1123 subdomains: labels joined by dots.
        if name.len() > 253 || !name.split('.').all(meshkit::istio::names::is_dns_label) {
            return Err(invalid());
        }
        match (kind, namespace) {
            (Some("pod" | "pods" | "po"), Some(ns)) | (None, Some(ns)) => {
                Ok(Subject::Pod { namespace: ns.to_string(), name: name.to_string() })
            }
            (Some("pod" | "pods" | "po"), None) => {
                Err(Error::usage(format!("{word} needs -n NAMESPACE"), "the namespace the pod runs in"))
            }
            (Some("namespace" | "namespaces" | "ns") | None, None) => Ok(Subject::Namespace(name.to_string())),
            (Some("namespace" | "namespaces" | "ns"), Some(_)) => {
                Err(Error::usage("a namespace takes no -n", format!("`explain {word}`")))
            }
            (Some(other), _) => {
                Err(Error::usage(format!("cannot explain a {other}"), "name a pod (with -n) or a namespace"))
            }
        }
    }
}

/// The answer for a namespace: what a new pod with no labels gets, then every pod in it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceAnswer {
    pub namespace: String,
    pub new_pod: Explanation,
    pub pods: Vec<Explanation>,
}

pub struct Fetched {
    namespace: NamespaceView,
    pods: Vec<PodView>,
    mesh: Mesh,
    webhooks: Vec<WebhookConfigView>,
}

async fn fetch(cluster: &Cluster, subject: &Subject) -> Result<Fetched> {
    let (ns_name, pod_name) = match subject {
        Subject::Pod { namespace, name } => (namespace.as_str(), Some(name.as_str())),
        Subject::Namespace(name) => (name.as_str(), None),
    };
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    let pods: Api<Pod> = Api::namespaced(cluster.client(), ns_name);
    let get_ns = format!("get namespace {ns_name}");
    let list_pods = format!("list pods in namespace {ns_name}");
    let get_pod = format!("get pod {ns_name}/{}", pod_name.unwrap_or_default());
    let pods = async {
        match pod_name {
            Some(name) => {
                Ok(cluster.call(&get_pod, pods.get_opt(name)).await?.map(|p| PodView::from(&p)).into_iter().collect())
            }
            None => meshkit::kube::pods::list(cluster, Some(ns_name), None, &list_pods, |_| true).await,
        }
    };
    let (control_plane, namespace, pods) = tokio::try_join!(
        meshkit::fetch::control_plane(cluster),
        cluster.call(&get_ns, namespaces.get_opt(ns_name)),
        pods
    )?;
    let Some(namespace) = namespace else {
        return Err(Error::not_found(
            format!("namespace {ns_name} does not exist"),
            "`kubectl get namespaces` lists them",
        ));
    };
    if let (Some(name), true) = (pod_name, pods.is_empty()) {
        return Err(Error::not_found(
            format!("pod {ns_name}/{name} does not exist"),
            format!("`kubectl get pods -n {ns_name}` lists them; `explain {ns_name}` explains them all"),
        ));
    }
    let pods = pods.into_iter().filter(|p| !p.terminating).collect();
    Ok(Fetched {
        namespace: NamespaceView::from(&namespace),
        pods,
        mesh: control_plane.mesh(),
        webhooks: control_plane.webhooks.into_iter().chain(control_plane.foreign_webhooks).collect(),
    })
}

/// Decide: one explanation per pod, and one for a new pod with no labels.
pub fn decide(fetched: &Fetched) -> NamespaceAnswer {
    let Fetched { namespace, pods, mesh, webhooks } = fetched;
    NamespaceAnswer {
        namespace: namespace.name.clone(),
        new_pod: explain(namespace, None, mesh, webhooks),
        pods: pods.iter().map(|p| explain(namespace, Some(p), mesh, webhooks)).collect(),
    }
}

pub async fn run(
    kube: &meshkit::args::KubeArgs,
    output: meshkit::render::OutputArgs,
    subject: &Subject,
) -> Result<Exit> {
    let cluster = Cluster::connect(kube).await?;
    let fetched = fetch(&cluster, subject).await?;
    let answer = decide(&fetched);
    let renderer = Renderer::new(output);
    match subject {
        Subject::Pod { .. } => {
            let pod = &answer.pods[0];
            renderer.print_human(pod, |_| pod_text(&renderer, pod))?;
        }
        Subject::Namespace(_) => renderer.print_human(&answer, |_| namespace_text(&renderer, &answer))?,
    }
    Ok(Exit::Ok)
}

fn injects(e: &Explanation) -> String {
    match (&e.injects, &e.via) {
        (Some(rev), Some(via)) => format!("{rev}, through {via}"),
        _ if !e.opt_outs.is_empty() => format!("nothing: {}", e.opt_outs.join("; ")),
        _ => "nothing: no injector selects it".to_string(),
    }
}

fn state(e: &Explanation) -> Cell {
    match (e.state.as_str(), &e.stale_reason) {
        ("stale", Some(reason)) => Cell::new(format!("stale: {reason}"), Tone::Warn),
        ("upToDate", _) => Cell::new("up to date", Tone::Good),
        ("unresolved", _) => Cell::new("unresolved: its labels name nothing installed", Tone::Bad),
        (other, _) => Cell::from(other),
    }
}

fn pod_text(renderer: &Renderer, e: &Explanation) -> String {
    let mut text = format!("Pod {}/{}\n", e.namespace, e.pod.as_deref().unwrap_or_default());
    text.push_str(&format!("  Injected now by: {}\n", e.injected.as_deref().unwrap_or("none")));
    text.push_str(&format!("  Injected next by: {}\n", injects(e)));
    text.push_str(&format!("  State: {}\n", state(e).text));
    if e.conflict {
        text.push_str("  Error: more than one injector selects it: it would be injected twice\n");
    }
    text.push('\n');
    let mut table = Table::new(&["WEBHOOK", "REVISION", "SELECTS", "REASON"]);
    for w in &e.webhooks {
        let revision = match (&w.tag, &w.revision) {
            (Some(tag), Some(rev)) => format!("{rev} (tag {tag})"),
            (_, rev) => rev.clone().unwrap_or_else(|| "-".into()),
        };
        let selects = if w.selects { Cell::new("yes", Tone::Good) } else { Cell::new("no", Tone::Dim) };
        table.push(vec![
            Cell::from(w.configuration.as_str()),
            Cell::from(revision),
            selects,
            Cell::from(w.reason.as_str()),
        ]);
    }
    text.push_str(&renderer.table_text(&table));
    text
}

fn namespace_text(renderer: &Renderer, answer: &NamespaceAnswer) -> String {
    let mut text = format!("Namespace {}: a new pod is injected by {}\n", answer.namespace, injects(&answer.new_pod));
    if answer.new_pod.conflict {
        text.push_str("Error: more than one injector selects its pods: they would be injected twice\n");
    }
    if answer.pods.is_empty() {
        text.push_str("No pods.\n");
        return text;
    }
    text.push('\n');
    let mut table = Table::new(&["POD", "INJECTED", "NEXT", "STATE"]);
    for e in &answer.pods {
        let next = match (&e.injects, e.opt_outs.first()) {
            (Some(rev), _) => Cell::from(rev.as_str()),
            (None, Some(opt_out)) => Cell::new(format!("none ({opt_out})"), Tone::Dim),
            (None, None) => Cell::new("none", Tone::Dim),
        };
        table.push(vec![
            Cell::from(e.pod.as_deref().unwrap_or_default()),
            Cell::from(e.injected.as_deref().unwrap_or("none")),
            next,
            state(e),
        ]);
    }
    text.push_str(&renderer.table_text(&table));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_names_a_pod_with_a_namespace_and_a_namespace_without() {
        let pod = |ns: &str, name: &str| Subject::Pod { namespace: ns.into(), name: name.into() };
        assert_eq!(Subject::parse("web-1", Some("shop")).unwrap(), pod("shop", "web-1"));
        assert_eq!(Subject::parse("pod/web-1", Some("shop")).unwrap(), pod("shop", "web-1"));
        assert_eq!(Subject::parse("shop", None).unwrap(), Subject::Namespace("shop".into()));
        assert_eq!(Subject::parse("ns/shop", None).unwrap(), Subject::Namespace("shop".into()));
        let usage = |word: &str, ns: Option<&str>| Subject::parse(word, ns).unwrap_err().to_string();
        assert_eq!(usage("pod/web-1", None), "pod/web-1 needs -n NAMESPACE");
        assert_eq!(usage("deployment/web", Some("shop")), "cannot explain a deployment");
        assert_eq!(usage("ns/shop", Some("shop")), "a namespace takes no -n");
        assert_eq!(usage("Bad_Name", None), "invalid name \"Bad_Name\"");
    }
}
