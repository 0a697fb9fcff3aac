//! Every command and flag of `kubectl meshmigrate`, declared once: parsing, help, completion and
//! the usage errors all come from here (see `meshkit::cli`).

use meshkit::Exit;
use meshkit::spec::{CommandSpec, DRY_RUN, FlagSpec, NO_HEADERS, OUTPUT, Spec, TAKE_OWNERSHIP, Values, YES};

const FORCE: FlagSpec = FlagSpec { long: "force", short: None, value: None, about: "allow system namespaces" };
const TO: FlagSpec =
    FlagSpec { long: "to", short: None, value: Some(Values::RevisionsOrTags), about: "the target revision or tag" };
const RESTART: FlagSpec = FlagSpec {
    long: "restart",
    short: None,
    value: None,
    about: "roll the Deployments, StatefulSets and DaemonSets whose pods would be stale",
};
const WAIT: FlagSpec = FlagSpec {
    long: "wait",
    short: None,
    value: None,
    about: "follow the rollouts, then report every pod without its sidecar",
};
const TIMEOUT: FlagSpec = FlagSpec {
    long: "timeout",
    short: None,
    value: Some(Values::Nothing),
    about: "how long restarts may wait their turn and --wait follows (default 10m; 0: no limit)",
};
const MAX_CONCURRENT: FlagSpec = FlagSpec {
    long: "max-concurrent",
    short: None,
    value: Some(Values::Nothing),
    about: "rollouts at a time (default 5)",
};

const READ_EXITS: &[Exit] = &[Exit::Ok, Exit::Usage, Exit::Unreachable, Exit::Forbidden];
const MOVE_EXITS: &[Exit] = &[
    Exit::Ok,
    Exit::Failed,
    Exit::Usage,
    Exit::Unreachable,
    Exit::Forbidden,
    Exit::NotFound,
    Exit::NotConfirmed,
    Exit::Incomplete,
];

pub static SPEC: Spec = Spec {
    plugin: "meshmigrate",
    commands: &[
        CommandSpec {
            name: "namespace",
            about: "move namespaces to a revision or tag",
            flags: &[
                TO,
                FlagSpec {
                    long: "selector",
                    short: Some('l'),
                    value: Some(Values::Nothing),
                    about: "namespaces by label",
                },
                RESTART,
                WAIT,
                TIMEOUT,
                MAX_CONCURRENT,
                DRY_RUN,
                FORCE,
                YES,
                OUTPUT,
            ],
            args: Values::Namespaces,
            usage: "NAMESPACE…|-l SELECTOR --to REV|TAG",
            description: "\
Move namespaces to a revision or tag: record their injection labels in the journal, remove
istio-injection, set istio.io/rev. --restart rolls the workloads whose pods would be stale, in
waves of at most --max-concurrent, as `restart` does; --wait follows the rollouts and then reports
every pod without the sidecar its namespace asks for, and why. System namespaces need --force.
Restarting, or selecting by label, asks first (--yes answers for scripts). Changes are made under a
run lock (the Lease kubectl-mesh-lock in the Istio namespace): a second run refuses and names the
holder. Exit 7: a restart was held or stopped, or --wait stopped before every rollout finished;
rerunning the same command continues.",
            examples: &[
                "kubectl meshmigrate namespace shop --to prod-canary --restart --wait",
                "kubectl meshmigrate namespace -l team=shop --to prod-canary --restart --wait --yes",
            ],
            exits: MOVE_EXITS,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "rollback",
            about: "restore the labels the last recorded move replaced",
            flags: &[
                FlagSpec {
                    long: "all",
                    short: None,
                    value: None,
                    about: "every namespace with a move not yet rolled back",
                },
                RESTART,
                WAIT,
                TIMEOUT,
                MAX_CONCURRENT,
                DRY_RUN,
                YES,
                OUTPUT,
            ],
            args: Values::Namespaces,
            usage: "NAMESPACE…|--all",
            description: "\
Restore the labels the last recorded move of each namespace replaced (--all: every namespace with
a move not yet rolled back); --restart and --wait as for `namespace`.",
            examples: &["kubectl meshmigrate rollback shop --restart --wait --yes"],
            exits: MOVE_EXITS,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "gateway",
            about: "move an injected gateway Deployment to a revision or tag",
            flags: &[TO, TIMEOUT, DRY_RUN, TAKE_OWNERSHIP, OUTPUT],
            usage: "NAME -n NAMESPACE --to REV|TAG",
            description: "\
Move an injected gateway Deployment to a revision or tag: record it, set its pod template's
istio.io/rev (which rolls it), follow the rollout, verify its pods. Names the gateways that follow
the default revision and move with it.

A gateway another manager owns is refused: the gateway chart's Helm release sets its `revision`
value back on its next upgrade, and GitOps on its next sync. The hint gives the owner's way
(`helm upgrade RELEASE istio/gateway --reuse-values --set revision=REV`); --take-ownership moves it
here anyway and warns that the owner must be told.",
            examples: &["kubectl meshmigrate gateway istio-ingressgateway -n istio-ingress --to 1-31-1"],
            exits: MOVE_EXITS,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "retire",
            about: "back up and delete an old revision nothing uses",
            flags: &[
                FlagSpec {
                    long: "backup",
                    short: None,
                    value: Some(Values::Files),
                    about: "where the backup archive goes (default istio-retire-REV-TIME.tar.gz)",
                },
                DRY_RUN,
                YES,
                OUTPUT,
            ],
            args: Values::Revisions,
            usage: "REVISION",
            description: "\
Delete an old revision's control plane, as istioctl's uninstall of one revision does, once nothing
uses it: refused while a tag, the default, a namespace, an injected pod or a gateway still does.
Everything it deletes is first written to a backup archive (`kubectl meshbackup restore` puts it
back); webhooks go first; CRDs and other revisions are left alone.

A revision installed with Helm is retired as `helm uninstall` would: the objects of its release's
manifest go too (those marked `helm.sh/resource-policy: keep` stay), and then the release's records,
so `helm list` stays true; the records are in the backup. Objects of the release that moved to
another revision (a tag it rendered, now pointing elsewhere) are kept and freed from the release.
Never fights the owner: refused when an object it would delete belongs to another Helm release
(istio-base's default validator still naming REV), to Sail Operator or to GitOps, naming the owner's
way; and a release with uninstall hooks or kinds it does not know is left to `helm uninstall`.",
            examples: &[
                "kubectl meshmigrate retire 1-30-3 --dry-run",
                "kubectl meshmigrate retire 1-30-3 --backup before-retire.tar.gz --yes",
            ],
            exits: MOVE_EXITS,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "restart",
            about: "restart only the workloads whose pods are stale",
            flags: &[WAIT, TIMEOUT, MAX_CONCURRENT, DRY_RUN, OUTPUT],
            args: Values::Namespaces,
            usage: "[NAMESPACE…]",
            description: "\
Restart only the workloads whose pods are stale (as `kubectl rollout restart`), each recorded in
the journal first. Without NAMESPACE: every mesh namespace. Restarts start in waves of at most
--max-concurrent, the next as a rollout of the last ends. A workload whose PodDisruptionBudget allows
no disruption now (or covers a rollout still going) waits for it, saying so, until --timeout; once
a rollout fails (pods cannot be created, or its progress deadline passed) no new restart starts.
Either ends with exit 7, and rerunning continues. Jobs' pods are replaced on their next run.
--wait follows the last wave too, then waits until every new pod's proxy is connected, live, to an
istiod of the revision that injected it and in sync; with -o json it then prints the restarts, how
each rollout ended and the proxies, as one object.",
            examples: &[
                "kubectl meshmigrate restart",
                "kubectl meshmigrate restart shop --dry-run",
                "kubectl meshmigrate restart shop --wait --timeout 5m",
                "kubectl meshmigrate restart --max-concurrent 2",
            ],
            exits: MOVE_EXITS,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "log",
            about: "the journal: every change, when, by whom, from what, to what",
            flags: &[OUTPUT, NO_HEADERS],
            examples: &["kubectl meshmigrate log -o json"],
            exits: READ_EXITS,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "status",
            about: "per namespace: intended revision, injected revisions, stale pods, restarts needed",
            flags: &[OUTPUT, NO_HEADERS],
            args: Values::Namespaces,
            usage: "[NAMESPACE…|-A]",
            description: "\
Per namespace: labels, intended revision (through tags and the default), pods per injected revision
and proxy version, stale pods and why (another revision, or an older proxy than their revision
injects now), workloads needing a restart. Without arguments: every namespace with an injection
label or an injected pod.",
            examples: &["kubectl meshmigrate status", "kubectl meshmigrate status shop-canary shop-stable -o json"],
            exits: READ_EXITS,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "explain",
            about: "why a pod or a namespace's pods are injected, by which revision, and whether stale",
            flags: &[OUTPUT],
            args: Values::Namespaces,
            usage: "POD -n NAMESPACE | NAMESPACE",
            description: "\
Explain injection as the apiserver decides it, like `istioctl x check-inject` and more: every
injector webhook's namespace and object selectors evaluated against the namespace's and the pod's
labels. For a pod: the revision that injected it, the one that injects it next and through which
webhook and label (namespace or pod, tag → revision), the opt-outs that apply (istio-injection
disabled, sidecar.istio.io/inject=false as a label or an annotation, kube-system), whether it is
stale and why, and each injector's answer. For a namespace: what a new pod with no labels gets,
then the same for every pod in it. Two injectors selecting one pod is shown as an error.",
            examples: &[
                "kubectl meshmigrate explain web-7d4b9c-x2x9z -n shop",
                "kubectl meshmigrate explain shop -o json",
            ],
            exits: &[Exit::Ok, Exit::Usage, Exit::Unreachable, Exit::Forbidden, Exit::NotFound],
            ..CommandSpec::BARE
        },
        meshkit::spec::COMPLETION,
    ],
};
