//! `kubectl meshmigrate restart [--wait]`: fetch → decide (`restart::plan`) → apply in waves
//! under the run lock (`waves_run`) → render, after following the new proxies with `--wait`
//! (`restart_wait`).

use std::time::{Duration, Instant};

use meshkit::cli::DryRun;
use meshkit::cluster::Cluster;
use meshkit::render::Renderer;
use meshkit::{Exit, Result};

use crate::restart::{RestartOutcome, RestartResult};
use crate::status::Scope;
use crate::waves::Waves;
use crate::waves_run::Pace;

pub struct RestartArgs {
    pub scope: Scope,
    pub dry_run: DryRun,
    /// Follow the last wave and the new proxies (`--wait`).
    pub wait: bool,
    pub timeout: Duration,
    pub max_concurrent: usize,
}

impl RestartArgs {
    /// `restart [NS…] [--wait] [--max-concurrent N]`.
    pub fn from_matches(m: &meshkit::cli::Matches) -> Result<RestartArgs> {
        Ok(RestartArgs {
            scope: if m.args.is_empty() { Scope::All } else { Scope::Named(m.args.clone()) },
            dry_run: m.dry_run()?,
            wait: m.has("wait"),
            timeout: crate::flags::timeout(m)?,
            max_concurrent: crate::flags::max_concurrent(m)?,
        })
    }
}

/// `kubectl meshmigrate restart`: fetch the namespaces in scope, decide which workloads are
/// stale, restart them in waves under the run lock (or only check them, with a dry run), render.
pub async fn run(
    kube: &meshkit::args::KubeArgs,
    output: meshkit::render::OutputArgs,
    args: &RestartArgs,
) -> Result<Exit> {
    let cluster = Cluster::connect(kube).await?;
    let snapshot = crate::status::fetch(&cluster, &args.scope).await?;
    let (restarts, bare) = crate::restart::plan(&crate::status::decide(&snapshot, &args.scope));
    for pod in &bare {
        if pod.contains("/job/") {
            crate::spec::SPEC
                .note(format_args!("{pod}: a Job's pods get the new sidecar on its next run; nothing to restart"));
        } else {
            crate::spec::SPEC.warn(format_args!("{pod} is stale and has no controller to restart it"));
        }
    }
    let planned = restarts.iter().cloned().map(|r| RestartOutcome::planned(r, RestartResult::WouldRestart));
    let mut waves = Waves::new(planned.collect());
    if args.dry_run == DryRun::Server {
        crate::restart::check_on_server(&cluster, &restarts).await?;
        crate::spec::SPEC
            .note(format_args!("the apiserver accepted every restart (server dry run); nothing was persisted"));
    }
    let renderer = Renderer::new(output);
    if args.dry_run.is_dry() || restarts.is_empty() {
        renderer.print(&waves.outcomes, || crate::restart::outcome_table(&waves.outcomes))?;
        return Ok(Exit::Ok);
    }
    let deadline = Instant::now() + args.timeout;
    apply(&cluster, args, deadline, &mut waves).await?;
    if args.wait && waves.complete(true) {
        let followed = crate::restart_wait::proxies(&cluster, &snapshot, waves, deadline).await?;
        followed.render(&renderer)?;
        return Ok(followed.exit());
    }
    renderer.print(&waves.outcomes, || crate::restart::outcome_table(&waves.outcomes))?;
    Ok(if waves.complete(args.wait) { Exit::Ok } else { Exit::Incomplete })
}

/// The restarts, in waves, under the run lock.
async fn apply(cluster: &Cluster, args: &RestartArgs, deadline: Instant, waves: &mut Waves) -> Result<()> {
    let namespaces: Vec<String> = waves.namespaces();
    let pace = Pace { max_concurrent: args.max_concurrent, deadline, follow_to_the_end: args.wait };
    meshkit::kube::lock::held(cluster, async |user: &str| {
        let start = async |wave: &[crate::restart::Restart]| crate::restart::apply(cluster, user, wave).await;
        crate::waves_run::drive(cluster, &namespaces, waves, &pace, start).await
    })
    .await
}
