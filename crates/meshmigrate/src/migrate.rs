//! `namespace NS…|-l SEL --to T [--restart] [--wait]`: fetch → decide (relabel plan, stale
//! workloads) → apply under the run lock (relabel, restarts in bounded waves) → follow the
//! rollouts → verify every pod → render.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use meshkit::args::KubeArgs;
use meshkit::cli::Matches;
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

impl MigrateArgs {
    /// `namespace NS…|-l SELECTOR --to REV|TAG`.
    pub fn for_move(m: &Matches) -> Result<MigrateArgs> {
        let selector = m.value("selector").map(str::to_string);
        if let Some(selector) = &selector {
            meshkit::args::check_selector(selector)?;
        }
        let selection = match (m.args.is_empty(), selector) {
            (false, None) => Selection::Named(m.args.clone()),
            (true, Some(selector)) => Selection::Selector(selector),
            (false, Some(_)) => return Err(Error::usage("name namespaces or pass -l SELECTOR, not both", m.see())),
            (true, None) => return Err(m.usage("needs at least one NAMESPACE or -l SELECTOR".into())),
        };
        let target = crate::flags::target(m)?;
        MigrateArgs::read(m, Goal::Move { selection, target })
    }

    /// `rollback NS…|--all`.
    pub fn for_rollback(m: &Matches) -> Result<MigrateArgs> {
        if m.args.is_empty() != m.has("all") {
            return Err(m.usage("needs NAMESPACE… or --all (not both)".into()));
        }
        MigrateArgs::read(m, Goal::Rollback { names: m.args.clone() })
    }

    fn read(m: &Matches, goal: Goal) -> Result<MigrateArgs> {
        Ok(MigrateArgs {
            goal,
            restart: m.has("restart"),
            wait: m.has("wait"),
            timeout: crate::flags::timeout(m)?,
            max_concurrent: crate::flags::max_concurrent(m)?,
            dry_run: m.dry_run()?,
            force: m.has("force"),
            yes: m.has("yes"),
        })
    }
}

pub async fn run(kube: &KubeArgs, output: OutputArgs, args: &MigrateArgs) -> Result<Exit> {
    let cluster = Cluster::connect(kube).await?;
    let fetched = fetch(&cluster, args).await?;
    let mut report = decide(&fetched, args, &cluster.istio_namespace)?;
    if args.dry_run.is_dry() {
        if args.dry_run == meshkit::cli::DryRun::Server {
            check_on_server(&cluster, &report).await?;
        }
        render(output, &report, true)?;
        return Ok(Exit::Ok);
    }
    ask(args, &report)?;
    let deadline = Instant::now() + args.timeout;
    apply(&cluster, args, &fetched, &mut report).await?;
    if args.wait {
        check_pods_and_proxies(&cluster, &fetched.mesh, &mut report, deadline).await?;
    }
    render(output, &report, false)?;
    Ok(report.exit())
}

/// What the run decides on: the control plane, the journal, the namespaces it moves or rolls
/// back and, to restart or wait, their pods and workloads.
struct Fetched {
    control_plane: meshkit::fetch::ControlPlane,
    mesh: meshkit::istio::Mesh,
    journal: Journal,
    namespaces: Vec<NamespaceView>,
    pods: Vec<meshkit::istio::PodView>,
    replica_set_owners: BTreeMap<(String, String), String>,
    workloads: Vec<WorkloadView>,
}

async fn fetch(cluster: &Cluster, args: &MigrateArgs) -> Result<Fetched> {
    let (control_plane, journal) = tokio::try_join!(meshkit::fetch::control_plane(cluster), Journal::read(cluster))?;
    let selection = match &args.goal {
        Goal::Move { selection, .. } => selection.clone(),
        Goal::Rollback { names } => Selection::Named(rollback_names(cluster, &journal, names).await?),
    };
    let namespaces = crate::scope::namespaces(cluster, &selection).await?;
    let names: Vec<String> = namespaces.iter().map(|n| n.name.clone()).collect();
    let ((pods, replica_set_owners), workloads) = if args.restart || args.wait {
        tokio::try_join!(crate::scope::pods_and_owners(cluster, &names), crate::rollout::fetch(cluster, &names))?
    } else {
        Default::default()
    };
    let mesh = control_plane.mesh();
    Ok(Fetched { control_plane, mesh, journal, namespaces, pods, replica_set_owners, workloads })
}

/// `rollback NS…` as named; `--all`: every journaled namespace with a move to undo that still
/// exists.
async fn rollback_names(cluster: &Cluster, journal: &Journal, names: &[String]) -> Result<Vec<String>> {
    let mut names = if names.is_empty() { journal.undoable_namespaces() } else { return Ok(names.to_vec()) };
    if !names.is_empty() {
        let existing = crate::scope::existing(cluster).await?;
        let (kept, gone): (Vec<String>, Vec<String>) = names.into_iter().partition(|n| existing.contains(n));
        for name in gone {
            crate::spec::SPEC.note(format_args!("skipping namespace {name}: it no longer exists"));
        }
        names = kept;
    }
    if names.is_empty() {
        return Err(Error::not_found(
            "nothing to roll back: the journal has no move that is not rolled back yet",
            "`kubectl meshmigrate log` shows what is recorded",
        ));
    }
    Ok(names)
}

/// Decide, on plain data: the label changes, and the workloads whose pods they make stale (those
/// an earlier run already restarted are not restarted again).
fn decide(fetched: &Fetched, args: &MigrateArgs, istio_namespace: &str) -> Result<Report> {
    let (plan, target) = match &args.goal {
        Goal::Move { target, .. } => {
            let plan = plan_relabel(&fetched.mesh, &fetched.namespaces, target, istio_namespace, args.force)?;
            (plan, Some(target.clone()))
        }
        Goal::Rollback { .. } => (plan_rollback(&fetched.journal, &fetched.namespaces)?, None),
    };
    let mut restarts = Vec::new();
    if args.restart || args.wait {
        let meshkit::fetch::ControlPlane { istiods, webhooks, services, injects, .. } = fetched.control_plane.clone();
        let snapshot = Snapshot {
            istiods,
            webhooks,
            services,
            injects,
            namespaces: fetched.namespaces.clone(),
            pods: fetched.pods.clone(),
            replica_set_owners: fetched.replica_set_owners.clone(),
            live: None,
        };
        let (stale, bare) = stale_after(&snapshot, &plan);
        for pod in &bare {
            crate::spec::SPEC.warn(format_args!("{pod} will be stale and has no controller to restart it"));
        }
        for restart in stale {
            let result = if already_restarted(&restart, &plan, &fetched.journal, &fetched.workloads) {
                RestartResult::AlreadyRestarted
            } else if args.restart {
                RestartResult::WouldRestart
            } else {
                continue;
            };
            restarts.push(RestartOutcome::planned(restart, result));
        }
    }
    Ok(Report {
        target_revision: target.as_deref().and_then(|t| fetched.mesh.resolve(t)).map(str::to_string),
        target,
        namespaces: plan,
        restarts,
        not_on_target: None,
        proxies: None,
        complete: true,
    })
}

impl Report {
    fn to_restart(&self) -> Vec<Restart> {
        self.restarts.iter().filter(|o| o.result == RestartResult::WouldRestart).map(|o| o.restart.clone()).collect()
    }

    fn exit(&self) -> Exit {
        let unexpected = self.not_on_target.iter().flatten().any(|p| !p.expected())
            || self.proxies.as_ref().is_some_and(|p| p.exit() != Exit::Ok);
        if !self.complete {
            Exit::Incomplete
        } else if unexpected {
            Exit::Failed
        } else {
            Exit::Ok
        }
    }
}

/// `--dry-run=server`: every label change and restart sent with `dryRun=All`.
async fn check_on_server(cluster: &Cluster, report: &Report) -> Result<()> {
    relabel::check_on_server(cluster, &report.namespaces).await?;
    crate::restart::check_on_server(cluster, &report.to_restart()).await?;
    crate::spec::SPEC.note(format_args!("the apiserver accepted every change (server dry run); nothing was persisted"));
    Ok(())
}

/// Restarts, or namespaces chosen by a selector, are confirmed first (unless `--yes`).
fn ask(args: &MigrateArgs, report: &Report) -> Result<()> {
    let to_restart = report.to_restart().len();
    let by_selector = matches!(args.goal, Goal::Move { selection: Selection::Selector(_), .. });
    if to_restart == 0 && !by_selector {
        return Ok(());
    }
    let moved = report.namespaces.len();
    let question = match &report.target {
        Some(target) => format!("Move {moved} namespace(s) to {target} and restart {to_restart} workload(s)?"),
        None => format!("Roll back {moved} namespace(s) and restart {to_restart} workload(s)?"),
    };
    if confirm(&question, args.yes)? == Answer::No {
        return Err(Error::NotConfirmed { what: question.trim_end_matches('?').to_string(), hint: String::new() });
    }
    Ok(())
}

/// Under the run lock: finish what an interrupted run left pending, relabel, restart in waves.
async fn apply(cluster: &Cluster, args: &MigrateArgs, fetched: &Fetched, report: &mut Report) -> Result<()> {
    let action = match args.goal {
        Goal::Move { .. } => Action::Relabel,
        Goal::Rollback { .. } => Action::Rollback,
    };
    meshkit::kube::lock::held(cluster, async |user: &str| {
        if fetched.journal.entries.iter().any(|e| e.state == State::Pending && e.action == Action::Restart) {
            relabel::with_journal(cluster, |j| crate::restart::settle_pending(j, &fetched.workloads)).await?;
        }
        apply_and_follow(cluster, user, args, action, report).await
    })
    .await
}

/// `--wait`: every pod of the moved namespaces on its revision, and its proxy connected.
async fn check_pods_and_proxies(
    cluster: &Cluster,
    mesh: &meshkit::istio::Mesh,
    report: &mut Report,
    deadline: Instant,
) -> Result<()> {
    let names: Vec<String> = report.namespaces.iter().map(|p| p.namespace.clone()).collect();
    let (pods, owners) = crate::scope::pods_and_owners(cluster, &names).await?;
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
        mesh,
        rollouts: &rollouts,
    }));
    let all = |_: &meshkit::istio::ProxyRow| true;
    report.proxies = Some(crate::proxies::await_proxies(cluster, &current, mesh, &all, deadline).await?);
    Ok(())
}

/// Relabels, then restarts in waves (`waves_run`), following them to the end with `--wait`.
async fn apply_and_follow(
    cluster: &Cluster,
    user: &str,
    args: &MigrateArgs,
    action: Action,
    report: &mut Report,
) -> Result<()> {
    relabel::apply(cluster, user, &report.namespaces, action).await?;
    let names: Vec<String> = report.namespaces.iter().map(|p| p.namespace.clone()).collect();
    let mut waves = Waves::new(std::mem::take(&mut report.restarts));
    let pace = Pace {
        max_concurrent: args.max_concurrent,
        deadline: Instant::now() + args.timeout,
        follow_to_the_end: args.wait,
    };
    let start = async |wave: &[Restart]| crate::restart::apply(cluster, user, wave).await;
    let driven = crate::waves_run::drive(cluster, &names, &mut waves, &pace, start).await;
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
