//! Every command and flag of `kubectl meshcheck`, declared once: parsing, help, completion and the
//! usage errors all come from here (see `meshkit::cli`).

use meshkit::Exit;
use meshkit::spec::{CommandSpec, FlagSpec, NO_HEADERS, OUTPUT, Spec, Values};

const TO_VERSION: FlagSpec = FlagSpec {
    long: "to-version",
    short: None,
    value: Some(Values::Nothing),
    about: "the Istio version being upgraded to (1.Y or 1.Y.Z)",
};
const FAIL_ON: FlagSpec = FlagSpec {
    long: "fail-on",
    short: None,
    value: Some(Values::Words(&["error", "warning"])),
    about: "the least severe finding that exits 1 (default error)",
};
const WAIT: FlagSpec = FlagSpec {
    long: "wait",
    short: None,
    value: None,
    about: "retry failing checks until they pass, for up to --timeout",
};
const TIMEOUT: FlagSpec = FlagSpec {
    long: "timeout",
    short: None,
    value: Some(Values::Nothing),
    about: "how long --wait retries (default 5m; 0: no limit)",
};
const CHECK_EXITS: &[Exit] = &[Exit::Ok, Exit::Failed, Exit::Usage, Exit::Unreachable, Exit::Forbidden];

pub static SPEC: Spec = Spec {
    plugin: "meshcheck",
    commands: &[
        CommandSpec {
            name: "precheck",
            about: "before an upgrade: Kubernetes support, permissions, installation, injection, data plane",
            flags: &[
                TO_VERSION,
                FlagSpec {
                    long: "revision",
                    short: Some('r'),
                    value: Some(Values::Nothing),
                    about: "the revision name the canary will get (a DNS-1123 label)",
                },
                FAIL_ON,
                WAIT,
                TIMEOUT,
                OUTPUT,
            ],
            description: "\
Check a cluster before installing a canary revision: Kubernetes against the target Istio's
supported range, your permissions, the installation (revisions, tags, labels, leftovers), injection
(overlapping webhooks, missing Services), CRD and API versions, the data plane's proxy versions,
and room for a second istiod. Every check has a code; `kubectl meshcheck explain CODE` explains it.",
            examples: &[
                "kubectl meshcheck precheck --to-version 1.31 --revision 1-31-1",
                "kubectl meshcheck precheck -o json",
            ],
            exits: CHECK_EXITS,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "verify",
            about: "after an upgrade: control plane available, webhooks served, pods on their revisions",
            flags: &[
                FAIL_ON,
                WAIT,
                TIMEOUT,
                FlagSpec {
                    long: "stale-after",
                    short: None,
                    value: Some(Values::Nothing),
                    about: "how long a proxy may leave configuration unacknowledged (default 1m)",
                },
                OUTPUT,
            ],
            description: "\
Check a cluster after a move: istiod of every revision available, webhooks with a caBundle and
Services with ready endpoints, tags and labels naming installed revisions, every pod running the
sidecar its labels ask for, every proxy connected live to an istiod of the revision that injected
it and none STALE for longer than --stale-after, and revisions nothing uses any more. --wait
retries until the checks pass (exit 1 if they still fail after --timeout).",
            examples: &["kubectl meshcheck verify", "kubectl meshcheck verify --wait --timeout 2m"],
            exits: CHECK_EXITS,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "version",
            about: "control-plane and data-plane versions per revision, with skew warnings",
            flags: &[OUTPUT, NO_HEADERS],
            description: "\
Show each revision's istiod version and the proxy versions of the pods it injected, read from pod
specs, with a warning where proxies and control plane are further apart than Istio supports.",
            examples: &["kubectl meshcheck version", "kubectl meshcheck version -o yaml"],
            exits: &[Exit::Ok, Exit::Usage, Exit::Unreachable, Exit::Forbidden],
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "proxy-status",
            about: "which istiod each proxy is connected to, live, and whether it is in sync",
            flags: &[
                FlagSpec {
                    long: "selector",
                    short: Some('l'),
                    value: Some(Values::Nothing),
                    about: "only pods with these labels",
                },
                OUTPUT,
                NO_HEADERS,
            ],
            args: Values::Namespaces,
            usage: "[NAMESPACE…] [-l SELECTOR]",
            description: "\
Ask every istiod (one port-forwarded request to its debug port each, through the apiserver) which
proxies are connected to it and whether each has ACKed what it was sent: CDS, LDS, EDS, RDS and
ECDS as SYNCED, NOT SENT, STALE (for how long) or ERROR. Each pod with a sidecar gets a row: the
istiod and revision it is connected to, the revision its labels ask for (marked ≠ where they
differ), and a verdict. Proxies connected with no pod here (VMs, other clusters) are listed too.
When an istiod cannot be read, it says so and the rows show what pod specs say. Needs
`create pods/portforward` in the Istio namespace.",
            examples: &[
                "kubectl meshcheck proxy-status",
                "kubectl meshcheck proxy-status shop-stable shop-canary",
                "kubectl meshcheck proxy-status -l app=web -o json",
            ],
            exits: &[Exit::Ok, Exit::Usage, Exit::Unreachable, Exit::Forbidden],
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "manifest",
            about: "review an upgrade manifest before applying it: FILE… or -f FILE (- for stdin)",
            flags: &[
                FlagSpec {
                    long: "filename",
                    short: Some('f'),
                    value: Some(Values::Files),
                    about: "a manifest to review (repeatable; - reads stdin)",
                },
                TO_VERSION,
                FlagSpec {
                    long: "offline",
                    short: None,
                    value: None,
                    about: "skip the server-side dry run (no cluster needed)",
                },
                FAIL_ON,
                OUTPUT,
            ],
            args: Values::Files,
            usage: "FILE…|-f FILE",
            description: "\
Review the manifest of an upgrade (helm template or istioctl manifest generate output) before
applying it: images against --to-version, removed settings, the CNI setting against the cluster,
and a server-side dry run of every object (skipped with --offline).",
            examples: &[
                "helm template istiod istio/istiod --set revision=1-31-1 | kubectl meshcheck manifest -f - --to-version 1.31",
            ],
            exits: CHECK_EXITS,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "explain",
            about: "what a check verifies and what to do when it fails (offline)",
            usage: "CODE",
            description: "Print the documentation of check CODE (e.g. MC0401). Needs no cluster.",
            examples: &["kubectl meshcheck explain MC0401"],
            exits: &[Exit::Ok, Exit::Usage],
            ..CommandSpec::BARE
        },
        meshkit::spec::COMPLETION,
    ],
};
