//! The three things that name the default revision, which must agree (istio/istio#58578):
//! the default tag, the default validator (istio-base's `defaultRevision`) and a legacy
//! unrevisioned injector. And the leftovers an uninstall outside our tools leaves behind:
//! webhooks and tag Services pointing at a revision whose istiod is gone.

use serde::Serialize;

use super::tag_objects::{DEFAULT_VALIDATOR, tag_webhook_name};
use super::{Mesh, ServiceView, WebhookConfigView, keys};

/// The webhook configuration an unrevisioned install names its injector.
pub const LEGACY_INJECTOR: &str = "istio-sidecar-injector";

impl WebhookConfigView {
    /// Switched off the way Istio does it: every injector entry selects `istio.io/deactivated`.
    pub fn is_deactivated(&self) -> bool {
        let mut injectors = self.injectors().peekable();
        injectors.peek().is_some()
            && injectors.all(|w| w.namespace_selector.requirements.iter().any(|r| r.key == keys::DEACTIVATED.0))
    }
}

/// What each of the three says the default revision is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultDeciders {
    /// `istio-revision-tag-default`: injection for `istio-injection=enabled` and `istio.io/rev=default`,
    /// and which istiod owns unlabelled Gateways and config.
    pub tag: Option<String>,
    /// `istiod-default-validator`: validation of config for the default, and the owner of unlabelled
    /// Gateways and config when there is no default tag.
    pub validator: Option<String>,
    /// An active `istio-sidecar-injector`: injection for `istio-injection=enabled` (revision `default`).
    pub legacy_injector: Option<String>,
}

impl DefaultDeciders {
    pub fn read(istio_namespace: &str, mutating: &[WebhookConfigView], validating: &[WebhookConfigView]) -> Self {
        let tag_name = tag_webhook_name(keys::DEFAULT_TAG, istio_namespace);
        let revision_of = |w: &WebhookConfigView| w.label(keys::REV).unwrap_or(keys::DEFAULT_REVISION).to_string();
        DefaultDeciders {
            tag: mutating.iter().find(|w| w.name == tag_name).map(revision_of),
            validator: validating.iter().find(|w| w.name == DEFAULT_VALIDATOR).map(revision_of),
            legacy_injector: mutating
                .iter()
                .find(|w| w.name == LEGACY_INJECTOR && w.label(keys::TAG).is_none() && !w.is_deactivated())
                .map(revision_of),
        }
    }

    /// Each decider that disagrees, described with what it decides; empty when they agree.
    pub fn disagreements(&self) -> Vec<String> {
        let said: Vec<(&str, &str, &str)> = [
            (
                &self.tag,
                "the default tag",
                "injection for istio-injection=enabled and ownership of unlabelled Gateways and config",
            ),
            (&self.validator, DEFAULT_VALIDATOR, "validation for the default revision"),
            (&self.legacy_injector, LEGACY_INJECTOR, "injection for istio-injection=enabled"),
        ]
        .into_iter()
        .filter_map(|(revision, who, decides)| revision.as_deref().map(|r| (r, who, decides)))
        .collect();
        let Some((first, ..)) = said.first() else { return Vec::new() };
        if said.iter().all(|(r, ..)| r == first) {
            return Vec::new();
        }
        said.iter().map(|(revision, who, decides)| format!("{who} says {revision} ({decides})")).collect()
    }
}

/// A webhook configuration or tag Service whose revision has no istiod: left behind by an
/// uninstall done outside our tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Leftover {
    /// `mutatingwebhookconfiguration/NAME`, `validatingwebhookconfiguration/NAME` or `service/NAME`.
    pub object: String,
    pub revision: String,
    /// Its failure policy is Fail: it refuses every request it selects (pod creation, config writes).
    pub blocks: bool,
}

/// Leftovers of revisions with no istiod Deployment. A revision served by a URL (an external or
/// remote istiod) is not a leftover: its istiod is elsewhere.
pub fn leftovers(
    mesh: &Mesh,
    mutating: &[WebhookConfigView],
    validating: &[WebhookConfigView],
    services: &[ServiceView],
) -> Vec<Leftover> {
    let has_istiod = |revision: &str| mesh.revisions.get(revision).is_some_and(|r| !r.istiods.is_empty());
    let revision_of = |labels: &super::Labels| labels.get(keys::REV).cloned();
    let mut found = Vec::new();
    for (kind, configs) in [("mutatingwebhookconfiguration", mutating), ("validatingwebhookconfiguration", validating)]
    {
        for config in configs {
            let Some(revision) = revision_of(&config.labels) else { continue };
            let by_url = config.webhooks.iter().any(|w| w.url.is_some());
            if has_istiod(&revision) || by_url || config.is_deactivated() || config.webhooks.is_empty() {
                continue;
            }
            let blocks = config.webhooks.iter().any(|w| w.fails_closed);
            found.push(Leftover { object: format!("{kind}/{}", config.name), revision, blocks });
        }
    }
    for service in services.iter().filter(|s| s.labels.contains_key(keys::TAG)) {
        if let Some(revision) = revision_of(&service.labels).filter(|r| !has_istiod(r)) {
            found.push(Leftover { object: format!("service/{}", service.name), revision, blocks: false });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::{IstiodView, WebhookView};
    use crate::testing::labels;

    fn config(name: &str, revision: &str, tag: Option<&str>, fails_closed: bool) -> WebhookConfigView {
        let mut pairs = vec![(keys::REV, revision)];
        pairs.extend(tag.map(|t| (keys::TAG, t)));
        WebhookConfigView {
            name: name.into(),
            labels: labels(&pairs),
            webhooks: vec![WebhookView {
                name: format!("rev.namespace.{}", keys::INJECTOR_SUFFIX),
                service: Some(format!("istio-system/istiod-{revision}")),
                fails_closed,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_default_tag_validator_and_legacy_injector_must_agree() {
        let tag = config("istio-revision-tag-default", "1-31-1", Some("default"), true);
        let validator = config(DEFAULT_VALIDATOR, "1-30-3", None, true);
        let deciders =
            DefaultDeciders::read("istio-system", std::slice::from_ref(&tag), std::slice::from_ref(&validator));
        assert_eq!((deciders.tag.as_deref(), deciders.validator.as_deref()), (Some("1-31-1"), Some("1-30-3")));
        let told = deciders.disagreements();
        assert_eq!(told.len(), 2);
        assert!(told[0].starts_with("the default tag says 1-31-1 (injection for istio-injection=enabled"), "{told:?}");
        assert!(told[1].starts_with("istiod-default-validator says 1-30-3"), "{told:?}");
        let agreeing = config(DEFAULT_VALIDATOR, "1-31-1", None, true);
        assert!(DefaultDeciders::read("istio-system", &[tag], &[agreeing]).disagreements().is_empty());
    }

    #[test]
    fn a_switched_off_legacy_injector_decides_nothing() {
        let mut legacy = config(LEGACY_INJECTOR, "default", None, true);
        legacy.labels.remove(keys::REV);
        let tag = config("istio-revision-tag-default", "1-31-1", Some("default"), true);
        let both = [legacy.clone(), tag.clone()];
        assert_eq!(DefaultDeciders::read("istio-system", &both, &[]).legacy_injector.as_deref(), Some("default"));
        legacy.webhooks[0].namespace_selector = crate::istio::LabelSelector {
            requirements: vec![crate::istio::Requirement {
                key: keys::DEACTIVATED.0.into(),
                op: crate::istio::SelectorOp::In,
                values: vec![keys::DEACTIVATED.1.into()],
            }],
        };
        assert!(legacy.is_deactivated());
        assert!(DefaultDeciders::read("istio-system", &[legacy, tag], &[]).disagreements().is_empty());
    }

    #[test]
    fn webhooks_of_a_revision_without_istiod_are_leftovers_and_fail_closed_ones_block() {
        let istiod =
            IstiodView { name: "istiod-1-31-1".into(), labels: labels(&[(keys::REV, "1-31-1")]), ..Default::default() };
        let mesh = Mesh::discover(&[istiod], &[], &[]);
        let mutating = [
            config("istio-sidecar-injector-1-31-1", "1-31-1", None, true),
            config("istio-sidecar-injector-1-30-3", "1-30-3", None, true),
            config("istio-revision-tag-old", "1-30-3", Some("old"), false),
        ];
        let validating = [config("istio-validator-1-30-3-istio-system", "1-30-3", None, false)];
        let services = [ServiceView {
            name: "istiod-revision-tag-old".into(),
            labels: labels(&[(keys::REV, "1-30-3"), (keys::TAG, "old")]),
            ..Default::default()
        }];
        let found = leftovers(&mesh, &mutating, &validating, &services);
        let shown: Vec<(&str, bool)> = found.iter().map(|l| (l.object.as_str(), l.blocks)).collect();
        assert_eq!(
            shown,
            [
                ("mutatingwebhookconfiguration/istio-sidecar-injector-1-30-3", true),
                ("mutatingwebhookconfiguration/istio-revision-tag-old", false),
                ("validatingwebhookconfiguration/istio-validator-1-30-3-istio-system", false),
                ("service/istiod-revision-tag-old", false),
            ]
        );
    }
}
