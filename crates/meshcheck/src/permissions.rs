//! The permissions an upgrade needs, asked with as few questions as answer them: one
//! SelfSubjectRulesReview for the Istio namespace answers every namespaced verb it allows; a
//! SelfSubjectAccessReview is asked for the rest — verbs on cluster-scoped resources (a rules
//! review lists the rules that apply *in* a namespace, and a RoleBinding's rules never reach
//! cluster-scoped objects), `escalate` and `bind` (RBAC may grant them in ways a rule list does
//! not show), and anything a rules review left unanswered (its authorizer is not RBAC-only, or it
//! says it is incomplete and did not allow it).

use futures::{StreamExt, stream};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, ResourceRule, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec, SelfSubjectRulesReview,
    SelfSubjectRulesReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use meshkit::cluster::Cluster;
use meshkit::{Error, Result};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Permission {
    pub verb: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    /// `None` for cluster-scoped resources.
    pub namespace: Option<String>,
    pub allowed: bool,
}

impl Permission {
    pub fn describe(&self) -> String {
        let resource =
            if self.group.is_empty() { self.resource.to_string() } else { format!("{}.{}", self.resource, self.group) };
        match &self.namespace {
            Some(ns) => format!("{} {resource} in namespace {ns}", self.verb),
            None => format!("{} {resource}", self.verb),
        }
    }
}

const WRITE: &[&str] = &["create", "update", "patch", "delete"];
const WRITE_RBAC: &[&str] = &["create", "update", "patch", "delete", "escalate", "bind"];
/// Verbs only an access review answers: RBAC checks them against the roles being bound.
const ASK_EACH_TIME: &[&str] = &["escalate", "bind"];
/// Access reviews sent at once.
const CONCURRENT_REVIEWS: usize = 16;

/// What installing a revision next to another, moving tags and retiring the old one changes.
const CLUSTER_PERMISSIONS: &[(&str, &str, &[&str])] = &[
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", WRITE),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", WRITE),
    ("apiextensions.k8s.io", "customresourcedefinitions", &["create", "update", "patch"]),
    ("rbac.authorization.k8s.io", "clusterroles", WRITE_RBAC),
    ("rbac.authorization.k8s.io", "clusterrolebindings", WRITE),
    ("", "namespaces", &["get", "create", "patch"]),
];
const NAMESPACE_PERMISSIONS: &[(&str, &str, &[&str])] = &[
    ("apps", "deployments", WRITE),
    ("", "services", WRITE),
    ("", "configmaps", WRITE),
    ("", "serviceaccounts", WRITE),
    ("", "secrets", &["get", "create"]),
    ("rbac.authorization.k8s.io", "roles", WRITE_RBAC),
    ("rbac.authorization.k8s.io", "rolebindings", WRITE),
    ("policy", "poddisruptionbudgets", WRITE),
    ("autoscaling", "horizontalpodautoscalers", WRITE),
];

/// Every permission an upgrade needs, none answered yet.
pub fn wanted(istio_namespace: &str) -> Vec<Permission> {
    let mut wanted = Vec::new();
    for (scope, table) in [(None, CLUSTER_PERMISSIONS), (Some(istio_namespace), NAMESPACE_PERMISSIONS)] {
        for (group, resource, verbs) in table {
            for verb in *verbs {
                let namespace = scope.map(str::to_string);
                wanted.push(Permission { verb, group, resource, namespace, allowed: false });
            }
        }
    }
    wanted
}

/// Whether a rule of a rules review allows the permission (rules only allow; one naming objects
/// allows only those, not every object).
pub fn rule_allows(rule: &ResourceRule, p: &Permission) -> bool {
    let has = |list: &Option<Vec<String>>, want: &str| list.iter().flatten().any(|v| v == want || v == "*");
    rule.verbs.iter().any(|v| v == p.verb || v == "*")
        && has(&rule.api_groups, p.group)
        && has(&rule.resources, p.resource)
        && rule.resource_names.as_ref().is_none_or(Vec::is_empty)
}

/// Decide from the rules review what it answers: namespaced permissions its rules allow. The rest
/// need an access review each.
pub fn answered_by_rules(permission: &Permission, rules: Option<&[ResourceRule]>) -> bool {
    permission.namespace.is_some()
        && !ASK_EACH_TIME.contains(&permission.verb)
        && rules.is_some_and(|rules| rules.iter().any(|r| rule_allows(r, permission)))
}

/// One rules review of the Istio namespace, then an access review for each permission it does not
/// answer, sixteen at a time.
pub async fn review(cluster: &Cluster) -> Result<Vec<Permission>> {
    let rules = namespace_rules(cluster).await?;
    let mut permissions = Vec::new();
    let mut to_ask = Vec::new();
    for mut p in wanted(&cluster.istio_namespace) {
        if answered_by_rules(&p, rules.as_deref()) {
            p.allowed = true;
            permissions.push(p);
        } else {
            to_ask.push(p);
        }
    }
    let api: Api<SelfSubjectAccessReview> = Api::all(cluster.client());
    let reviews = stream::iter(to_ask.into_iter().map(|p| access_review(cluster, &api, p)))
        .buffer_unordered(CONCURRENT_REVIEWS)
        .collect::<Vec<_>>()
        .await;
    permissions.extend(reviews.into_iter().collect::<Result<Vec<_>>>()?);
    permissions
        .sort_by(|a, b| (a.namespace.is_some(), a.resource, a.verb).cmp(&(b.namespace.is_some(), b.resource, b.verb)));
    Ok(permissions)
}

/// The rules that apply in the Istio namespace; `None` when the review cannot be used (an
/// apiserver without the API answers 404).
async fn namespace_rules(cluster: &Cluster) -> Result<Option<Vec<ResourceRule>>> {
    let api: Api<SelfSubjectRulesReview> = Api::all(cluster.client());
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec { namespace: Some(cluster.istio_namespace.clone()) },
        ..Default::default()
    };
    match cluster.call("create selfsubjectrulesreviews", api.create(&PostParams::default(), &review)).await {
        Ok(answer) => Ok(answer.status.map(|s| s.resource_rules)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn access_review(cluster: &Cluster, api: &Api<SelfSubjectAccessReview>, mut p: Permission) -> Result<Permission> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(p.verb.into()),
                group: Some(p.group.into()),
                resource: Some(p.resource.into()),
                namespace: p.namespace.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = cluster.call("create selfsubjectaccessreviews", api.create(&PostParams::default(), &review)).await?;
    p.allowed = answer.status.is_some_and(|s| s.allowed);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> ResourceRule {
        let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        ResourceRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: strings(groups),
            resources: strings(resources),
            resource_names: if names.is_empty() { None } else { strings(names) },
        }
    }

    fn permission(verb: &'static str, group: &'static str, resource: &'static str, ns: Option<&str>) -> Permission {
        Permission { verb, group, resource, namespace: ns.map(str::to_string), allowed: false }
    }

    #[test]
    fn rules_allow_by_verb_group_and_resource_or_wildcard() {
        let deploy = permission("patch", "apps", "deployments", Some("istio-system"));
        assert!(rule_allows(&rule(&["get", "patch"], &["apps"], &["deployments"], &[]), &deploy));
        assert!(rule_allows(&rule(&["*"], &["*"], &["*"], &[]), &deploy), "cluster-admin");
        assert!(!rule_allows(&rule(&["get"], &["apps"], &["deployments"], &[]), &deploy), "other verb");
        assert!(!rule_allows(&rule(&["patch"], &[""], &["deployments"], &[]), &deploy), "core group is not apps");
        assert!(!rule_allows(&rule(&["patch"], &["apps"], &["deployments/scale"], &[]), &deploy), "a subresource");
        assert!(!rule_allows(&rule(&["patch"], &["apps"], &["deployments"], &["istiod"]), &deploy), "one object only");
    }

    #[test]
    fn cluster_scoped_escalate_bind_and_unallowed_need_an_access_review() {
        let admin = [rule(&["*"], &["*"], &["*"], &[])];
        let all = wanted("istio-system");
        let asked: Vec<String> =
            all.iter().filter(|p| !answered_by_rules(p, Some(&admin))).map(Permission::describe).collect();
        assert_eq!(asked.len(), 24 + 2, "every cluster-scoped verb, and escalate/bind on roles: {asked:#?}");
        assert!(asked.contains(&"escalate roles.rbac.authorization.k8s.io in namespace istio-system".to_string()));
        assert!(asked.contains(&"create mutatingwebhookconfigurations.admissionregistration.k8s.io".to_string()));
        assert_eq!(all.iter().filter(|p| !answered_by_rules(p, None)).count(), all.len(), "no rules review");
        assert_eq!(all.len(), 60);
        let nothing: [ResourceRule; 0] = [];
        assert!(all.iter().all(|p| !answered_by_rules(p, Some(&nothing))), "rules only allow: ask the rest");
    }
}
