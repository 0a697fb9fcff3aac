//! Never fight the owner: which manager owns the objects a tag change touches, the refusal that
//! names it and the owner's way, and what `--take-ownership` hands over. Pure, from the snapshot.

use meshkit::install::handover::Handover;
use meshkit::install::helm::ObjectKey;
use meshkit::install::{Manager, detect_meta};
use meshkit::istio::keys;
use meshkit::istio::tag_objects::{self, DEFAULT_VALIDATOR};
use meshkit::{Error, Result};

use crate::snapshot::Snapshot;

const MUTATING: &str = "MutatingWebhookConfiguration";
const VALIDATING: &str = "ValidatingWebhookConfiguration";
const SERVICE: &str = "Service";

/// The live objects of `tag` with their managers: its webhook(s), its Service(s).
pub fn tag_objects(snapshot: &Snapshot, tag: &str) -> Vec<(Manager, ObjectKey)> {
    let webhook_name = tag_objects::tag_webhook_name(tag, &snapshot.istio_namespace);
    let is_tag = |labels: Option<&std::collections::BTreeMap<String, String>>, name: Option<&String>| {
        labels.and_then(|l| l.get(keys::TAG)).map(String::as_str) == Some(tag) || name == Some(&webhook_name)
    };
    let webhooks =
        snapshot.mutating.iter().filter(|m| is_tag(m.metadata.labels.as_ref(), m.metadata.name.as_ref())).map(|m| {
            (detect_meta(&m.metadata), ObjectKey::new(MUTATING, m.metadata.name.as_deref().unwrap_or(""), None))
        });
    let service_name = tag_objects::tag_service_name(tag);
    let services = snapshot
        .services
        .iter()
        .filter(|s| s.labels.get(keys::TAG).map(String::as_str) == Some(tag) || s.name == service_name)
        .map(|s| (s.manager.clone(), ObjectKey::new(SERVICE, &s.name, Some(&s.namespace))));
    webhooks.chain(services).collect()
}

/// The default validator and its manager, if it exists.
pub fn default_validator(snapshot: &Snapshot) -> Option<(Manager, ObjectKey)> {
    snapshot
        .validating
        .iter()
        .find(|v| v.metadata.name.as_deref() == Some(DEFAULT_VALIDATOR))
        .map(|v| (detect_meta(&v.metadata), ObjectKey::new(VALIDATING, DEFAULT_VALIDATOR, None)))
}

/// What to do about the managers of a tag's objects: refuse (naming the owner and its way), or,
/// with `--take-ownership`, the handovers to make and what to warn about.
pub fn check(
    objects: Vec<(Manager, ObjectKey)>,
    tag: &str,
    change: &str,
    take_ownership: bool,
) -> Result<(Vec<Handover>, Vec<String>)> {
    let handovers = Handover::group(objects, &[tag]);
    let Some(first) = handovers.first() else { return Ok((Vec::new(), Vec::new())) };
    if !take_ownership {
        let hint = match (&first.manager, first.manager.helm_upgrade("istio/istiod", "--set-json 'revisionTags=[…]'"))
        {
            (Manager::Helm { release, .. }, Some(command)) => format!(
                "do it with Helm (drop {tag} from the revisionTags of release {release}: {command}), or pass \
                 --take-ownership to {change} here and take the tag out of that release so that its upgrades and \
                 uninstall leave it alone"
            ),
            (other, _) => format!("{}; or pass --take-ownership to {change} anyway", other.the_owners_way()),
        };
        return Err(Error::refused(
            format!(
                "tag {tag} is managed by {} ({}): a change made here would be undone by it",
                first.manager,
                first.describe_objects()
            ),
            hint,
        ));
    }
    let warnings = handovers.iter().map(Handover::caveat).collect();
    Ok((handovers, warnings))
}

/// A default validator another manager owns is left to it (istio-base renders it from
/// `defaultRevision`): the warning says how to move it the owner's way.
pub fn validator_left_to_owner(manager: &Manager, revision: &str) -> Option<String> {
    match (manager, manager.move_default_revision(revision)) {
        (Manager::Helm { release, .. }, Some(command)) => Some(format!(
            "{DEFAULT_VALIDATOR} belongs to Helm release {release}, so it was left alone: move the default revision there too \
             with {command}"
        )),
        (other, _) if other.is_foreign() => {
            Some(format!("{DEFAULT_VALIDATOR} is managed by {other}, so it was left alone: {}", other.the_owners_way()))
        }
        _ => None,
    }
}
