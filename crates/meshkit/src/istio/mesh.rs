//! Which revisions are installed, which tags point where, and which revision is the default.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::injects::Injects;
use super::{IstioVersion, IstiodView, ServiceView, WebhookConfigView, keys};
use crate::install::Manager;

/// One installed control-plane revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub name: String,
    /// istiod Deployments of this revision.
    pub istiods: Vec<IstiodView>,
    /// Its own ("canonical") injector webhook configurations: `istio.io/rev=R` without `istio.io/tag`.
    pub injectors: Vec<String>,
    /// Its istiod Services.
    pub services: Vec<String>,
    /// From the `discovery` container image of its istiod; the newest if several disagree.
    pub version: Option<IstioVersion>,
    /// Who installed it: the manager of its istiod, else of its injector.
    pub managed_by: Manager,
}

impl Revision {
    /// A revision is installed while its istiod or its injector is there; a tag pointing at a
    /// revision with neither is dangling.
    pub fn installed(&self) -> bool {
        !self.istiods.is_empty() || !self.injectors.is_empty()
    }
}

/// A revision tag: webhooks and/or Services labelled `istio.io/tag`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    pub name: String,
    pub revision: String,
    pub webhooks: Vec<String>,
    pub services: Vec<String>,
    /// Who manages its objects: the first foreign manager among them, else the webhook's.
    pub managed_by: Manager,
}

/// Keeps the manager already found unless it is not foreign and `other` is: an object Helm owns
/// among objects nobody claims still makes the whole thing Helm's.
fn claim(current: &mut Manager, other: &Manager, first: bool) {
    if first || (!current.is_foreign() && other.is_foreign()) {
        *current = other.clone();
    }
}

/// What a name written in an `istio.io/rev` label refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagTarget<'a> {
    Revision(&'a Revision),
    Tag { tag: &'a Tag, revision: Option<&'a Revision> },
    Unknown,
}

/// The Istio control planes of a cluster, as the objects describe them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mesh {
    pub revisions: BTreeMap<String, Revision>,
    pub tags: BTreeMap<String, Tag>,
    /// Whether the default injector also injects pods in unlabelled namespaces
    /// (`enableNamespacesByDefault`).
    pub auto_inject: bool,
    /// What each revision injects now, by revision (from its injector ConfigMap), where known.
    pub injects: BTreeMap<String, Injects>,
}

fn revision_label(labels: &BTreeMap<String, String>) -> String {
    labels.get(keys::REV).filter(|r| !r.is_empty()).cloned().unwrap_or_else(|| keys::DEFAULT_REVISION.to_string())
}

impl Mesh {
    /// Builds the inventory from istiod Deployments, injector webhook configurations and the
    /// Services of the Istio namespace.
    pub fn discover(istiods: &[IstiodView], webhooks: &[WebhookConfigView], services: &[ServiceView]) -> Mesh {
        let mut mesh = Mesh::default();
        for istiod in istiods {
            let revision = mesh.revision_entry(revision_label(&istiod.labels));
            claim(&mut revision.managed_by, &istiod.manager, revision.istiods.is_empty());
            revision.istiods.push(istiod.clone());
            let version = istiod.image.as_deref().and_then(IstioVersion::from_image);
            if version > revision.version {
                revision.version = version;
            }
        }
        for webhook in webhooks {
            if !webhook.labels.contains_key(keys::REV) && webhook.injectors().next().is_none() {
                continue;
            }
            let revision = revision_label(&webhook.labels);
            match webhook.label(keys::TAG) {
                Some(tag) => {
                    let tag = mesh.tag_entry(tag, &revision);
                    claim(&mut tag.managed_by, &webhook.manager, tag.webhooks.is_empty());
                    tag.webhooks.push(webhook.name.clone())
                }
                None => {
                    let revision = mesh.revision_entry(revision);
                    let first = revision.istiods.is_empty() && revision.injectors.is_empty();
                    claim(&mut revision.managed_by, &webhook.manager, first);
                    revision.injectors.push(webhook.name.clone())
                }
            }
        }
        for service in services {
            let revision = revision_label(&service.labels);
            match service.labels.get(keys::TAG) {
                Some(tag) => {
                    let tag = mesh.tag_entry(tag, &revision);
                    let first = tag.webhooks.is_empty() && tag.services.is_empty();
                    claim(&mut tag.managed_by, &service.manager, first);
                    tag.services.push(service.name.clone())
                }
                None if service.labels.get(keys::APP).map(String::as_str) == Some("istiod") => {
                    mesh.revision_entry(revision).services.push(service.name.clone())
                }
                None => {}
            }
        }
        mesh.auto_inject = webhooks
            .iter()
            .filter(|w| {
                w.label(keys::TAG) == Some(keys::DEFAULT_TAG) || revision_label(&w.labels) == keys::DEFAULT_REVISION
            })
            .flat_map(|w| w.injectors())
            .any(|w| w.name.starts_with("auto."));
        mesh
    }

    /// The same mesh, knowing what each revision injects now (see [`Injects`]).
    pub fn with_injects(mut self, injects: impl IntoIterator<Item = Injects>) -> Mesh {
        self.injects.extend(injects.into_iter().map(|i| (i.revision.clone(), i)));
        self
    }

    fn revision_entry(&mut self, name: String) -> &mut Revision {
        self.revisions.entry(name.clone()).or_insert_with(|| Revision { name, ..Default::default() })
    }

    /// The webhook decides where injection goes and a Service is only a record of it; webhooks are
    /// read first, so when the two disagree the webhook's revision is kept.
    fn tag_entry(&mut self, tag: &str, revision: &str) -> &mut Tag {
        self.tags.entry(tag.to_string()).or_insert_with(|| Tag {
            name: tag.to_string(),
            revision: revision.to_string(),
            ..Default::default()
        })
    }

    /// Whether there is any sign of Istio at all.
    pub fn is_empty(&self) -> bool {
        self.revisions.is_empty() && self.tags.is_empty()
    }

    pub fn installed_revisions(&self) -> impl Iterator<Item = &Revision> {
        self.revisions.values().filter(|r| r.installed())
    }

    /// The revision `default` resolves to: the `default` tag's, else an unrevisioned install.
    pub fn default_revision(&self) -> Option<&str> {
        match self.tags.get(keys::DEFAULT_TAG) {
            Some(tag) => Some(tag.revision.as_str()),
            None => self.revisions.get(keys::DEFAULT_REVISION).filter(|r| r.installed()).map(|r| r.name.as_str()),
        }
    }

    /// What an `istio.io/rev` value names. Tags win over revisions of the same name, as in the
    /// injector webhooks, where only the tag's webhook carries that value in its selectors.
    pub fn target(&self, name: &str) -> TagTarget<'_> {
        if let Some(tag) = self.tags.get(name) {
            let revision = self.revisions.get(&tag.revision).filter(|r| r.installed());
            return TagTarget::Tag { tag, revision };
        }
        match self.revisions.get(name).filter(|r| r.installed()) {
            Some(revision) => TagTarget::Revision(revision),
            None => TagTarget::Unknown,
        }
    }

    /// The installed revision a name (tag or revision) ends up at.
    pub fn resolve(&self, name: &str) -> Option<&str> {
        match self.target(name) {
            TagTarget::Revision(r) => Some(&r.name),
            TagTarget::Tag { revision: Some(r), .. } => Some(&r.name),
            _ => None,
        }
    }

    /// Tags pointing at `revision`, sorted.
    pub fn tags_of(&self, revision: &str) -> BTreeSet<&str> {
        self.tags.values().filter(|t| t.revision == revision).map(|t| t.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::WebhookView;
    use crate::testing::istiod;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn injector(name: &str, pairs: &[(&str, &str)], entries: &[&str]) -> WebhookConfigView {
        WebhookConfigView {
            name: name.into(),
            labels: labels(pairs),
            webhooks: entries.iter().map(|e| WebhookView { name: e.to_string(), ..Default::default() }).collect(),
            ..Default::default()
        }
    }

    fn svc(name: &str, pairs: &[(&str, &str)]) -> ServiceView {
        ServiceView { namespace: "istio-system".into(), name: name.into(), labels: labels(pairs), ..Default::default() }
    }

    fn two_revisions() -> Mesh {
        Mesh::discover(
            &[istiod("1-30-3", "1.30.3"), istiod("1-31-1", "1.31.1")],
            &[
                injector(
                    "istio-sidecar-injector-1-30-3",
                    &[("istio.io/rev", "1-30-3")],
                    &["rev.namespace.sidecar-injector.istio.io"],
                ),
                injector(
                    "istio-sidecar-injector-1-31-1",
                    &[("istio.io/rev", "1-31-1")],
                    &["rev.namespace.sidecar-injector.istio.io"],
                ),
                injector(
                    "istio-revision-tag-default",
                    &[("istio.io/rev", "1-30-3"), ("istio.io/tag", "default")],
                    &["rev.namespace.sidecar-injector.istio.io", "namespace.sidecar-injector.istio.io"],
                ),
                injector("istio-revision-tag-canary", &[("istio.io/rev", "1-31-1"), ("istio.io/tag", "canary")], &[]),
                injector("istio-revision-tag-old", &[("istio.io/rev", "1-29-0"), ("istio.io/tag", "old")], &[]),
            ],
            &[
                svc("istiod-1-30-3", &[("app", "istiod"), ("istio.io/rev", "1-30-3")]),
                svc(
                    "istiod-revision-tag-default",
                    &[("app", "istiod"), ("istio.io/rev", "1-30-3"), ("istio.io/tag", "default")],
                ),
                svc(
                    "istiod-revision-tag-svconly",
                    &[("app", "istiod"), ("istio.io/rev", "1-31-1"), ("istio.io/tag", "svconly")],
                ),
                svc("unrelated", &[("app", "other")]),
            ],
        )
    }

    #[test]
    fn finds_revisions_with_versions_and_their_objects() {
        let mesh = two_revisions();
        let installed: Vec<_> = mesh.installed_revisions().map(|r| r.name.as_str()).collect();
        assert_eq!(installed, ["1-30-3", "1-31-1"]);
        let stable = &mesh.revisions["1-30-3"];
        assert_eq!(stable.version.as_ref().unwrap().to_string(), "1.30.3");
        assert_eq!(stable.injectors, ["istio-sidecar-injector-1-30-3"]);
        assert_eq!(stable.services, ["istiod-1-30-3"]);
        assert!(!mesh.revisions.contains_key("unrelated"));
    }

    #[test]
    fn finds_tags_from_webhooks_and_services() {
        let mesh = two_revisions();
        assert_eq!(mesh.tags.keys().collect::<Vec<_>>(), ["canary", "default", "old", "svconly"]);
        assert_eq!(mesh.tags["default"].webhooks, ["istio-revision-tag-default"]);
        assert_eq!(mesh.tags["default"].services, ["istiod-revision-tag-default"]);
        assert_eq!(mesh.tags["svconly"].revision, "1-31-1");
        assert_eq!(mesh.tags_of("1-30-3").into_iter().collect::<Vec<_>>(), ["default"]);
    }

    #[test]
    fn resolves_tags_revisions_and_dangling_tags() {
        let mesh = two_revisions();
        assert_eq!(mesh.resolve("canary"), Some("1-31-1"));
        assert_eq!(mesh.resolve("1-30-3"), Some("1-30-3"));
        assert_eq!(mesh.resolve("default"), Some("1-30-3"));
        assert_eq!(mesh.resolve("old"), None, "tag whose revision is gone");
        assert!(matches!(mesh.target("old"), TagTarget::Tag { revision: None, .. }));
        assert_eq!(mesh.resolve("nope"), None);
        assert_eq!(mesh.target("nope"), TagTarget::Unknown);
        assert!(!mesh.revisions.contains_key("1-29-0"));
    }

    #[test]
    fn default_revision_from_tag_or_unrevisioned_install() {
        assert_eq!(two_revisions().default_revision(), Some("1-30-3"));
        let legacy = Mesh::discover(
            &[IstiodView { name: "istiod".into(), labels: labels(&[("app", "istiod")]), ..Default::default() }],
            &[injector("istio-sidecar-injector", &[], &["namespace.sidecar-injector.istio.io"])],
            &[],
        );
        assert_eq!(legacy.default_revision(), Some("default"));
        assert_eq!(legacy.resolve("default"), Some("default"));
        assert_eq!(legacy.revisions["default"].injectors, ["istio-sidecar-injector"]);
        let none = Mesh::discover(&[istiod("1-31-1", "1.31.1")], &[], &[]);
        assert_eq!(none.default_revision(), None);
        assert!(Mesh::default().is_empty());
    }

    #[test]
    fn auto_injection_comes_from_the_default_injector() {
        assert!(!two_revisions().auto_inject);
        let auto = Mesh::discover(
            &[],
            &[injector(
                "istio-revision-tag-default",
                &[("istio.io/rev", "1-30-3"), ("istio.io/tag", "default")],
                &["auto.sidecar-injector.istio.io"],
            )],
            &[],
        );
        assert!(auto.auto_inject);
    }
}
