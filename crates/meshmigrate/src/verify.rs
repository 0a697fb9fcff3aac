//! After the rollouts: does every pod of the namespaces have the sidecar its namespace asks for
//! (after a move: the target revision's), and for each that does not, why.

use std::collections::BTreeMap;

use meshkit::istio::{
    Intended, Mesh, NamespaceView, OptOut, PodRevisionState, PodView, namespace_injection, pod_injected, pod_intended,
    pod_opt_out, pod_state,
};
use meshkit::render::{Cell, Table, Tone};
use serde::Serialize;

use crate::rollout::Rollout;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Reason {
    /// The pod opts out (label or annotation `sidecar.istio.io/inject=false`): expected.
    OptedOut { by: OptOut },
    /// Its workload's rollout did not finish (still rolling at the deadline, or stuck).
    RolloutIncomplete { rollout: Rollout },
    /// Its workload was not restarted (no `--restart`), so it still has the sidecar it was born with.
    NotRestarted,
    /// Nothing can restart it: a bare pod, or a kind `--restart` does not roll (Job, ReplicaSet…).
    NoRestartableController,
    /// Restarted and rolled out, still not injected by the target: the injector did not act.
    NotInjectedAfterRestart,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotOnTarget {
    pub namespace: String,
    pub pod: String,
    pub workload: String,
    /// The revision whose sidecar it has, if any.
    pub injected: Option<String>,
    /// The revision its namespace asks for, if any.
    pub wanted: Option<String>,
    pub reason: Reason,
}

impl NotOnTarget {
    /// Opted-out pods are where the user wants them; everything else needs attention.
    pub fn expected(&self) -> bool {
        matches!(self.reason, Reason::OptedOut { .. })
    }
}

pub struct VerifyInput<'a> {
    pub namespaces: &'a [NamespaceView],
    pub pods: &'a [PodView],
    pub replica_set_owners: &'a BTreeMap<(String, String), String>,
    pub mesh: &'a Mesh,
    /// Final rollout state of each workload restarted (or awaited) in this run, by
    /// `(namespace, workload)`.
    pub rollouts: &'a BTreeMap<(String, String), Rollout>,
}

pub fn verify(input: &VerifyInput) -> Vec<NotOnTarget> {
    let namespaces: BTreeMap<&str, &NamespaceView> = input.namespaces.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut problems = Vec::new();
    // Terminating pods are on their way out (a rollout's old pods in their grace period).
    for pod in input.pods.iter().filter(|p| !p.finished && !p.terminating) {
        let Some(namespace) = namespaces.get(pod.namespace.as_str()) else { continue };
        let injected = pod_injected(pod).revision().map(str::to_string);
        let requested = namespace_injection(&namespace.labels).requested().map(str::to_string);
        let wanted = requested.as_deref().and_then(|r| input.mesh.resolve(r)).map(str::to_string);
        let fine = match &wanted {
            Some(revision) => injected.as_ref() == Some(revision),
            // Nothing asked at namespace level: pod labels decide (or a tag names nothing installed).
            None => !matches!(pod_state(namespace, pod, input.mesh), PodRevisionState::Stale { .. }),
        };
        if fine {
            continue;
        }
        let workload = crate::status::workload(pod, input.replica_set_owners);
        let restartable = ["deployment/", "statefulset/", "daemonset/"].iter().any(|k| workload.starts_with(k));
        let opted_out = match pod_intended(namespace, &pod.labels, input.mesh) {
            Intended::None { .. } => pod_opt_out(pod),
            Intended::Sidecar { .. } => pod_opt_out(pod).filter(|by| *by == OptOut::Annotation),
        };
        let reason = match (opted_out, input.rollouts.get(&(pod.namespace.clone(), workload.clone()))) {
            (Some(by), _) => Reason::OptedOut { by },
            (None, _) if !restartable => Reason::NoRestartableController,
            (None, Some(Rollout::Complete)) => Reason::NotInjectedAfterRestart,
            (None, Some(rollout)) => Reason::RolloutIncomplete { rollout: rollout.clone() },
            (None, None) => Reason::NotRestarted,
        };
        problems.push(NotOnTarget {
            namespace: pod.namespace.clone(),
            pod: pod.name.clone(),
            workload,
            injected,
            wanted,
            reason,
        });
    }
    problems
}

pub fn describe(reason: &Reason) -> String {
    match reason {
        Reason::OptedOut { by: OptOut::Label } => "opted out: pod label sidecar.istio.io/inject=false".into(),
        Reason::OptedOut { by: OptOut::Annotation } => "opted out: pod annotation sidecar.istio.io/inject=false".into(),
        Reason::RolloutIncomplete { rollout: Rollout::Stuck { reason } } => format!("rollout stuck: {reason}"),
        Reason::RolloutIncomplete { rollout: Rollout::Progressing { updated, desired } } => {
            format!("rollout not finished in time ({updated}/{desired} pods updated)")
        }
        Reason::RolloutIncomplete { rollout: Rollout::Complete } => "rollout complete".into(),
        Reason::NotRestarted => "created before the move and not restarted (pass --restart)".into(),
        Reason::NoRestartableController => "no Deployment, StatefulSet or DaemonSet to restart it: recreate it".into(),
        Reason::NotInjectedAfterRestart => "restarted, yet not injected as asked: check the revision's injector".into(),
    }
}

pub fn table(problems: &[NotOnTarget]) -> Table {
    let mut table = Table::new(&["NAMESPACE", "POD", "WORKLOAD", "SIDECAR", "WANTED", "WHY NOT"]);
    for p in problems {
        let tone = if p.expected() { Tone::Dim } else { Tone::Bad };
        table.push(vec![
            Cell::from(p.namespace.as_str()),
            Cell::from(p.pod.as_str()),
            Cell::from(p.workload.as_str()),
            Cell::from(p.injected.as_deref().unwrap_or("none")),
            Cell::from(p.wanted.as_deref().unwrap_or("none")),
            Cell::new(describe(&p.reason), tone),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshkit::istio::{ContainerView, WebhookConfigView};
    use meshkit::testing::{istiod, labels};

    fn pod(name: &str, injected: Option<&str>, owner: Option<(&str, &str)>, extra: &[(&str, &str)]) -> PodView {
        let mut pod = PodView {
            namespace: "shop".into(),
            name: name.into(),
            labels: labels(extra),
            owner: owner.map(|(k, n)| (k.to_string(), n.to_string())),
            containers: vec![ContainerView { name: "app".into(), image: "nginx".into() }],
            ..Default::default()
        };
        if let Some(rev) = injected {
            pod.annotations = labels(&[("istio.io/rev", rev)]);
        }
        pod
    }

    #[test]
    fn every_pod_off_target_gets_a_reason() {
        let tag = WebhookConfigView {
            name: "istio-revision-tag-prod-canary".into(),
            labels: labels(&[("istio.io/rev", "1-31-1"), ("istio.io/tag", "prod-canary")]),
            ..Default::default()
        };
        let mesh = Mesh::discover(&[istiod("1-30-3", "1.30.3"), istiod("1-31-1", "1.31.1")], &[tag], &[]);
        let namespaces = [NamespaceView { name: "shop".into(), labels: labels(&[("istio.io/rev", "prod-canary")]) }];
        let mut annotated = pod("annotated", None, Some(("ReplicaSet", "api-2")), &[]);
        annotated.annotations = labels(&[("sidecar.istio.io/inject", "false")]);
        let pods = [
            pod("web-new", Some("1-31-1"), Some(("ReplicaSet", "web-2")), &[]),
            pod("batch", None, Some(("ReplicaSet", "web-2")), &[("sidecar.istio.io/inject", "false")]),
            annotated,
            pod("db-0", Some("1-30-3"), Some(("StatefulSet", "db")), &[]),
            pod("api-1", Some("1-30-3"), Some(("ReplicaSet", "api-2")), &[]),
            pod("cache-0", Some("1-30-3"), Some(("DaemonSet", "cache")), &[]),
            pod("job-x", Some("1-30-3"), Some(("Job", "x")), &[]),
            pod("old", Some("1-30-3"), Some(("ReplicaSet", "old-1")), &[]),
            PodView { terminating: true, ..pod("leaving", Some("1-30-3"), Some(("ReplicaSet", "api-1")), &[]) },
        ];
        let owners = [
            (("shop".to_string(), "web-2".to_string()), "web".to_string()),
            (("shop".to_string(), "api-2".to_string()), "api".to_string()),
            (("shop".to_string(), "old-1".to_string()), "old".to_string()),
        ]
        .into();
        let rollouts = [
            (("shop".to_string(), "statefulset/db".to_string()), Rollout::Stuck { reason: "r".into() }),
            (("shop".to_string(), "deployment/api".to_string()), Rollout::Complete),
            (("shop".to_string(), "daemonset/cache".to_string()), Rollout::Progressing { updated: 0, desired: 1 }),
        ]
        .into();
        let problems = verify(&VerifyInput {
            namespaces: &namespaces,
            pods: &pods,
            replica_set_owners: &owners,
            mesh: &mesh,
            rollouts: &rollouts,
        });
        let got: Vec<(&str, &Reason)> = problems.iter().map(|p| (p.pod.as_str(), &p.reason)).collect();
        assert_eq!(
            got,
            [
                ("batch", &Reason::OptedOut { by: OptOut::Label }),
                ("annotated", &Reason::OptedOut { by: OptOut::Annotation }),
                ("db-0", &Reason::RolloutIncomplete { rollout: Rollout::Stuck { reason: "r".into() } }),
                ("api-1", &Reason::NotInjectedAfterRestart),
                ("cache-0", &Reason::RolloutIncomplete { rollout: Rollout::Progressing { updated: 0, desired: 1 } }),
                ("job-x", &Reason::NoRestartableController),
                ("old", &Reason::NotRestarted),
            ]
        );
        assert!(problems[0].expected() && problems[1].expected() && !problems[2].expected());
        assert_eq!(problems[2].workload, "statefulset/db");
    }
}
