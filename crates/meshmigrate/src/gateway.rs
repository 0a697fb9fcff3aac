//! `gateway NAME -n NS --to REV|TAG`: move an injected gateway Deployment to another revision by
//! its pod template's `istio.io/rev` (journaled first; changing the template rolls it), follow
//! the rollout, verify its pods, and name the gateways that follow the default revision.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams};
use meshkit::cluster::Cluster;
use meshkit::install::Manager;
use meshkit::istio::{
    Intended, Labels, Mesh, NamespaceInjection, NamespaceView, keys, namespace_injection, pod_intended,
};
use meshkit::render::{Cell, Table, Tone};
use meshkit::{Error, Result};
use serde::Serialize;

use crate::journal::InjectionLabels;

/// An injected gateway is a Deployment whose pod template asks for the gateway injection template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayView {
    pub namespace: String,
    pub name: String,
    pub template_labels: Labels,
    pub template_annotations: Labels,
    /// Who manages the Deployment (the gateway chart's Helm release, GitOps, …).
    pub manager: Manager,
}

impl GatewayView {
    pub fn is_injected_gateway(&self) -> bool {
        meshkit::istio::asks_for_gateway_template(&self.template_annotations)
    }
}

impl From<&Deployment> for GatewayView {
    fn from(d: &Deployment) -> Self {
        let template = d.spec.as_ref().and_then(|s| s.template.metadata.clone()).unwrap_or_default();
        GatewayView {
            namespace: d.metadata.namespace.clone().unwrap_or_default(),
            name: d.metadata.name.clone().unwrap_or_default(),
            template_labels: template.labels.unwrap_or_default(),
            template_annotations: template.annotations.unwrap_or_default(),
            manager: meshkit::install::detect_meta(&d.metadata),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayPlan {
    pub namespace: String,
    /// `deployment/NAME`
    pub workload: String,
    /// The pod template's `istio.io/rev` before and after.
    pub from: Option<String>,
    pub to: String,
    pub unchanged: bool,
    /// What stays true after a change made with `--take-ownership`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Never fight the owner: a gateway Helm renders (the gateway chart's `revision` value) or GitOps
/// applies would get its old revision back on the owner's next sync. Refused, naming the owner's
/// way, unless `--take-ownership`; then the warning says what stays true.
fn check_owner(gateway: &GatewayView, target: &str, take_ownership: bool) -> Result<Vec<String>> {
    let manager = &gateway.manager;
    if !manager.is_foreign() {
        return Ok(Vec::new());
    }
    let the_owners_way = match manager.helm_upgrade("istio/gateway", &format!("--set revision={target}")) {
        Some(command) => format!("move it with Helm: {command}"),
        None => manager.the_owners_way(),
    };
    let what = format!("deployment {}/{} is managed by {manager}", gateway.namespace, gateway.name);
    if !take_ownership {
        return Err(Error::refused(
            format!("{what}: it would set the gateway's revision back"),
            format!("{the_owners_way}; or pass --take-ownership to move it here anyway"),
        ));
    }
    Ok(vec![format!("{what}, which still renders its old revision: {the_owners_way}, or its next sync moves it back")])
}

/// Decide a gateway move. Refused when the Deployment is not an injected gateway, or when its
/// namespace's labels decide injection (they win over the pod label, so the move would not work),
/// or when another manager owns it (see [`check_owner`]).
pub fn plan(
    mesh: &Mesh,
    gateway: &GatewayView,
    namespace: &NamespaceView,
    target: &str,
    take_ownership: bool,
) -> Result<GatewayPlan> {
    crate::relabel::check_target(mesh, target)?;
    if !gateway.is_injected_gateway() {
        return Err(Error::refused(
            format!("deployment {}/{} is not an injected gateway", gateway.namespace, gateway.name),
            "its pod template has no inject.istio.io/templates: gateway annotation; move its namespace instead",
        ));
    }
    match namespace_injection(&namespace.labels) {
        NamespaceInjection::Unlabelled => {}
        other => {
            return Err(Error::refused(
                format!(
                    "namespace {} decides the revision of its pods ({}), not the gateway's pod label",
                    namespace.name,
                    match other {
                        NamespaceInjection::Default { .. } => format!("{}=enabled", keys::INJECTION),
                        NamespaceInjection::Disabled { value } => format!("{}={value}", keys::INJECTION),
                        NamespaceInjection::Rev { name } => format!("{}={name}", keys::REV),
                        NamespaceInjection::Unlabelled => String::new(),
                    }
                ),
                format!("move the namespace instead: kubectl meshmigrate namespace {} --to {target}", namespace.name),
            ));
        }
    }
    let from = gateway.template_labels.get(keys::REV).cloned();
    let unchanged = from.as_deref() == Some(target);
    let warnings = if unchanged { Vec::new() } else { check_owner(gateway, target, take_ownership)? };
    Ok(GatewayPlan {
        namespace: gateway.namespace.clone(),
        workload: format!("deployment/{}", gateway.name),
        unchanged,
        from,
        to: target.to_string(),
        warnings,
    })
}

/// Gateways whose pods follow the default revision: they move whenever the `default` tag does.
pub fn default_followers(mesh: &Mesh, gateways: &[GatewayView], namespaces: &[NamespaceView]) -> Vec<String> {
    gateways
        .iter()
        .filter(|g| g.is_injected_gateway())
        .filter(|g| {
            let namespace = NamespaceView::find_in(namespaces, &g.namespace);
            matches!(pod_intended(&namespace, &g.template_labels, mesh), Intended::Sidecar { via, .. } if via == keys::DEFAULT_TAG)
        })
        .map(|g| format!("{}/{}", g.namespace, g.name))
        .collect()
}

pub async fn fetch_all(cluster: &Cluster) -> Result<(Vec<GatewayView>, Vec<NamespaceView>)> {
    let deployments: Api<Deployment> = Api::all(cluster.client());
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    let (gateways, namespaces) = tokio::try_join!(
        cluster.list_map(&deployments, None, "list deployments", |d: &Deployment| GatewayView::from(d)),
        cluster.list_map(&namespaces, None, "list namespaces", |n: &Namespace| NamespaceView::from(n)),
    )?;
    Ok((gateways.into_iter().filter(GatewayView::is_injected_gateway).collect(), namespaces))
}

async fn send_patch(cluster: &Cluster, plan: &GatewayPlan, params: &PatchParams) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(cluster.client(), &plan.namespace);
    let patch = serde_json::json!({"spec": {"template": {"metadata": {"labels": {keys::REV: plan.to}}}}});
    let name = plan.workload.trim_start_matches("deployment/");
    let what = format!("set {} on the pod template of {}/{}", keys::REV, plan.namespace, plan.workload);
    cluster.call(&what, api.patch(name, params, &Patch::Merge(&patch))).await.map(drop)
}

pub async fn apply(cluster: &Cluster, user: &str, plan: &GatewayPlan) -> Result<()> {
    let time = k8s_openapi::jiff::Timestamp::now().to_string();
    let id = crate::relabel::with_journal(cluster, |journal| {
        let id = format!("{:06}", journal.next_id());
        journal.entries.push(crate::journal::Entry {
            id: id.clone(),
            time: time.clone(),
            user: user.to_string(),
            action: crate::journal::Action::Gateway,
            namespace: plan.namespace.clone(),
            from: InjectionLabels { istio_injection: None, istio_rev: plan.from.clone() },
            to: InjectionLabels { istio_injection: None, istio_rev: Some(plan.to.clone()) },
            state: crate::journal::State::Pending,
            undoes: None,
            workload: Some(plan.workload.clone()),
        });
        id
    })
    .await?;
    send_patch(cluster, plan, &PatchParams::default()).await?;
    crate::relabel::with_journal(cluster, |journal| {
        for entry in journal.entries.iter_mut().filter(|e| e.id == id) {
            entry.state = crate::journal::State::Done;
        }
    })
    .await
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayReport {
    #[serde(flatten)]
    pub plan: GatewayPlan,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollout::Rollout>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_on_target: Option<Vec<crate::verify::NotOnTarget>>,
    /// The gateway's new proxies, checked live against every istiod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxies: Option<crate::proxies::ProxyCheck>,
    /// Gateways that follow the default revision and would move with the `default` tag.
    pub default_followers: Vec<String>,
}

/// `gateway NAME -n NS --to T`, parsed.
pub struct GatewayArgs {
    pub name: String,
    pub target: String,
    pub timeout: std::time::Duration,
    pub dry_run: meshkit::cli::DryRun,
    pub take_ownership: bool,
}

impl GatewayArgs {
    /// `gateway NAME -n NS --to REV|TAG`.
    pub fn from_matches(m: &meshkit::cli::Matches) -> Result<GatewayArgs> {
        Ok(GatewayArgs {
            name: crate::flags::exactly_one(m, "NAME")?,
            target: crate::flags::target(m)?,
            timeout: crate::flags::timeout(m)?,
            dry_run: m.dry_run()?,
            take_ownership: m.has("take-ownership"),
        })
    }
}

pub async fn run(
    kube: &meshkit::args::KubeArgs,
    output: meshkit::render::OutputArgs,
    args: &GatewayArgs,
) -> Result<meshkit::Exit> {
    use crate::rollout::Rollout;
    use meshkit::cli::DryRun;
    let GatewayArgs { name, target, timeout, dry_run, take_ownership } = args;
    let (name, target, timeout, dry_run, take_ownership) =
        (name.as_str(), target.as_str(), *timeout, *dry_run, *take_ownership);
    let namespace = kube.namespace.clone().ok_or_else(|| {
        Error::usage("`kubectl meshmigrate gateway` needs -n NAMESPACE", "the namespace of the gateway Deployment")
    })?;
    let cluster = Cluster::connect(kube).await?;
    let api: Api<Deployment> = Api::namespaced(cluster.client(), &namespace);
    let get = format!("get deployment {namespace}/{name}");
    let (control_plane, deployment, (gateways, namespaces)) = tokio::try_join!(
        meshkit::fetch::control_plane(&cluster),
        cluster.call(&get, api.get_opt(name)),
        fetch_all(&cluster),
    )?;
    let Some(deployment) = deployment else {
        return Err(Error::not_found(
            format!("deployment {namespace}/{name} does not exist"),
            format!("`kubectl get deployments -n {namespace}` lists them"),
        ));
    };
    let mesh = control_plane.mesh();
    let gateway = GatewayView::from(&deployment);
    let own_namespace = NamespaceView::find_in(&namespaces, &namespace);
    let plan = plan(&mesh, &gateway, &own_namespace, target, take_ownership)?;
    for warning in &plan.warnings {
        crate::spec::SPEC.warn(format_args!("{warning}"));
    }
    let mut report = GatewayReport {
        default_followers: default_followers(&mesh, &gateways, &namespaces),
        plan,
        rollout: None,
        not_on_target: None,
        proxies: None,
    };
    if dry_run == DryRun::Server && !report.plan.unchanged {
        send_patch(&cluster, &report.plan, &PatchParams { dry_run: true, ..PatchParams::default() }).await?;
        crate::spec::SPEC
            .note(format_args!("the apiserver accepted the change (server dry run); nothing was persisted"));
    }
    if dry_run == DryRun::None {
        meshkit::kube::lock::held(&cluster, async |user: &str| {
            if !report.plan.unchanged {
                apply(&cluster, user, &report.plan).await?;
            }
            let deadline = std::time::Instant::now() + timeout;
            let key = (namespace.clone(), report.plan.workload.clone());
            let mut rollouts = crate::waves_run::follow(&cluster, std::slice::from_ref(&key), deadline).await?;
            report.rollout = rollouts.remove(&key);
            Ok(())
        })
        .await?;
        let (pods, owners) = crate::scope::pods_and_owners(&cluster, std::slice::from_ref(&namespace)).await?;
        let rollouts =
            report.rollout.iter().map(|r| ((namespace.clone(), report.plan.workload.clone()), r.clone())).collect();
        let problems = crate::verify::verify(&crate::verify::VerifyInput {
            namespaces: std::slice::from_ref(&own_namespace),
            pods: &pods,
            replica_set_owners: &owners,
            mesh: &mesh,
            rollouts: &rollouts,
        });
        report.not_on_target = Some(problems.into_iter().filter(|p| p.workload == report.plan.workload).collect());
        let workload = [(namespace.clone(), report.plan.workload.clone())].into();
        let own = crate::proxies::pods_of(&pods, &owners, &workload);
        let counted = |r: &meshkit::istio::ProxyRow| own.contains(&(r.namespace.clone(), r.name.clone()));
        let deadline = std::time::Instant::now() + timeout;
        let namespaces = std::slice::from_ref(&own_namespace);
        report.proxies = Some(crate::proxies::await_proxies(&cluster, namespaces, &mesh, &counted, deadline).await?);
    }
    let renderer = meshkit::render::Renderer::new(output);
    renderer.print_human(&report, |_| {
        let mut text = renderer.table_text(&table(&report.plan, dry_run != DryRun::None));
        match &report.rollout {
            Some(Rollout::Complete) => text.push_str("\nRollout complete.\n"),
            Some(Rollout::Progressing { updated, desired }) => {
                text.push_str(&format!("\nIncomplete: rollout not finished in time ({updated}/{desired} updated).\n"))
            }
            Some(Rollout::Stuck { reason }) => text.push_str(&format!("\nIncomplete: rollout stuck: {reason}.\n")),
            None => {}
        }
        if let Some(problems) = report.not_on_target.as_ref().filter(|p| !p.is_empty()) {
            text.push('\n');
            text.push_str(&renderer.table_text(&crate::verify::table(problems)));
        }
        if let Some(proxies) = &report.proxies {
            text.push('\n');
            text.push_str(&proxies.text(|t| renderer.table_text(t)));
        }
        if !report.default_followers.is_empty() {
            text.push_str(&format!(
                "\nGateways following the default revision (they move when the default tag moves): {}\n",
                report.default_followers.join(", ")
            ));
        }
        text
    })?;
    Ok(match (&report.rollout, &report.not_on_target) {
        (Some(Rollout::Progressing { .. } | Rollout::Stuck { .. }), _) => meshkit::Exit::Incomplete,
        (_, Some(problems)) if !problems.is_empty() => meshkit::Exit::Failed,
        _ if report.proxies.as_ref().is_some_and(|p| p.exit() != meshkit::Exit::Ok) => meshkit::Exit::Failed,
        _ => meshkit::Exit::Ok,
    })
}

pub fn table(plan: &GatewayPlan, dry_run: bool) -> Table {
    let mut table = Table::new(&["NAMESPACE", "GATEWAY", "FROM", "TO", "RESULT"]);
    let result = match (plan.unchanged, dry_run) {
        (true, _) => Cell::new("unchanged", Tone::Dim),
        (false, true) => Cell::new("would change (dry run)", Tone::Warn),
        (false, false) => Cell::new("changed", Tone::Good),
    };
    table.push(vec![
        Cell::from(plan.namespace.as_str()),
        Cell::from(plan.workload.as_str()),
        Cell::from(plan.from.as_deref().map_or("(default)".to_string(), |r| format!("{}={r}", keys::REV))),
        Cell::from(format!("{}={}", keys::REV, plan.to)),
        result,
    ]);
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshkit::testing::{istiod, labels};

    fn mesh() -> Mesh {
        let tag = meshkit::testing::tag_webhook;
        Mesh::discover(
            &[istiod("1-30-3", "1.30.3"), istiod("1-31-1", "1.31.1")],
            &[tag("default", "1-30-3"), tag("prod-canary", "1-31-1")],
            &[],
        )
    }

    fn gateway(namespace: &str, name: &str, pod_labels: &[(&str, &str)]) -> GatewayView {
        GatewayView {
            namespace: namespace.into(),
            name: name.into(),
            template_labels: labels(pod_labels),
            template_annotations: labels(&[("inject.istio.io/templates", "gateway")]),
            ..Default::default()
        }
    }

    fn ns(name: &str, pairs: &[(&str, &str)]) -> NamespaceView {
        NamespaceView { name: name.into(), labels: labels(pairs) }
    }

    #[test]
    fn plans_a_pod_label_move_and_refuses_what_would_not_work() {
        let gw = gateway("ingress", "gw", &[("sidecar.istio.io/inject", "true"), ("istio.io/rev", "1-30-3")]);
        let plan = plan(&mesh(), &gw, &ns("ingress", &[]), "prod-canary", false).unwrap();
        assert_eq!((plan.from.as_deref(), plan.to.as_str(), plan.unchanged), (Some("1-30-3"), "prod-canary", false));
        let err =
            super::plan(&mesh(), &gw, &ns("ingress", &[("istio.io/rev", "1-30-3")]), "prod-canary", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "namespace ingress decides the revision of its pods (istio.io/rev=1-30-3), not the gateway's pod label"
        );
        let plain = GatewayView { template_annotations: Labels::new(), ..gw.clone() };
        let err = super::plan(&mesh(), &plain, &ns("ingress", &[]), "prod-canary", false).unwrap_err();
        assert_eq!(err.to_string(), "deployment ingress/gw is not an injected gateway");
        assert_eq!(super::plan(&mesh(), &gw, &ns("ingress", &[]), "nope", false).unwrap_err().exit() as u8, 5);
    }

    #[test]
    fn names_the_gateways_that_follow_the_default() {
        let gateways = [
            gateway("a", "pinned", &[("sidecar.istio.io/inject", "true"), ("istio.io/rev", "1-30-3")]),
            gateway("a", "follower", &[("sidecar.istio.io/inject", "true")]),
            gateway("a", "by-tag", &[("sidecar.istio.io/inject", "true"), ("istio.io/rev", "default")]),
            gateway("b", "in-legacy-namespace", &[]),
        ];
        let namespaces = [ns("a", &[]), ns("b", &[("istio-injection", "enabled")])];
        assert_eq!(
            default_followers(&mesh(), &gateways, &namespaces),
            ["a/follower", "a/by-tag", "b/in-legacy-namespace"]
        );
    }
}

#[cfg(test)]
mod ownership_tests {
    use super::*;
    use meshkit::testing::labels;

    #[test]
    fn a_gateway_helm_renders_is_refused_with_the_helm_command_unless_taken_over() {
        let mesh = Mesh::discover(&[meshkit::testing::istiod("1-31-1", "1.31.1")], &[], &[]);
        let gateway = GatewayView {
            namespace: "istio-ingress".into(),
            name: "istio-ingressgateway".into(),
            template_labels: labels(&[("istio.io/rev", "1-30-3")]),
            template_annotations: labels(&[("inject.istio.io/templates", "gateway")]),
            manager: Manager::Helm { release: "istio-ingressgateway".into(), namespace: "istio-ingress".into() },
        };
        let namespace = NamespaceView { name: "istio-ingress".into(), labels: Labels::new() };
        let Err(Error::Refused { message, hint }) = plan(&mesh, &gateway, &namespace, "1-31-1", false) else {
            panic!()
        };
        assert!(message.contains("managed by helm:istio-ingress/istio-ingressgateway"), "{message}");
        assert!(
            hint.starts_with("move it with Helm: `helm upgrade istio-ingressgateway istio/gateway -n istio-ingress --reuse-values --set revision=1-31-1`"),
            "{hint}"
        );
        let taken = plan(&mesh, &gateway, &namespace, "1-31-1", true).unwrap();
        assert!(taken.warnings[0].contains("its next sync moves it back"), "{:?}", taken.warnings);
    }
}
