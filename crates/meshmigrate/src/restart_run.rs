//! `kubectl meshmigrate restart [--wait]`: fetch → decide (`restart::plan`) → apply under the
//! run lock → render, or follow the rollouts and the new proxies first (`restart_wait`).

use meshkit::Result;
use meshkit::cluster::Cluster;

/// `kubectl meshmigrate restart`: fetch the namespaces in scope, decide which workloads are
/// stale, restart them under the run lock (or only check them, with a dry run), render.
pub async fn run(
    kube: &meshkit::args::KubeArgs,
    output: meshkit::render::OutputArgs,
    scope: &crate::status::Scope,
    dry_run: meshkit::cli::DryRun,
    wait: Option<std::time::Duration>,
) -> Result<meshkit::Exit> {
    use meshkit::cli::DryRun;
    let cluster = Cluster::connect(kube).await?;
    let snapshot = crate::status::fetch(&cluster, scope).await?;
    let (restarts, bare) = crate::restart::plan(&crate::status::decide(&snapshot, scope));
    for pod in &bare {
        if pod.contains("/job/") {
            eprintln!(
                "kubectl-meshmigrate: {pod}: a Job's pods get the new sidecar on its next run; nothing to restart"
            );
        } else {
            eprintln!("kubectl-meshmigrate: warning: {pod} is stale and has no controller to restart it");
        }
    }
    if dry_run == DryRun::Server {
        crate::restart::check_on_server(&cluster, &restarts).await?;
        eprintln!("kubectl-meshmigrate: the apiserver accepted every restart (server dry run); nothing was persisted");
    }
    if !dry_run.is_dry() && !restarts.is_empty() {
        let user = crate::relabel::whoami(&cluster).await;
        let lock = crate::lock::acquire(&cluster, &user).await?;
        let restarted = crate::restart::apply(&cluster, &user, &restarts).await;
        let released = lock.release().await;
        restarted?;
        released?;
        if let Some(timeout) = wait {
            let followed = crate::restart_wait::follow(&cluster, &snapshot, restarts, timeout).await?;
            followed.render(&meshkit::render::Renderer::new(output), false)?;
            return Ok(followed.exit());
        }
    }
    meshkit::render::Renderer::new(output).print(&restarts, || crate::restart::table(&restarts, dry_run.is_dry()))?;
    Ok(meshkit::Exit::Ok)
}
