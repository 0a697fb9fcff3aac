//! Precheck: namespaces labelled twice, overlapping injectors, injectors calling no Service.

use std::collections::BTreeSet;

use meshkit::istio::{NamespaceInjection, injection_overlaps, keys, namespace_injection};

use super::Context;
use super::check::Check;
use super::report::Finding;

pub fn both_injection_labels(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let both: Vec<String> = snapshot
        .namespaces
        .iter()
        .filter_map(|ns| match namespace_injection(&ns.labels) {
            NamespaceInjection::Default { shadowed: Some(rev) } => {
                Some(format!("namespace/{} (istio-injection=enabled hides istio.io/rev={rev})", ns.name))
            }
            _ => None,
        })
        .collect();
    Finding::none_of(check, both, |n| format!("{n} namespace(s) carry both labels"))
}

pub fn no_overlaps(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let mesh = cx.mesh;
    let mut names: BTreeSet<String> = mesh.revisions.keys().chain(mesh.tags.keys()).cloned().collect();
    names.extend(snapshot.namespaces.iter().filter_map(|ns| ns.labels.get(keys::REV).cloned()));
    let overlaps: Vec<String> = injection_overlaps(&snapshot.mutating, &names).iter().map(|o| o.describe()).collect();
    Finding::none_of(check, overlaps, |n| format!("{n} pair(s) of injector webhooks overlap"))
}

pub fn injector_services_exist(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let prefix = format!("{}/", snapshot.istio_namespace);
    let services: BTreeSet<&str> = snapshot.services.iter().map(|s| s.name.as_str()).collect();
    let mut missing = BTreeSet::new();
    for config in &snapshot.mutating {
        for entry in config.injectors() {
            if let Some(service) = entry.service.as_deref().and_then(|s| s.strip_prefix(&prefix))
                && !services.contains(service)
            {
                missing.insert(format!("mutatingwebhookconfiguration/{} → service {}{service}", config.name, prefix));
            }
        }
    }
    Finding::none_of(check, missing.into_iter().collect(), |n| {
        format!("{n} webhook(s) call a Service that does not exist")
    })
}
