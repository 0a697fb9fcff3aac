//! Decide: every check is a pure function of the snapshot (and the options), declared with its
//! code in [`catalogue`]; precheck and verify run the checks of their stage in catalogue order.

use meshkit::install::Manager;
use meshkit::istio::{Mesh, NamespaceView};

mod apis;
pub mod catalogue;
mod check;
mod control_plane;
mod data_plane;
mod defaults;
pub mod docs;
mod injection;
mod install;
mod live;
pub mod report;

pub use check::{Check, Stage};
use report::{Installation, Report};

use crate::snapshot::Snapshot;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--to-version 1.Y`: the Istio being upgraded to.
    pub to_version: Option<meshkit::istio::IstioVersion>,
    /// `--revision REV`: the revision name the canary will get.
    pub revision: Option<String>,
    /// `verify --stale-after`: how long a proxy may leave a push unacknowledged (default 1m).
    pub stale_after: Option<std::time::Duration>,
}

/// What a check decides on: the snapshot, the mesh found in it, the options and (verify) the live
/// proxy status, each read or derived once.
pub struct Context<'a> {
    pub snapshot: &'a Snapshot,
    pub mesh: &'a Mesh,
    pub options: &'a Options,
    pub live: Option<&'a live::Live<'a>>,
}

pub fn precheck(snapshot: &Snapshot, options: &Options) -> Report {
    run(Stage::Precheck, snapshot, options)
}

pub fn verify(snapshot: &Snapshot, options: &Options) -> Report {
    run(Stage::Verify, snapshot, options)
}

/// Every check of `stage`, in catalogue order.
fn run(stage: Stage, snapshot: &Snapshot, options: &Options) -> Report {
    let mesh = snapshot.mesh();
    let live = if stage == Stage::Verify { live::Live::read(snapshot, &mesh) } else { None };
    let cx = Context { snapshot, mesh: &mesh, options, live: live.as_ref() };
    let findings = catalogue::CHECKS.iter().filter_map(|check| check.run_in(stage, &cx)).collect();
    Report { findings, installation: Some(installation(snapshot, &mesh)) }
}

pub(super) fn namespace_of(snapshot: &Snapshot, name: &str) -> NamespaceView {
    NamespaceView::find_in(&snapshot.namespaces, name)
}

/// `, managed by helm:istio-system/istiod-1-30-3`, or nothing when no installer left its marks.
fn managed(manager: &Manager) -> String {
    match manager {
        Manager::None => String::new(),
        m => format!(", managed by {m}"),
    }
}

/// What is installed, for the report's header.
fn installation(snapshot: &Snapshot, mesh: &Mesh) -> Installation {
    let default = mesh.default_revision();
    Installation {
        revisions: mesh
            .installed_revisions()
            .map(|r| {
                let version = r.version.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "unknown version".into());
                let default = if default == Some(r.name.as_str()) { ", default" } else { "" };
                format!("{} ({version}{default}{})", r.name, managed(&r.managed_by))
            })
            .collect(),
        tags: mesh
            .tags
            .values()
            .map(|t| match &t.managed_by {
                Manager::None => format!("{} → {}", t.name, t.revision),
                m => format!("{} → {} (managed by {m})", t.name, t.revision),
            })
            .collect(),
        helm_releases: snapshot.helm_releases.clone().unwrap_or_else(|why| vec![format!("unknown ({why})")]),
        istio_operators: snapshot.istio_operators.clone().unwrap_or_else(|why| vec![format!("unknown ({why})")]),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod verify_tests;
