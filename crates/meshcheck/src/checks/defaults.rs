//! The default revision's three deciders agree, and no revision left webhooks behind.

use meshkit::istio::defaults::{DefaultDeciders, leftovers};

use super::Context;
use super::check::Check;
use crate::checks::report::Finding;

pub fn default_agrees(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let deciders = DefaultDeciders::read(&snapshot.istio_namespace, &snapshot.mutating, &snapshot.validating);
    let told = deciders.disagreements();
    if told.is_empty() {
        return match deciders.tag.or(deciders.validator).or(deciders.legacy_injector) {
            Some(revision) => Finding::pass_with(check, format!("the default revision is {revision}")),
            None => Finding::pass_with(check, "no default revision is set"),
        };
    }
    Finding::fail(check, "they disagree on the default revision", told)
}

pub fn no_leftovers(check: &'static Check, cx: &Context) -> Finding {
    let snapshot = cx.snapshot;
    let found = leftovers(cx.mesh, &snapshot.mutating, &snapshot.validating, &snapshot.services);
    if found.is_empty() {
        return Finding::pass(check);
    }
    let blocking = found.iter().filter(|l| l.blocks).count();
    let objects = found
        .iter()
        .map(|l| {
            let blocks = if l.blocks { ", failurePolicy Fail: blocks what it selects" } else { "" };
            format!("{} (revision {}{blocks})", l.object, l.revision)
        })
        .collect();
    let message = format!("{} object(s) belong to a revision with no istiod ({blocking} fail closed)", found.len());
    if blocking > 0 { Finding::fail(check, message, objects) } else { Finding::warn(check, message, objects) }
}
