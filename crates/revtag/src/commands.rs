//! Each command: fetch → decide → (confirm) → apply → render.

use meshkit::args::KubeArgs;
use meshkit::cluster::Cluster;
use meshkit::confirm::{Answer, confirm};
use meshkit::render::{Format, Renderer};
use meshkit::{Error, Exit, Result};

use crate::snapshot::{Needs, Snapshot};
use crate::tag::{self, DryRun, SetPlan, SetRequest};
use crate::{list, revisions};

/// What to do, parsed from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    List,
    Revisions {
        revision: Option<String>,
    },
    Set {
        request: SetRequest,
        yes: bool,
        dry_run: DryRun,
    },
    Generate {
        request: SetRequest,
    },
    Remove {
        tag: String,
        yes: bool,
        dry_run: DryRun,
        ignore_not_found: bool,
        take_ownership: bool,
        backup: Option<std::path::PathBuf>,
    },
}

pub async fn run(cluster: &Cluster, kube: &KubeArgs, renderer: Renderer, command: Command) -> Result<Exit> {
    match command {
        Command::List => list::run(cluster, kube, renderer).await,
        Command::Revisions { revision } => {
            let needs = Needs { validating: true, pods: true };
            let (snapshot, live) = tokio::join!(Snapshot::fetch(cluster, needs), meshkit::fetch::live_status(cluster));
            if let Some(line) = live.unreadable_summary() {
                eprintln!("kubectl-revtag: warning: {line}; PROXIES shows ? where it is not known");
            }
            let snapshot = snapshot?;
            let rows = revisions::decide(&snapshot, &live, revision.as_deref())?;
            warn(&revisions::dangling_tags(&snapshot));
            renderer.print(&rows, || revisions::table(&rows))?;
            Ok(Exit::Ok)
        }
        Command::Generate { request } => {
            let snapshot = Snapshot::fetch(cluster, Needs { validating: true, pods: false }).await?;
            let plan = tag::plan_set(&snapshot, &request, true)?;
            warn(&plan.warnings);
            renderer.print_manifests(&manifests(&plan)?)?;
            Ok(Exit::Ok)
        }
        Command::Set { request, yes, dry_run } => {
            let snapshot = Snapshot::fetch(cluster, Needs { validating: true, pods: false }).await?;
            let plan = tag::plan_set(&snapshot, &request, false)?;
            warn(&plan.warnings);
            if let Some(question) = &plan.question
                && dry_run == DryRun::None
            {
                ask(question, yes)?;
            }
            tag::apply_set(cluster, &plan, dry_run).await?;
            if renderer.format == Format::Table {
                let what = match plan.previous.as_deref() {
                    None => format!("created, pointing at revision {:?}", request.revision),
                    Some(previous) if previous == request.revision => {
                        format!("already points at revision {:?}; its objects are up to date", request.revision)
                    }
                    Some(previous) => format!("now points at revision {:?} (was {previous:?})", request.revision),
                };
                let mut text = format!("{}revision tag {:?} {what}\n", dry_run_prefix(dry_run), request.tag);
                if let Some(legacy) = &plan.deactivate {
                    text.push_str(&format!(
                        "{}legacy injector {legacy:?} switched off (`kubectl revtag remove default` switches it back on)\n",
                        dry_run_prefix(dry_run)
                    ));
                }
                meshkit::render::print_text(&text);
            } else {
                renderer.print_manifests(&manifests(&plan)?)?;
            }
            Ok(Exit::Ok)
        }
        Command::Remove { tag, yes, dry_run, ignore_not_found, take_ownership, backup } => {
            let snapshot = Snapshot::fetch(cluster, Needs { validating: true, pods: true }).await?;
            let plan = match tag::plan_remove(&snapshot, &tag, take_ownership) {
                Err(Error::NotFound { .. }) if ignore_not_found => {
                    let result = Removed { tag: tag.clone(), found: false, ..Removed::default() };
                    renderer.print_human(&result, |_| {
                        format!("revision tag {tag:?} does not exist; nothing to remove\n")
                    })?;
                    return Ok(Exit::Ok);
                }
                other => other?,
            };
            warn(&plan.warnings);
            if !plan.users.is_empty() {
                eprintln!("kubectl-revtag: warning: tag {tag} is still used by: {}", plan.users.join(", "));
                if dry_run == DryRun::None {
                    ask(&format!("Remove tag {tag} anyway? New pods there will get no sidecar from it"), yes)?;
                }
            }
            if let Some(path) = backup.as_deref().filter(|_| dry_run == DryRun::None) {
                let written = tag::back_up_removal(cluster, &snapshot, &plan, path).await?;
                eprintln!("kubectl-revtag: backed up {written} objects to {}", path.display());
            }
            tag::apply_remove(cluster, &plan, dry_run).await?;
            let removed: Vec<String> = plan
                .webhooks
                .iter()
                .map(|n| format!("mutatingwebhookconfiguration/{n}"))
                .chain(plan.validators.iter().map(|n| format!("validatingwebhookconfiguration/{n}")))
                .chain(plan.services.iter().map(|n| format!("service/{n}")))
                .collect();
            let result = Removed {
                tag: tag.clone(),
                found: true,
                removed,
                legacy_injector_reactivated: plan.reactivate.clone(),
                dry_run: dry_run_word(dry_run),
            };
            renderer.print_human(&result, |_| {
                let prefix = dry_run_prefix(dry_run);
                let mut text = format!("{prefix}revision tag {tag:?} removed ({})\n", result.removed.join(", "));
                if let Some(legacy) = &result.legacy_injector_reactivated {
                    text.push_str(&format!("{prefix}legacy injector {legacy:?} switched back on\n"));
                }
                text
            })?;
            Ok(Exit::Ok)
        }
    }
}

/// What `remove` did, for `-o json|yaml`.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Removed {
    tag: String,
    found: bool,
    removed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    legacy_injector_reactivated: Option<String>,
    dry_run: &'static str,
}

fn dry_run_word(dry_run: DryRun) -> &'static str {
    match dry_run {
        DryRun::None => "none",
        DryRun::Client => "client",
        DryRun::Server => "server",
    }
}

fn ask(question: &str, yes: bool) -> Result<()> {
    match confirm(question, yes)? {
        Answer::Yes => Ok(()),
        Answer::No => {
            Err(Error::NotConfirmed { what: question.trim_end_matches('?').to_string(), hint: String::new() })
        }
    }
}

fn warn(warnings: &[String]) {
    for warning in warnings {
        eprintln!("kubectl-revtag: warning: {warning}");
    }
}

fn dry_run_prefix(dry_run: DryRun) -> &'static str {
    match dry_run {
        DryRun::None => "",
        DryRun::Client => "(dry run) ",
        DryRun::Server => "(server dry run) ",
    }
}

fn manifests(plan: &SetPlan) -> Result<Vec<serde_json::Value>> {
    let objects = &plan.objects;
    let mut values = vec![to_value(&objects.webhook)?, to_value(&objects.service)?];
    if let Some(validator) = &objects.validator {
        values.push(to_value(validator)?);
    }
    Ok(values)
}

fn to_value(object: &impl serde::Serialize) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(object).map_err(std::io::Error::other)?)
}
