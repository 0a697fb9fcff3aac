//! `retire REV`, run: fetch → decide → (confirm) → journal, backup, release the moved objects,
//! delete (Helm's records, then the objects, webhooks first) → render.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::DeleteParams;
use meshkit::cli::DryRun;
use meshkit::cluster::Cluster;
use meshkit::install::handover::strip_marks;
use meshkit::install::helm::ObjectKey;
use meshkit::istio::Mesh;
use meshkit::render::{Cell, OutputArgs, Renderer, Table, Tone};
use meshkit::{Error, Exit, Result};
use serde::Serialize;

use crate::journal::{Action, Entry, InjectionLabels, State};
use crate::retire::{Decision, Plan, decide, fetch};
use crate::retire_owned::{OWNED, Owned, api};

pub struct RetireArgs {
    pub revision: String,
    pub file: Option<PathBuf>,
    pub dry_run: meshkit::cli::DryRun,
    pub yes: bool,
}

impl RetireArgs {
    /// `retire REVISION [--backup FILE]`.
    pub fn from_matches(m: &meshkit::cli::Matches) -> Result<RetireArgs> {
        let revision = crate::flags::exactly_one(m, "REVISION")?;
        meshkit::istio::names::validate("revision", &revision)?;
        let file = m.value("backup").map(PathBuf::from);
        if let Some(file) = &file {
            meshkit::args::check_output_path(file, false)?;
        }
        Ok(RetireArgs { revision, file, dry_run: m.dry_run()?, yes: m.has("yes") })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    revision: String,
    backup: Option<String>,
    deleted: Vec<Owned>,
    /// Objects of the revision's Helm release that moved to another revision: kept.
    kept: Vec<Owned>,
    /// Helm releases uninstalled (their records deleted after their objects' fate was settled).
    helm_releases: Vec<String>,
    dry_run: bool,
}

impl Report {
    fn new(revision: &str, plan: Plan, backup: Option<String>, dry_run: bool) -> Report {
        Report {
            revision: revision.to_string(),
            backup,
            deleted: plan.delete,
            kept: plan.protect,
            helm_releases: plan.releases.iter().map(|r| format!("{}/{}", r.namespace, r.name)).collect(),
            dry_run,
        }
    }
}

/// Deletes `owned` in order (webhooks first), sent with `params`; already gone is fine.
async fn delete_owned(cluster: &Cluster, owned: &[Owned], params: &DeleteParams) -> Result<()> {
    for object in owned {
        let name = &object.name;
        let what = format!("delete {} {name}", OWNED[object.kind_index].3);
        match cluster.call(&what, api(cluster, object.kind_index).delete(name, params)).await {
            Ok(_) | Err(Error::Api { code: 404, .. }) => {}
            Err(e) => return Err(e),
        }
        if !params.dry_run {
            crate::spec::SPEC.note(format_args!("deleted {} {name}", object.kind.to_ascii_lowercase()));
        }
    }
    Ok(())
}

pub async fn run(kube: &meshkit::args::KubeArgs, output: OutputArgs, args: &RetireArgs) -> Result<Exit> {
    let cluster = Cluster::connect(kube).await?;
    let snapshot = fetch(&cluster, &args.revision).await?;
    let plan = match decide(&args.revision, &snapshot)? {
        Decision::AlreadyRetired => {
            crate::spec::SPEC.note(format_args!("revision {} is already retired; nothing to do", args.revision));
            let report = Report::new(&args.revision, Plan::default(), None, args.dry_run.is_dry());
            Renderer::new(output).print(&report, || table(&report))?;
            return Ok(Exit::Ok);
        }
        Decision::Retire(plan) => plan,
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    let path = args.file.clone().unwrap_or_else(|| {
        PathBuf::from(format!("istio-retire-{}-{}.tar.gz", args.revision, now.strftime("%Y%m%dT%H%M%SZ")))
    });
    if args.dry_run == DryRun::Server {
        remove(&cluster, &plan, DryRun::Server).await?;
        crate::spec::SPEC
            .note(format_args!("the apiserver accepted every change (server dry run); nothing was changed"));
    }
    if args.dry_run.is_dry() {
        let report = Report::new(&args.revision, plan, None, true);
        Renderer::new(output).print(&report, || table(&report))?;
        return Ok(Exit::Ok);
    }
    let releases = plan.releases.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ");
    let helm = if releases.is_empty() { String::new() } else { format!(" and uninstall Helm release {releases}") };
    let question = format!(
        "Delete the {} objects of revision {}{helm} (backed up to {} first)?",
        plan.delete.len(),
        args.revision,
        path.display()
    );
    if meshkit::confirm::confirm(&question, args.yes)? == meshkit::confirm::Answer::No {
        return Err(Error::NotConfirmed { what: question, hint: "nothing was changed".into() });
    }
    meshkit::kube::lock::held(&cluster, async |user: &str| {
        retire(&cluster, user, &args.revision, &plan, &path, now, &snapshot.mesh).await
    })
    .await?;
    let report = Report::new(&args.revision, plan, Some(path.display().to_string()), false);
    Renderer::new(output).print(&report, || table(&report))?;
    Ok(Exit::Ok)
}

/// Frees the moved objects from the release, deletes the release's records (as `helm uninstall`
/// does, so a rerun after an interruption finds the rest by label), then the objects.
async fn remove(cluster: &Cluster, plan: &Plan, dry_run: DryRun) -> Result<()> {
    let plugin = "kubectl-meshmigrate";
    for release in &plan.releases {
        for object in &plan.protect {
            let key = ObjectKey::new(&object.kind, &object.name, object.namespace.as_deref());
            strip_marks(cluster, &key, &release.namespace, plugin, dry_run).await?;
        }
        let secrets: Api<Secret> = Api::namespaced(cluster.client(), &release.namespace);
        let params = DeleteParams { dry_run: dry_run == DryRun::Server, ..DeleteParams::default() };
        for record in release.record_names() {
            let what = format!("delete record {record} of Helm release {}", release.name);
            match cluster.call(&what, secrets.delete(&record, &params)).await {
                Ok(_) | Err(Error::Api { code: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if dry_run == DryRun::None {
            crate::spec::SPEC.note(format_args!("uninstalled Helm release {} (its records are deleted)", release.name));
        }
    }
    let params = DeleteParams { dry_run: dry_run == DryRun::Server, ..DeleteParams::default() };
    delete_owned(cluster, &plan.delete, &params).await
}

/// Journal (pending) → backup → remove → journal (done).
async fn retire(
    cluster: &Cluster,
    user: &str,
    revision: &str,
    plan: &Plan,
    path: &std::path::Path,
    now: k8s_openapi::jiff::Timestamp,
    mesh: &Mesh,
) -> Result<()> {
    let workload = format!("revision/{revision}");
    let id = crate::relabel::with_journal(cluster, |journal| {
        let id = format!("{:06}", journal.next_id());
        journal.entries.push(Entry {
            id: id.clone(),
            time: now.to_string(),
            user: user.to_string(),
            action: Action::Retire,
            namespace: cluster.istio_namespace.clone(),
            from: InjectionLabels::default(),
            to: InjectionLabels::default(),
            state: State::Pending,
            undoes: None,
            workload: Some(workload.clone()),
        });
        id
    })
    .await?;
    backup(cluster, plan, path, mesh).await?;
    remove(cluster, plan, DryRun::None).await?;
    crate::relabel::with_journal(cluster, |journal| {
        if let Some(entry) = journal.entries.iter_mut().find(|e| e.id == id) {
            entry.state = State::Done;
        }
    })
    .await?;
    Ok(())
}

/// Everything about to be deleted or changed (the release's records and the objects it lets go
/// included), in meshbackup's archive format (`kubectl meshbackup inspect`
/// verifies it, `restore` puts it back). Written to a temporary file and renamed; never over an
/// existing file.
async fn backup(cluster: &Cluster, plan: &Plan, path: &std::path::Path, mesh: &Mesh) -> Result<()> {
    let objects: Vec<(serde_json::Value, &str)> = plan
        .delete
        .iter()
        .chain(&plan.protect)
        .map(|o| (o.object.clone(), OWNED[o.kind_index].3))
        .chain(plan.releases.iter().flat_map(|r| &r.records).map(|r| (r.clone(), "secrets")))
        .collect();
    let tool = format!("kubectl-meshmigrate {} retire", env!("CARGO_PKG_VERSION"));
    let written = meshkit::backup::write(cluster, mesh, &tool, path, &objects).await?;
    crate::spec::SPEC.note(format_args!("backed up {written} objects to {}", path.display()));
    Ok(())
}

fn table(report: &Report) -> Table {
    let verb = if report.dry_run { "would delete" } else { "deleted" };
    let mut table = Table::new(&["KIND", "NAMESPACE", "NAME", "RESULT"]);
    let row = |object: &Owned, result: Cell| {
        vec![
            Cell::from(object.kind.as_str()),
            Cell::from(object.namespace.as_deref().unwrap_or("")),
            Cell::from(object.name.as_str()),
            result,
        ]
    };
    for object in &report.deleted {
        table.push(row(object, Cell::new(verb, if report.dry_run { Tone::Warn } else { Tone::Good })));
    }
    for object in &report.kept {
        table.push(row(object, Cell::new("kept: it moved to another revision", Tone::Dim)));
    }
    for release in &report.helm_releases {
        let (namespace, name) = release.split_once('/').unwrap_or(("", release));
        let result = if report.dry_run { "would uninstall" } else { "uninstalled" };
        table.push(vec![
            Cell::from("Helm release"),
            Cell::from(namespace),
            Cell::from(name),
            Cell::new(result, Tone::Warn),
        ]);
    }
    table
}
