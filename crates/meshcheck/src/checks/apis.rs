//! Precheck: Gateway API and Istio CRD versions, superseded APIs and deprecated annotations.

use meshkit::istio::apis;

use super::Context;
use super::check::Check;
use super::install::target_version;
use super::report::Finding;

pub fn gateway_api_versions(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let crds = match &snapshot.gateway_crds {
        Ok(crds) => crds,
        Err(why) => return Finding::skipped(check, why.clone()),
    };
    if crds.is_empty() {
        return Finding::pass_with(check, "the Gateway API is not installed");
    }
    let lacking = |kinds: &[&str], version: &str| -> Vec<String> {
        crds.iter()
            .filter(|c| kinds.contains(&c.kind.as_str()) && !c.served.iter().any(|v| v == version))
            .map(|c| format!("crd/{} does not serve {version} (serves {})", c.kind, c.served.join(", ")))
            .collect()
    };
    // Istio reads these through v1beta1 (IST0156) and is moving them to v1 (IST0172).
    let errors = lacking(&["Gateway", "GatewayClass", "HTTPRoute", "ReferenceGrant"], "v1beta1");
    let warnings = lacking(&["Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute"], "v1");
    let bundles: std::collections::BTreeSet<&str> = crds.iter().filter_map(|c| c.bundle_version.as_deref()).collect();
    let bundle = bundles.into_iter().collect::<Vec<_>>().join(", ");
    if !errors.is_empty() {
        Finding::fail(
            check,
            format!("Gateway API CRDs (bundle {bundle}) lack versions Istio reads"),
            [errors, warnings].concat(),
        )
    } else if !warnings.is_empty() {
        Finding::warn(check, format!("Gateway API CRDs (bundle {bundle}) do not serve v1 yet"), warnings)
    } else {
        Finding::pass_with(check, format!("Gateway API bundle {bundle}"))
    }
}

pub fn stored_versions_served(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let target = target_version(cx.mesh, cx.options);
    let target = target.as_ref();
    let crds = match &snapshot.istio_crds {
        Ok(crds) => crds,
        Err(why) => return Finding::skipped(check, why.clone()),
    };
    let mut unserved = Vec::new();
    for crd in crds {
        for version in &crd.stored {
            if !crd.served.contains(version) {
                unserved.push(format!("crd/{}: stored as {version}, which it no longer serves", crd.name));
            } else if let Some(target) = target
                && let Some(served) = apis::served_by(target, &crd.name)
                && !served.contains(&version.as_str())
            {
                unserved.push(format!(
                    "crd/{}: stored as {version}, which Istio {}.{} does not serve",
                    crd.name, target.major, target.minor
                ));
            }
        }
    }
    if crds.is_empty() {
        return Finding::pass_with(check, "no Istio CRDs are installed");
    }
    Finding::none_of(check, unserved, |n| format!("{n} stored version(s) are no longer served"))
}

pub fn no_deprecated_annotations(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    use meshkit::istio::deprecated::{deprecated_annotations, set_by_istio_charts};
    let (mut found, mut charts) = (Vec::new(), 0);
    for pod in &snapshot.pods {
        let deprecated = deprecated_annotations("Pod", pod.annotations.keys());
        if deprecated.is_empty() {
            continue;
        }
        if set_by_istio_charts(pod) {
            charts += 1;
        } else {
            found.push(format!("pod/{}/{}: {}", pod.namespace, pod.name, deprecated.join(", ")));
        }
    }
    let finding = Finding::none_of(check, found, |n| format!("{n} pod(s) carry deprecated Istio annotations"));
    match (finding.outcome, charts) {
        (crate::checks::report::Outcome::Pass, 1..) => Finding::pass_with(
            check,
            format!(
                "{charts} pod(s) of Istio's own charts (istiod, gateways) carry them: their charts set them, nothing to do"
            ),
        ),
        _ => finding,
    }
}

pub fn gateway_api_bundle_minimums(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let mesh = cx.mesh;
    let options = cx.options;
    let crds = match &snapshot.gateway_crds {
        Ok(crds) => crds,
        Err(why) => return Finding::skipped(check, why.clone()),
    };
    if crds.is_empty() {
        return Finding::pass_with(check, "the Gateway API is not installed");
    }
    let Some(target) = target_version(mesh, options) else {
        return Finding::skipped(check, "no Istio installed and no --to-version given");
    };
    let istio = format!("{}.{}", target.major, target.minor);
    if !apis::gateway_api_minimums_known(&target) {
        return Finding::pass_with(check, format!("no Gateway API minimums recorded for Istio {istio}"));
    }
    let below: Vec<String> = crds
        .iter()
        .filter_map(|crd| {
            let (a, b, c) = apis::gateway_api_minimum(&target, &crd.name)?;
            let installed = crd.bundle_version.as_deref().and_then(apis::parse_bundle_version);
            match installed {
                Some(found) if found >= (a, b, c) => None,
                Some(_) => Some(format!(
                    "crd/{} is bundle {}; Istio {istio} needs v{a}.{b}.{c}",
                    crd.name,
                    crd.bundle_version.as_deref().unwrap_or_default()
                )),
                None => Some(format!("crd/{} has no readable bundle-version; Istio {istio} ignores it", crd.name)),
            }
        })
        .collect();
    Finding::none_of(check, below, |n| format!("Istio {istio} would ignore {n} Gateway API CRD(s) and their objects"))
}

pub fn no_superseded_api_versions(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let (crds, objects) = match (&snapshot.istio_crds, &snapshot.istio_objects) {
        (Ok(crds), Ok(objects)) => (crds, objects),
        (Err(why), _) | (_, Err(why)) => return Finding::skipped(check, why.clone()),
    };
    let mut found: Vec<String> = crds
        .iter()
        .filter_map(|crd| {
            let release = apis::removed_in(&crd.group)?;
            Some(format!("crd/{}: API group removed in Istio {release}; nothing reads it", crd.name))
        })
        .collect();
    for object in objects {
        let Some(crd) = crds.iter().find(|c| c.name == object.crd) else { continue };
        let old: Vec<String> = object
            .written
            .iter()
            .filter(|(api_version, _)| {
                let version = api_version.rsplit('/').next().unwrap_or_default();
                apis::superseded(version, &crd.served)
            })
            .map(|(api_version, writer)| format!("{api_version} by {writer}"))
            .collect();
        if !old.is_empty() {
            let kind = crd.kind.to_ascii_lowercase();
            found.push(format!("{kind}/{}/{}: written as {}", object.namespace, object.name, old.join(", ")));
        }
    }
    Finding::none_of(check, found, |n| format!("{n} Istio object(s) or CRD(s) use superseded or removed APIs"))
}
