//! `namespace NS… --to T` and `rollback NS…`: plan (pure) → record in the journal → relabel →
//! mark done. A rerun after any interruption converges: namespaces already as planned are left
//! alone and their pending journal entries are marked done.

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams};
use meshkit::cluster::Cluster;
use meshkit::istio::{Mesh, NamespaceView, TagTarget, keys};
use meshkit::render::{Cell, Table, Tone};
use meshkit::{Error, Result};
use serde::Serialize;

use crate::journal::{Action, Entry, InjectionLabels, Journal, State};

/// Namespaces a relabel refuses unless forced: those istiod never injects (a label there does
/// nothing) and, at run time, the Istio namespace.
const SYSTEM_NAMESPACES: [&str; 4] = meshkit::istio::keys::NEVER_INJECTED_NAMESPACES;

pub fn labels_of(ns: &NamespaceView) -> InjectionLabels {
    InjectionLabels {
        istio_injection: ns.labels.get(keys::INJECTION).cloned(),
        istio_rev: ns.labels.get(keys::REV).cloned(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Planned {
    pub namespace: String,
    pub from: InjectionLabels,
    pub to: InjectionLabels,
    /// Already as planned: nothing to do.
    pub unchanged: bool,
    /// For a rollback: the journal entry it undoes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undoes: Option<String>,
}

/// A target must be an installed revision, or a tag whose revision is installed.
pub fn check_target(mesh: &Mesh, target: &str) -> Result<()> {
    match mesh.target(target) {
        TagTarget::Revision(_) | TagTarget::Tag { revision: Some(_), .. } => {}
        TagTarget::Tag { tag, revision: None } => {
            return Err(Error::refused(
                format!("tag {target} points at revision {}, which is not installed", tag.revision),
                "point the tag at an installed revision first (kubectl revtag set)",
            ));
        }
        TagTarget::Unknown => {
            let known: Vec<&str> = mesh
                .installed_revisions()
                .map(|r| r.name.as_str())
                .chain(mesh.tags.keys().map(String::as_str))
                .collect();
            return Err(Error::not_found(
                format!("no revision or tag named {target:?}"),
                if known.is_empty() {
                    "no revision is installed".to_string()
                } else {
                    format!("revisions and tags: {}", known.join(", "))
                },
            ));
        }
    }
    Ok(())
}

/// Decide a move of `namespaces` to `target` (a revision or a tag).
pub fn plan_relabel(
    mesh: &Mesh,
    namespaces: &[NamespaceView],
    target: &str,
    istio_namespace: &str,
    force: bool,
) -> Result<Vec<Planned>> {
    check_target(mesh, target)?;
    let system: Vec<&str> = namespaces
        .iter()
        .map(|n| n.name.as_str())
        .filter(|n| SYSTEM_NAMESPACES.contains(n) || *n == istio_namespace)
        .collect();
    if !system.is_empty() && !force {
        return Err(Error::refused(
            format!("refusing to relabel system namespace(s) {}", system.join(", ")),
            "injecting sidecars there breaks the cluster or the mesh; pass --force if you really mean it",
        ));
    }
    let to = InjectionLabels { istio_injection: None, istio_rev: Some(target.to_string()) };
    Ok(namespaces
        .iter()
        .map(|ns| {
            let from = labels_of(ns);
            Planned { namespace: ns.name.clone(), unchanged: from == to, from, to: to.clone(), undoes: None }
        })
        .collect())
}

/// Decide a rollback of `namespaces` to the labels their last recorded relabel replaced.
pub fn plan_rollback(journal: &Journal, namespaces: &[NamespaceView]) -> Result<Vec<Planned>> {
    namespaces
        .iter()
        .map(|ns| {
            let entry = journal.last_undoable(&ns.name).ok_or_else(|| {
                Error::not_found(
                    format!("no recorded change to roll back for namespace {}", ns.name),
                    "`kubectl meshmigrate log` shows what is recorded",
                )
            })?;
            let from = labels_of(ns);
            Ok(Planned {
                namespace: ns.name.clone(),
                unchanged: from == entry.from,
                from,
                to: entry.from.clone(),
                undoes: Some(entry.id.clone()),
            })
        })
        .collect()
}

/// Records, relabels, marks done. Conflicting journal writes are retried on a fresh read.
/// The namespace patches of `plan`, sent with `params`.
async fn send_relabels(cluster: &Cluster, plan: &[Planned], params: &PatchParams) -> Result<()> {
    let api: Api<Namespace> = Api::all(cluster.client());
    for p in plan.iter().filter(|p| !p.unchanged) {
        let patch = serde_json::json!({"metadata": {"labels": {keys::INJECTION: p.to.istio_injection, keys::REV: p.to.istio_rev}}});
        let what = format!("relabel namespace {}", p.namespace);
        cluster.call(&what, api.patch(&p.namespace, params, &Patch::Merge(&patch))).await?;
    }
    Ok(())
}

/// `--dry-run=server`: the apiserver validates every relabel (admission included) and persists
/// nothing; no journal entry, no lock.
pub async fn check_on_server(cluster: &Cluster, plan: &[Planned]) -> Result<()> {
    send_relabels(cluster, plan, &PatchParams { dry_run: true, ..PatchParams::default() }).await
}

pub async fn apply(cluster: &Cluster, user: &str, plan: &[Planned], action: Action) -> Result<()> {
    let time = k8s_openapi::jiff::Timestamp::now().to_string();
    // 1. Record what is about to change (and settle entries an interrupted run left pending).
    let ids = with_journal(cluster, |journal| {
        settle_pending(journal, plan);
        let mut ids = Vec::new();
        for (next, p) in (journal.next_id()..).zip(plan.iter().filter(|p| !p.unchanged)) {
            let id = format!("{next:06}");
            journal.entries.push(Entry {
                id: id.clone(),
                time: time.clone(),
                user: user.to_string(),
                action,
                namespace: p.namespace.clone(),
                from: p.from.clone(),
                to: p.to.clone(),
                state: State::Pending,
                undoes: p.undoes.clone(),
                workload: None,
            });
            ids.push(id);
        }
        ids
    })
    .await?;
    // 2. Relabel.
    send_relabels(cluster, plan, &PatchParams::default()).await?;
    // 3. Done.
    with_journal(cluster, |journal| {
        for entry in journal.entries.iter_mut().filter(|e| ids.contains(&e.id)) {
            entry.state = State::Done;
        }
    })
    .await
}

/// Label changes left pending by an interrupted run: done if the namespace now has the labels
/// they aimed at, abandoned if it still has the ones they started from.
fn settle_pending(journal: &mut Journal, plan: &[Planned]) {
    let label_changes = |e: &&mut Entry| e.state == State::Pending && e.action != Action::Restart;
    for entry in journal.entries.iter_mut().filter(label_changes) {
        let Some(p) = plan.iter().find(|p| p.namespace == entry.namespace) else { continue };
        if p.from == entry.to {
            entry.state = State::Done;
        } else if p.from == entry.from {
            entry.state = State::Abandoned;
        }
    }
}

pub async fn with_journal<T>(cluster: &Cluster, mut change: impl FnMut(&mut Journal) -> T) -> Result<T> {
    const ATTEMPTS: usize = 5;
    for attempt in 1..=ATTEMPTS {
        let mut journal = Journal::read(cluster).await?;
        let out = change(&mut journal);
        match journal.write(cluster).await {
            Ok(()) => return Ok(out),
            Err(Error::Api { code: 409, .. }) if attempt < ATTEMPTS => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the last attempt returns")
}

fn show(labels: &InjectionLabels) -> String {
    let parts: Vec<String> = [(keys::INJECTION, &labels.istio_injection), (keys::REV, &labels.istio_rev)]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    if parts.is_empty() { "(none)".to_string() } else { parts.join(",") }
}

pub fn plan_table(plan: &[Planned], dry_run: bool) -> Table {
    let mut table = Table::new(&["NAMESPACE", "FROM", "TO", "RESULT"]);
    for p in plan {
        let result = match (p.unchanged, dry_run) {
            (true, _) => Cell::new("unchanged", Tone::Dim),
            (false, true) => Cell::new("would change (dry run)", Tone::Warn),
            (false, false) => Cell::new("changed", Tone::Good),
        };
        table.push(vec![Cell::from(p.namespace.as_str()), Cell::from(show(&p.from)), Cell::from(show(&p.to)), result]);
    }
    table
}

pub fn log_table(journal: &Journal) -> Table {
    let mut table = Table::new(&["ID", "TIME", "USER", "ACTION", "NAMESPACE", "FROM", "TO", "STATE"]);
    for e in &journal.entries {
        let action = match (e.action, &e.undoes, &e.workload) {
            (Action::Relabel, _, _) => "relabel".to_string(),
            (Action::Rollback, Some(id), _) => format!("rollback of {id}"),
            (Action::Rollback, None, _) => "rollback".to_string(),
            (Action::Restart, _, Some(workload)) => format!("restart {workload}"),
            (Action::Restart, _, None) => "restart".to_string(),
            (Action::Gateway, _, Some(workload)) => format!("gateway {workload}"),
            (Action::Gateway, _, None) => "gateway".to_string(),
            (Action::Retire, _, Some(workload)) => format!("retire {workload}"),
            (Action::Retire, _, None) => "retire".to_string(),
        };
        let state = match e.state {
            State::Done => Cell::new("done", Tone::Good),
            State::Pending => Cell::new("pending", Tone::Warn),
            State::Abandoned => Cell::new("abandoned (never made)", Tone::Dim),
        };
        table.push(vec![
            Cell::from(e.id.as_str()),
            Cell::from(e.time.as_str()),
            Cell::from(e.user.as_str()),
            Cell::from(action),
            Cell::from(e.namespace.as_str()),
            Cell::from(show(&e.from)),
            Cell::from(show(&e.to)),
            state,
        ]);
    }
    table
}

/// `kubectl meshmigrate log`: the journal as a table or data.
pub async fn log(kube: &meshkit::args::KubeArgs, output: meshkit::render::OutputArgs) -> Result<meshkit::Exit> {
    let cluster = Cluster::connect(kube).await?;
    let journal = Journal::read(&cluster).await?;
    meshkit::render::Renderer::new(output).print(&journal.entries, || log_table(&journal))?;
    Ok(meshkit::Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshkit::istio::IstiodView;
    use meshkit::testing::{istiod, labels};

    fn mesh() -> Mesh {
        let tag = meshkit::testing::tag_webhook;
        let istiods: Vec<IstiodView> = vec![istiod("1-30-3", "1.30.3"), istiod("1-31-1", "1.31.1")];
        Mesh::discover(&istiods, &[tag("prod-canary", "1-31-1"), tag("old", "1-29-0")], &[])
    }

    fn ns(name: &str, pairs: &[(&str, &str)]) -> NamespaceView {
        NamespaceView { name: name.into(), labels: labels(pairs) }
    }

    #[test]
    fn relabel_removes_istio_injection_and_sets_the_target() {
        let plan = plan_relabel(
            &mesh(),
            &[ns("a", &[("istio-injection", "enabled")]), ns("b", &[("istio.io/rev", "prod-canary")])],
            "prod-canary",
            "istio-system",
            false,
        )
        .unwrap();
        assert_eq!(plan[0].from, InjectionLabels { istio_injection: Some("enabled".into()), istio_rev: None });
        assert_eq!(plan[0].to, InjectionLabels { istio_injection: None, istio_rev: Some("prod-canary".into()) });
        assert!(!plan[0].unchanged);
        assert!(plan[1].unchanged, "already there: a rerun changes nothing");
    }

    #[test]
    fn refuses_unknown_and_dangling_targets_and_system_namespaces() {
        let err = plan_relabel(&mesh(), &[ns("a", &[])], "1-28-0", "istio-system", false).unwrap_err();
        assert_eq!(err.to_string(), "no revision or tag named \"1-28-0\"");
        assert_eq!(err.hint().as_deref(), Some("revisions and tags: 1-30-3, 1-31-1, old, prod-canary"));
        let err = plan_relabel(&mesh(), &[ns("a", &[])], "old", "istio-system", false).unwrap_err();
        assert_eq!(err.to_string(), "tag old points at revision 1-29-0, which is not installed");
        let err =
            plan_relabel(&mesh(), &[ns("kube-system", &[]), ns("istio-system", &[])], "1-31-1", "istio-system", false)
                .unwrap_err();
        assert_eq!(err.to_string(), "refusing to relabel system namespace(s) kube-system, istio-system");
        assert!(plan_relabel(&mesh(), &[ns("kube-system", &[])], "1-31-1", "istio-system", true).is_ok());
    }

    #[test]
    fn rollback_restores_exactly_what_was_recorded() {
        let journal = Journal {
            entries: vec![Entry {
                id: "000001".into(),
                time: "t".into(),
                user: "u".into(),
                action: Action::Relabel,
                namespace: "a".into(),
                from: InjectionLabels { istio_injection: Some("enabled".into()), istio_rev: None },
                to: InjectionLabels { istio_injection: None, istio_rev: Some("prod-canary".into()) },
                state: State::Done,
                undoes: None,
                workload: None,
            }],
            ..Default::default()
        };
        let plan = plan_rollback(&journal, &[ns("a", &[("istio.io/rev", "prod-canary")])]).unwrap();
        assert_eq!(plan[0].to, InjectionLabels { istio_injection: Some("enabled".into()), istio_rev: None });
        assert_eq!(plan[0].undoes.as_deref(), Some("000001"));
        let err = plan_rollback(&journal, &[ns("b", &[])]).unwrap_err();
        assert_eq!(err.to_string(), "no recorded change to roll back for namespace b");
    }

    #[test]
    fn interrupted_runs_settle() {
        let mut journal = Journal::default();
        journal.entries.push(Entry {
            id: "000001".into(),
            time: "t".into(),
            user: "u".into(),
            action: Action::Relabel,
            namespace: "a".into(),
            from: InjectionLabels::default(),
            to: InjectionLabels { istio_injection: None, istio_rev: Some("1-31-1".into()) },
            state: State::Pending,
            undoes: None,
            workload: None,
        });
        let mut never_made = journal.clone();
        let rerun =
            plan_relabel(&mesh(), &[ns("a", &[("istio.io/rev", "1-31-1")])], "1-31-1", "istio-system", false).unwrap();
        settle_pending(&mut journal, &rerun);
        assert_eq!(journal.entries[0].state, State::Done);
        let rerun = plan_relabel(&mesh(), &[ns("a", &[])], "1-31-1", "istio-system", false).unwrap();
        settle_pending(&mut never_made, &rerun);
        assert_eq!(never_made.entries[0].state, State::Abandoned);
    }
}
