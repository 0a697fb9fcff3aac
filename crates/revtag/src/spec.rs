//! Every command and flag of `kubectl revtag`, declared once: parsing, help, completion and the
//! usage errors all come from here (see `meshkit::cli`).

use meshkit::Exit;
use meshkit::spec::{CommandSpec, DRY_RUN, FlagSpec, NO_HEADERS, OUTPUT, Spec, TAKE_OWNERSHIP, Values, YES};

const REVISION: FlagSpec = FlagSpec {
    long: "revision",
    short: Some('r'),
    value: Some(Values::Revisions),
    about: "the revision the tag points at (required)",
};
const OVERWRITE: FlagSpec =
    FlagSpec { long: "overwrite", short: None, value: None, about: "point an existing tag at another revision" };
const AUTO_INJECT: FlagSpec = FlagSpec {
    long: "auto-inject-namespaces",
    short: None,
    value: None,
    about: "also inject pods in unlabelled namespaces (default tag only)",
};
const BACKUP: FlagSpec = FlagSpec {
    long: "backup",
    short: None,
    value: Some(Values::Files),
    about: "write the tag's objects to this backup archive (meshbackup's format) before deleting them",
};
const IGNORE_NOT_FOUND: FlagSpec =
    FlagSpec { long: "ignore-not-found", short: None, value: None, about: "succeed when the tag does not exist" };

const READ_EXITS: &[Exit] = &[Exit::Ok, Exit::Usage, Exit::Unreachable, Exit::Forbidden, Exit::NotFound];
const WRITE_EXITS: &[Exit] =
    &[Exit::Ok, Exit::Failed, Exit::Usage, Exit::Unreachable, Exit::Forbidden, Exit::NotFound, Exit::NotConfirmed];

pub static SPEC: Spec = Spec {
    plugin: "revtag",
    commands: &[
        CommandSpec {
            name: "list",
            aliases: &["ls", "show"],
            about: "tags, the revisions they point at, their Istio versions and the namespaces using them",
            flags: &[OUTPUT, NO_HEADERS],
            description: "\
List revision tags with the revision each points at, that revision's Istio version, and the
namespaces using each tag or revision, including namespaces that use the default revision
through `istio-injection=enabled`. Tags whose revision is no longer installed are marked.
MANAGED-BY names who manages each tag's objects: a Helm release (`helm:NAMESPACE/RELEASE`, from
Helm's release annotations), istioctl, Sail Operator, Argo CD, Flux, or one of these plugins.",
            examples: &["kubectl revtag list", "kubectl revtag list -o json"],
            exits: READ_EXITS,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "revisions",
            aliases: &["revision"],
            about: "every installed revision side by side: istiod, webhooks, version, tags, users",
            flags: &[OUTPUT, NO_HEADERS],
            args: Values::Revisions,
            usage: "[REVISION]",
            description: "\
Show every installed control-plane revision: its istiod Deployments and ready replicas, injector
and validating webhooks, Istio version, the tags pointing at it, whether it is the default, and
how many namespaces and pods use it, and who installed it (MANAGED-BY: a Helm release, istioctl,
Sail Operator, Argo CD or Flux, read from the marks each leaves on the istiod Deployment).",
            examples: &["kubectl revtag revisions", "kubectl revtag revisions 1-31-1 -o yaml"],
            exits: READ_EXITS,
        },
        CommandSpec {
            name: "set",
            aliases: &[],
            about: "create a tag or point it at another revision",
            flags: &[REVISION, OVERWRITE, YES, DRY_RUN, TAKE_OWNERSHIP, AUTO_INJECT, OUTPUT],
            args: Values::Tags,
            usage: "TAG --revision REVISION",
            description: "\
Create revision tag TAG pointing at REVISION, or point an existing tag at another revision
(--overwrite). Writes the tag's injector webhook, its Service and, for `default`, the default
validating webhook, derived from the revision's own injector, with server-side apply.

Refuses a tag named like a revision, an unknown revision, and any change that would make two
webhooks inject the same pod. Moving `default` asks first (or needs --yes); a legacy injector is
switched off only after the new objects are in place, and `remove default` switches it back on.
--dry-run (client) shows the change; --dry-run=server has the apiserver validate every write
without persisting it.

Never fights the owner. A tag whose objects Helm, Sail Operator, Argo CD or Flux manages is
refused, naming the owner and its way of making the change. --take-ownership makes the change
anyway; from Helm it first takes the objects out of the release (a new release revision without
them, so that `helm upgrade` and `helm uninstall` of that release leave them alone; the previous
revision stays in `helm history`) and marks them `helm.sh/resource-policy: keep`. Sail and GitOps
revert changes made behind their backs: change those in their resources or in Git. A default
validator that Helm renders (istio-base's `defaultRevision`) is left to Helm, and the command
that moves it is printed.",
            examples: &[
                "kubectl revtag set prod-canary --revision 1-31-1",
                "kubectl revtag set prod-stable --revision 1-31-1 --overwrite",
                "kubectl revtag set default --revision 1-31-1 --overwrite --yes",
                "kubectl revtag set prod-stable --revision 1-31-1 --overwrite --take-ownership",
            ],
            exits: WRITE_EXITS,
        },
        CommandSpec {
            name: "remove",
            aliases: &["rm", "delete"],
            about: "remove a tag",
            flags: &[YES, DRY_RUN, TAKE_OWNERSHIP, BACKUP, IGNORE_NOT_FOUND, OUTPUT],
            args: Values::Tags,
            usage: "TAG",
            description: "\
Remove revision tag TAG: its injector webhook, its Service, and for `default` the default
validating webhook. Asks first (or needs --yes) while namespaces or pods still select the tag.
--backup FILE writes them first to a backup archive in meshbackup's format (`kubectl meshbackup
restore FILE` puts them back), e.g. before sweeping a tag whose revision is gone.
A tag another manager owns is refused, as for `set`; --take-ownership takes it out of a Helm
release before deleting it, so that the release's records stay true.",
            examples: &[
                "kubectl revtag remove prod-canary",
                "kubectl revtag remove old --dry-run=server",
                "kubectl revtag remove old --backup tag-old.tar.gz --yes",
            ],
            exits: WRITE_EXITS,
        },
        CommandSpec {
            name: "generate",
            aliases: &[],
            about: "print the manifests of a tag without changing anything",
            flags: &[REVISION, OVERWRITE, AUTO_INJECT, OUTPUT],
            args: Values::Tags,
            usage: "TAG --revision REVISION",
            description: "\
Print the objects `set` would write for TAG as multi-document YAML (or a JSON List with
-o json). Changes nothing.",
            examples: &["kubectl revtag generate prod-canary --revision 1-31-1 | kubectl apply -f -"],
            exits: READ_EXITS,
        },
        meshkit::spec::COMPLETION,
    ],
};
