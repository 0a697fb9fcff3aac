//! `namespace NS…|-l SEL --to T [--restart] [--wait]`: fetch → decide (relabel plan, stale
//! workloads) → apply under the run lock (relabel, restarts in bounded waves) → follow the
//! rollouts → verify every pod → render.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use meshkit::args::KubeArgs;
use meshkit::cluster::Cluster;
use meshkit::confirm::{Answer, confirm};
use meshkit::istio::NamespaceView;
use meshkit::render::{OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};
use serde::Serialize;

use crate::journal::InjectionLabels;
use crate::journal::{Action, Journal, State};
use crate::proxies::ProxyCheck;
use crate::relabel::{self, Planned, plan_relabel, plan_rollback};
use crate::restart::{Restart, RestartOutcome, RestartResult};
use crate::rollout::{Rollout, WorkloadView};
use crate::scope::Selection;
use crate::status::{Scope, Snapshot};
use crate::verify::{NotOnTarget, VerifyInput};
use crate::waves::Waves;
use crate::waves_run::Pace;

/// What the run changes namespaces to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Goal {
    /// `namespace … --to T`
    Move { selection: Selection, target: String },
    /// `rollback NS…`, or every namespace with something to roll back (`--all`).
    Rollback { names: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct MigrateArgs {
    pub goal: Goal,
    pub restart: bool,
    pub wait: bool,
    pub timeout: Duration,
    pub max_concurrent: usize,
    pub dry_run: meshkit::cli::DryRun,
    pub force: bool,
    pub yes: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    pub namespaces: Vec<Planned>,
    pub restarts: Vec<RestartOutcome>,
    /// Filled in with `--wait`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_on_target: Option<Vec<NotOnTarget>>,
    /// Filled in with `--wait`: the new proxies, checked live against every istiod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxies: Option<ProxyCheck>,
    /// Every rollout finished (false when the deadline came first or one is stuck).
    pub complete: bool,
}

/// Whether an earlier run already restarted `workload` after its namespace last moved: this run
/// does not move it, and its pod template's restart stamp is newer than the journal's last label
/// change there.
pub fn already_restarted(restart: &Restart, plan: &[Planned], journal: &Journal, workloads: &[WorkloadView]) -> bool {
    if plan.iter().any(|p| p.namespace == restart.namespace && !p.unchanged) {
        return false;
    }
    let moved_at = journal
        .entries
        .iter()
        .rev()
        .find(|e| e.namespace == restart.namespace && matches!(e.action, Action::Relabel | Action::Rollback))
        .and_then(|e| e.time.parse::<Timestamp>().ok());
    let stamped = workloads
        .iter()
        .find(|w| w.namespace == restart.namespace && w.workload == restart.workload)
        .and_then(|w| w.restarted_at.as_deref())
        .and_then(|t| t.parse::<Timestamp>().ok());
    matches!((moved_at, stamped), (Some(moved), Some(stamped)) if stamped >= moved)
}

fn from_labels(labels: &InjectionLabels) -> meshkit::istio::Labels {
    [(meshkit::istio::keys::INJECTION, &labels.istio_injection), (meshkit::istio::keys::REV, &labels.istio_rev)]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
        .collect()
}

/// The workloads whose pods would be stale once `plan` is applied.
pub fn stale_after(snapshot: &Snapshot, plan: &[Planned]) -> (Vec<Restart>, Vec<String>) {
    let mut moved = snapshot.clone();
    for ns in &mut moved.namespaces {
        if let Some(p) = plan.iter().find(|p| p.namespace == ns.name) {
            ns.labels.retain(|k, _| k != meshkit::istio::keys::INJECTION && k != meshkit::istio::keys::REV);
            ns.labels.extend(from_labels(&p.to));
        }
    }
    let names = moved.namespaces.iter().map(|n| n.name.clone()).collect();
    crate::restart::plan(&crate::status::decide(&moved, &Scope::Named(names)))
}

pub async fn run(kube: &KubeArgs, output: OutputArgs, args: &MigrateArgs) -> Result<Exit> {
    let cluster = Cluster::connect(kube).await?;
    let (control_plane, journal) = tokio::try_join!(meshkit::fetch::control_plane(&cluster), Journal::read(&cluster))?;
    let mesh = control_plane.mesh();
    let (plan, target, action) = match &args.goal {
        Goal::Move { selection, target } => {
            let namespaces = crate::scope::namespaces(&cluster, selection).await?;
            let plan = plan_relabel(&mesh, &namespaces, target, &cluster.istio_namespace, args.force)?;
            (plan, Some(target.clone()), Action::Relabel)
        }
        Goal::Rollback { names } => {
            let all = names.is_empty();
            let mut names = if all { journal.undoable_namespaces() } else { names.clone() };
            if all && !names.is_empty() {
                // --all: a journaled namespace deleted since has nothing left to roll back.
                let existing = crate::scope::existing(&cluster).await?;
                let (kept, gone): (Vec<String>, Vec<String>) = names.into_iter().partition(|n| existing.contains(n));
                for name in gone {
                    eprintln!("kubectl-meshmigrate: skipping namespace {name}: it no longer exists");
                }
                names = kept;
            }
            if names.is_empty() {
                return Err(Error::not_found(
                    "nothing to roll back: the journal has no move that is not rolled back yet",
                    "`kubectl meshmigrate log` shows what is recorded",
                ));
            }
            let namespaces = crate::scope::namespaces(&cluster, &Selection::Named(names)).await?;
            (plan_rollback(&journal, &namespaces)?, None, Action::Rollback)
        }
    };
    let target_revision = target.as_deref().and_then(|t| mesh.resolve(t)).map(str::to_string);
    let namespaces: Vec<NamespaceView> =
        plan.iter().map(|p| NamespaceView { name: p.namespace.clone(), labels: from_labels(&p.from) }).collect();
    let names: Vec<String> = namespaces.iter().map(|n| n.name.clone()).collect();

    let mut outcomes = Vec::new();
    let mut workloads = Vec::new();
    if args.restart || args.wait {
        let ((pods, owners), fetched) =
            tokio::try_join!(crate::scope::pods_and_owners(&cluster, &names), crate::rollout::fetch(&cluster, &names))?;
        workloads = fetched;
        let meshkit::fetch::ControlPlane { istiods, webhooks, services, injects, .. } = control_plane.clone();
        let snapshot = Snapshot {
            istiods,
            webhooks,
            services,
            injects,
            namespaces: namespaces.clone(),
            pods,
            replica_set_owners: owners,
            live: None,
        };
        let (restarts, bare) = stale_after(&snapshot, &plan);
        for pod in &bare {
            eprintln!("kubectl-meshmigrate: warning: {pod} will be stale and has no controller to restart it");
        }
        for restart in restarts {
            let result = if already_restarted(&restart, &plan, &journal, &workloads) {
                RestartResult::AlreadyRestarted
            } else if args.restart {
                RestartResult::WouldRestart
            } else {
                continue;
            };
            outcomes.push(RestartOutcome::planned(restart, result));
        }
    }
    let mut report = Report {
        target: target.clone(),
        target_revision: target_revision.clone(),
        namespaces: plan,
        restarts: outcomes,
        not_on_target: None,
        proxies: None,
        complete: true,
    };
    if args.dry_run == meshkit::cli::DryRun::Server {
        relabel::check_on_server(&cluster, &report.namespaces).await?;
        let restarts: Vec<Restart> = report
            .restarts
            .iter()
            .filter(|o| o.result == RestartResult::WouldRestart)
            .map(|o| o.restart.clone())
            .collect();
        crate::restart::check_on_server(&cluster, &restarts).await?;
        eprintln!("kubectl-meshmigrate: the apiserver accepted every change (server dry run); nothing was persisted");
    }
    if args.dry_run.is_dry() {
        render(output, &report, true)?;
        return Ok(Exit::Ok);
    }
    let to_restart = report.restarts.iter().filter(|o| o.result == RestartResult::WouldRestart).count();
    let by_selector = matches!(args.goal, Goal::Move { selection: Selection::Selector(_), .. });
    if to_restart > 0 || by_selector {
        let question = match &target {
            Some(target) => format!(
                "Move {} namespace(s) to {target} and restart {to_restart} workload(s)?",
                report.namespaces.len()
            ),
            None => format!("Roll back {} namespace(s) and restart {to_restart} workload(s)?", report.namespaces.len()),
        };
        if confirm(&question, args.yes)? == Answer::No {
            return Err(Error::NotConfirmed { what: question.trim_end_matches('?').to_string(), hint: String::new() });
        }
    }
    let user = relabel::whoami(&cluster).await;
    let lock = crate::lock::acquire(&cluster, &user).await?;
    let deadline = Instant::now() + args.timeout;
    let outcome = async {
        let user = user.as_str();
        if journal.entries.iter().any(|e| e.state == State::Pending && e.action == Action::Restart) {
            relabel::with_journal(&cluster, |j| crate::restart::settle_pending(j, &workloads)).await?;
        }
        apply_and_follow(&cluster, user, args, action, &names, &mut report).await
    }
    .await;
    let released = lock.release().await;
    outcome?;
    released?;
    if args.wait {
        let (pods, owners) = crate::scope::pods_and_owners(&cluster, &names).await?;
        // The labels this run set, under the lock (no request per namespace).
        let current: Vec<NamespaceView> = report
            .namespaces
            .iter()
            .map(|p| NamespaceView { name: p.namespace.clone(), labels: from_labels(&p.to) })
            .collect();
        let rollouts: BTreeMap<(String, String), Rollout> = report
            .restarts
            .iter()
            .filter_map(|o| Some(((o.restart.namespace.clone(), o.restart.workload.clone()), o.rollout.clone()?)))
            .collect();
        report.not_on_target = Some(crate::verify::verify(&VerifyInput {
            namespaces: &current,
            pods: &pods,
            replica_set_owners: &owners,
            mesh: &mesh,
            rollouts: &rollouts,
        }));
        let all = |_: &meshkit::istio::ProxyRow| true;
        report.proxies = Some(crate::proxies::await_proxies(&cluster, &current, &mesh, &all, deadline).await?);
    }
    render(output, &report, false)?;
    let unexpected = report.not_on_target.iter().flatten().any(|p| !p.expected())
        || report.proxies.as_ref().is_some_and(|p| p.exit() != Exit::Ok);
    Ok(if !report.complete {
        Exit::Incomplete
    } else if unexpected {
        Exit::Failed
    } else {
        Exit::Ok
    })
}

/// Relabels, then restarts in waves (`waves_run`), following them to the end with `--wait`.
async fn apply_and_follow(
    cluster: &Cluster,
    user: &str,
    args: &MigrateArgs,
    action: Action,
    names: &[String],
    report: &mut Report,
) -> Result<()> {
    relabel::apply(cluster, user, &report.namespaces, action).await?;
    let mut waves = Waves::new(std::mem::take(&mut report.restarts));
    let pace = Pace {
        max_concurrent: args.max_concurrent,
        deadline: Instant::now() + args.timeout,
        follow_to_the_end: args.wait,
    };
    let start = async |wave: &[Restart]| crate::restart::apply(cluster, user, wave).await;
    let driven = crate::waves_run::drive(cluster, names, &mut waves, &pace, start).await;
    report.complete = waves.complete(args.wait);
    report.restarts = waves.outcomes;
    driven
}

fn render(output: OutputArgs, report: &Report, dry_run: bool) -> Result<()> {
    let renderer = Renderer::new(output);
    renderer.print_human(report, |_| {
        let mut text = renderer.table_text(&relabel::plan_table(&report.namespaces, dry_run));
        if !report.restarts.is_empty() {
            text.push('\n');
            text.push_str(&renderer.table_text(&crate::restart::outcome_table(&report.restarts)));
        }
        if let Some(problems) = &report.not_on_target {
            text.push('\n');
            if problems.is_empty() {
                text.push_str("Every pod has the sidecar its namespace asks for.\n");
            } else {
                text.push_str(&renderer.table_text(&crate::verify::table(problems)));
            }
        }
        if let Some(proxies) = &report.proxies {
            text.push_str(&proxies.text(|t| renderer.table_text(t)));
        }
        if !report.complete {
            text.push_str(
                "\nIncomplete: restarts above did not all start or finish; rerun the same command to continue.\n",
            );
        }
        text
    })
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
mod tests;
