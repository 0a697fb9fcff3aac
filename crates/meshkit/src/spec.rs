//! A plugin's commands and flags, declared once: parsing, help, shell completion and the usage
//! errors are all derived from a [`Spec`] (see [`crate::cli`] and [`crate::complete`]).

use crate::error::Exit;

/// What a flag value or a positional argument can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    Nothing,
    Words(&'static [&'static str]),
    Namespaces,
    Revisions,
    Tags,
    RevisionsOrTags,
    Files,
    Contexts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagSpec {
    pub long: &'static str,
    pub short: Option<char>,
    /// `None` for a switch.
    pub value: Option<Values>,
    pub about: &'static str,
}

/// One command: everything its parsing, help, completion and docs need ([`crate::cli`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// One line, for the plugin's command list.
    pub about: &'static str,
    pub flags: &'static [FlagSpec],
    /// What its positional arguments are; each is offered once.
    pub args: Values,
    /// What follows the command name in the usage line (`TAG --revision REVISION`).
    pub usage: &'static str,
    /// The paragraphs of its help; `about` when empty.
    pub description: &'static str,
    pub examples: &'static [&'static str],
    /// The exit codes it uses.
    pub exits: &'static [Exit],
}

impl CommandSpec {
    /// A command with no documentation yet: start literals from it (`..CommandSpec::BARE`).
    pub const BARE: CommandSpec = CommandSpec {
        name: "",
        aliases: &[],
        about: "",
        flags: &[],
        args: Values::Nothing,
        usage: "",
        description: "",
        examples: &[],
        exits: &[Exit::Ok, Exit::Usage],
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// `revtag` for `kubectl revtag`.
    pub plugin: &'static str,
    pub commands: &'static [CommandSpec],
}

impl Spec {
    /// A warning on stderr, in the one form every plugin uses (`kubectl-revtag: warning: …`).
    pub fn warn(&self, message: impl std::fmt::Display) {
        eprintln!("kubectl-{}: warning: {message}", self.plugin);
    }

    /// Progress or a note on stderr (`kubectl-revtag: …`): data goes to stdout, this never does.
    pub fn note(&self, message: impl std::fmt::Display) {
        eprintln!("kubectl-{}: {message}", self.plugin);
    }
}

pub(crate) const fn flag(
    long: &'static str,
    short: Option<char>,
    value: Option<Values>,
    about: &'static str,
) -> FlagSpec {
    FlagSpec { long, short, value, about }
}

/// The kubectl-compatible flags every command takes ([`KubeArgs`]).
pub const GLOBAL_FLAGS: &[FlagSpec] = &[
    flag("kubeconfig", None, Some(Values::Files), "path to the kubeconfig file"),
    flag("context", None, Some(Values::Contexts), "the kubeconfig context to use"),
    flag("cluster", None, Some(Values::Nothing), "the kubeconfig cluster to use"),
    flag("user", None, Some(Values::Nothing), "the kubeconfig user to use"),
    flag("namespace", Some('n'), Some(Values::Namespaces), "namespace scope"),
    flag("all-namespaces", Some('A'), None, "every namespace"),
    flag("as", None, Some(Values::Nothing), "impersonate this user"),
    flag("as-group", None, Some(Values::Nothing), "impersonate this group"),
    flag("request-timeout", None, Some(Values::Nothing), "give up on a request after this long"),
    flag("istio-namespace", None, Some(Values::Namespaces), "where the Istio control plane lives"),
    flag("help", Some('h'), None, "show help"),
    flag("version", None, None, "show the version"),
];

pub const OUTPUT: FlagSpec =
    flag("output", Some('o'), Some(Values::Words(&["table", "json", "yaml"])), "output format");
pub const NO_HEADERS: FlagSpec = flag("no-headers", None, None, "tables without the header line");
pub const DRY_RUN: FlagSpec = flag("dry-run", None, None, "show what would change, change nothing");
pub const YES: FlagSpec = flag("yes", Some('y'), None, "do not ask for confirmation");
pub const TAKE_OWNERSHIP: FlagSpec = flag(
    "take-ownership",
    None,
    None,
    "change objects another manager (Helm, Sail, GitOps) owns, and take them out of its hands where that is safe",
);

/// The `completion` command every plugin has.
pub const COMPLETION: CommandSpec = CommandSpec {
    name: "completion",
    about: "print or install the kubectl completion shim",
    flags: &[
        flag("install", None, None, "write the shim next to the plugin"),
        flag("dir", None, Some(Values::Files), "where to write the shim"),
    ],
    usage: "[--install [--dir DIR]]",
    description: "Print the kubectl completion shim for this plugin, or install it (--install) into\n$KREW_ROOT/bin (default ~/.krew/bin) or --dir, so that kubectl completes its commands,\nflags, and live revisions, tags and namespaces.",
    exits: &[Exit::Ok, Exit::Failed, Exit::Usage],
    ..CommandSpec::BARE
};
