//! Every command and flag of `kubectl meshbackup`, declared once: parsing, help, completion and
//! the usage errors all come from here (see `meshkit::cli`).

use meshkit::Exit;
use meshkit::spec::{CommandSpec, DRY_RUN, FlagSpec, NO_HEADERS, OUTPUT, Spec, Values, YES};

const FILE_EXITS: &[Exit] = &[Exit::Ok, Exit::Usage, Exit::Invalid];

pub static SPEC: Spec = Spec {
    plugin: "meshbackup",
    commands: &[
        CommandSpec {
            name: "create",
            about: "write one archive of the Istio installation",
            flags: &[
                FlagSpec {
                    long: "include-secrets",
                    short: None,
                    value: None,
                    about: "also the Secrets of the Istio namespace (the CA included)",
                },
                FlagSpec { long: "force", short: None, value: None, about: "replace an existing file" },
                OUTPUT,
            ],
            args: Values::Files,
            usage: "[FILE] [--include-secrets] [--force]",
            description: "\
Write one archive (tar.gz) to FILE (default istio-backup-CONTEXT-TIME.tar.gz) of Istio's CRDs, every Istio and Gateway API custom resource in every
namespace, the control plane in the Istio namespace, the webhooks, ClusterRoles and bindings of the
install, and the injection labels of namespaces; stripped of server-managed fields, each with its
sha256. Secrets of the Istio namespace only with --include-secrets. The file is written with mode
0600 to a temporary name and renamed; an existing file is never replaced without --force, and the
path is checked before the cluster is read.",
            examples: &["kubectl meshbackup create before-upgrade.tar.gz --include-secrets"],
            exits: &[Exit::Ok, Exit::Failed, Exit::Usage, Exit::Unreachable, Exit::Forbidden, Exit::NotFound],
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "inspect",
            about: "what an archive holds; verifies every checksum",
            flags: &[OUTPUT, NO_HEADERS],
            args: Values::Files,
            usage: "FILE",
            description: "What the archive holds per kind, namespace and revision; verifies every checksum. Needs no cluster.",
            examples: &["kubectl meshbackup inspect before-upgrade.tar.gz"],
            exits: FILE_EXITS,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "diff",
            about: "the live cluster against an archive",
            flags: &[OUTPUT],
            args: Values::Files,
            usage: "FILE",
            description: "\
The live cluster against the archive: added, removed and changed objects with unified YAML diffs.
As kubectl diff: exit 0 when there are no differences, 1 when there are, above 1 on error (a
failed request exits 3).",
            examples: &["kubectl meshbackup diff before-upgrade.tar.gz"],
            exits: &[Exit::Ok, Exit::Failed, Exit::Usage, Exit::Unreachable, Exit::Forbidden, Exit::Invalid],
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "restore",
            about: "server-side apply an archive in a safe order",
            flags: &[
                DRY_RUN,
                FlagSpec {
                    long: "only",
                    short: None,
                    value: Some(Values::Nothing),
                    about: "only these kinds (Kind, kind.group or plural; comma-separated, repeatable)",
                },
                FlagSpec {
                    long: "force-conflicts",
                    short: None,
                    value: None,
                    about: "take over fields that others changed since the backup",
                },
                YES,
                OUTPUT,
            ],
            args: Values::Files,
            usage: "FILE [--only KIND,…] [-n NAMESPACE]",
            description: "\
Verify the whole archive, then server-side apply it (field manager kubectl-meshbackup): CRDs (waiting until
Established), namespaces, configuration and RBAC, the control plane, custom resources, webhooks
last. Reports each object as created, updated, unchanged, conflict or failed. Safe to rerun.
-n NAMESPACE restores only objects in it (and the namespace itself). --dry-run lists what would be
applied, in order, and sends nothing; --dry-run=server has the apiserver check every object
without persisting it.",
            examples: &[
                "kubectl meshbackup restore before-upgrade.tar.gz --dry-run",
                "kubectl meshbackup restore before-upgrade.tar.gz --only VirtualService,DestinationRule --dry-run=server",
            ],
            exits: &[
                Exit::Ok,
                Exit::Failed,
                Exit::Usage,
                Exit::Unreachable,
                Exit::Forbidden,
                Exit::NotFound,
                Exit::NotConfirmed,
                Exit::Invalid,
            ],
            ..CommandSpec::BARE
        },
        meshkit::spec::COMPLETION,
    ],
};
