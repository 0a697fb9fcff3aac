//! fetch → decide → apply → render for `namespace` and `rollback`.

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use meshkit::args::KubeArgs;
use meshkit::cluster::Cluster;
use meshkit::istio::NamespaceView;
use meshkit::render::{OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};

use crate::journal::{Action, Journal};
use crate::relabel::{self, plan_relabel, plan_rollback};

/// `target` set: move to it; unset: roll back.
pub async fn relabel(
    kube: &KubeArgs,
    output: OutputArgs,
    names: &[String],
    target: Option<&str>,
    dry_run: bool,
    force: bool,
) -> Result<Exit> {
    let cluster = Cluster::connect(kube).await?;
    let namespaces = get_namespaces(&cluster, names).await?;
    let plan = match target {
        Some(target) => {
            let mesh = meshkit::fetch::control_plane(&cluster).await?.mesh();
            plan_relabel(&mesh, &namespaces, target, &cluster.istio_namespace, force)?
        }
        None => plan_rollback(&Journal::read(&cluster).await?, &namespaces)?,
    };
    if !dry_run {
        let action = if target.is_some() { Action::Relabel } else { Action::Rollback };
        relabel::apply(&cluster, &plan, action).await?;
    }
    Renderer::new(output).print(&plan, || relabel::plan_table(&plan, dry_run))?;
    Ok(Exit::Ok)
}

/// The named namespaces; every missing one is reported before anything changes.
async fn get_namespaces(cluster: &Cluster, names: &[String]) -> Result<Vec<NamespaceView>> {
    let api: Api<Namespace> = Api::all(cluster.client());
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        match cluster.call(&format!("get namespace {name}"), api.get_opt(name)).await? {
            Some(ns) => found.push(NamespaceView::from(&ns)),
            None => missing.push(name.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::not_found(
            format!("namespace(s) {} do not exist", missing.join(", ")),
            "`kubectl get namespaces` lists them",
        ));
    }
    Ok(found)
}
