//! Precheck: Kubernetes support, permissions, and what is installed (revisions, tags, labels,
//! leftovers).

use meshkit::istio::support::{Support, kubernetes_support, support_window};
use meshkit::istio::{IstioVersion, Mesh, namespace_injection};

use super::check::Check;
use super::report::Finding;
use super::{Context, Options};

pub fn kubernetes_version(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let mesh = cx.mesh;
    let options = cx.options;
    let Some((_, minor)) = snapshot.kubernetes else {
        return Finding::skipped(
            check,
            format!("the server reports an unreadable version {:?}", snapshot.kubernetes_version),
        );
    };
    let Some(target) = target_version(mesh, options) else {
        return Finding::skipped(check, "no Istio installed and no --to-version given");
    };
    let istio = format!("{}.{}", target.major, target.minor);
    let window = support_window(&target);
    let range = window.map(|w| format!("1.{}–1.{}", w.supported.0, w.supported.1)).unwrap_or_default();
    match kubernetes_support(&target, minor) {
        Support::Supported => {
            Finding::pass_with(check, format!("Kubernetes 1.{minor} is supported by Istio {istio} ({range})"))
        }
        Support::TestedOnly => Finding::warn(
            check,
            format!("Kubernetes 1.{minor} was tested with Istio {istio} but is not supported (supported: {range})"),
            vec![],
        ),
        Support::Unsupported => Finding::fail(
            check,
            format!("Kubernetes 1.{minor} is not supported by Istio {istio} (supported: {range})"),
            vec![],
        ),
        Support::Unknown => Finding::warn(
            check,
            format!(
                "Istio {istio} is not in this meshcheck's support table; check istio.io's support status for Kubernetes 1.{minor}"
            ),
            vec![],
        ),
    }
}

pub fn permissions(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let Some(permissions) = &snapshot.permissions else {
        return Finding::skipped(check, "permissions were not reviewed");
    };
    let missing: Vec<String> = permissions.iter().filter(|p| !p.allowed).map(|p| p.describe()).collect();
    Finding::none_of(check, missing, |n| {
        format!("{n} of {} permissions an upgrade needs are missing", permissions.len())
    })
}

pub fn revision_name_free(check: &'static Check, cx: &Context) -> Finding {
    let mesh = cx.mesh;
    let options = cx.options;
    let Some(revision) = &options.revision else { return Finding::skipped(check, "no --revision given") };
    if mesh.installed_revisions().any(|r| &r.name == revision) {
        Finding::fail(check, format!("revision {revision} is already installed"), vec![format!("revision/{revision}")])
    } else if mesh.tags.contains_key(revision) {
        Finding::fail(check, format!("{revision} is the name of a revision tag"), vec![format!("tag/{revision}")])
    } else {
        Finding::pass_with(check, format!("revision name {revision} is free"))
    }
}

pub fn tags_resolve(check: &'static Check, cx: &Context) -> Finding {
    let mesh = cx.mesh;
    let dangling: Vec<String> = mesh
        .tags
        .values()
        .filter(|t| mesh.resolve(&t.name).is_none())
        .map(|t| format!("tag/{} → revision {}", t.name, t.revision))
        .collect();
    Finding::none_of(check, dangling, |n| format!("{n} tag(s) point at a revision that is not installed"))
}

pub fn namespaces_resolve(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let mesh = cx.mesh;
    let lost: Vec<String> = snapshot
        .namespaces
        .iter()
        .filter_map(|ns| {
            let requested = namespace_injection(&ns.labels).requested()?.to_string();
            mesh.resolve(&requested).is_none().then(|| format!("namespace/{} → {requested}", ns.name))
        })
        .collect();
    Finding::none_of(check, lost, |n| {
        format!("{n} namespace(s) ask for a revision or tag that does not exist; new pods there get no sidecar")
    })
}

pub fn no_operator_leftovers(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let operators = match &snapshot.istio_operators {
        Ok(operators) => operators,
        Err(why) => return Finding::skipped(check, why.clone()),
    };
    let leftovers: Vec<String> = operators.iter().map(|o| format!("istiooperator/{o}")).collect();
    Finding::none_of(check, leftovers, |n| format!("{n} IstioOperator resource(s) remain"))
}

/// `--to-version`, else the newest installed revision's version.
pub fn target_version(mesh: &Mesh, options: &Options) -> Option<IstioVersion> {
    options.to_version.clone().or_else(|| mesh.installed_revisions().filter_map(|r| r.version.clone()).max())
}
