//! What `kubectl revtag` completes: its commands, their flags, and live revisions and tags.

use meshkit::complete::{CommandSpec, DRY_RUN, FlagSpec, NO_HEADERS, OUTPUT, Spec, Values, YES};

const REVISION: FlagSpec = FlagSpec {
    long: "revision",
    short: Some('r'),
    value: Some(Values::Revisions),
    about: "the revision the tag points at",
};
const OVERWRITE: FlagSpec = FlagSpec { long: "overwrite", short: None, value: None, about: "move an existing tag" };
const AUTO_INJECT: FlagSpec = FlagSpec {
    long: "auto-inject-namespaces",
    short: None,
    value: None,
    about: "also inject pods in unlabelled namespaces",
};

pub const SPEC: Spec = Spec {
    plugin: "revtag",
    commands: &[
        CommandSpec {
            name: "list",
            aliases: &["ls", "show"],
            about: "tags, their revisions and versions, and who uses them",
            flags: &[OUTPUT, NO_HEADERS],
            args: Values::Nothing,
        },
        CommandSpec {
            name: "revisions",
            aliases: &["revision"],
            about: "every installed revision side by side",
            flags: &[OUTPUT, NO_HEADERS],
            args: Values::Revisions,
        },
        CommandSpec {
            name: "set",
            aliases: &[],
            about: "create a tag or point it at another revision",
            flags: &[REVISION, OVERWRITE, YES, DRY_RUN, AUTO_INJECT, OUTPUT],
            args: Values::Tags,
        },
        CommandSpec {
            name: "remove",
            aliases: &["rm", "delete"],
            about: "remove a tag",
            flags: &[
                YES,
                DRY_RUN,
                FlagSpec { long: "ignore-not-found", short: None, value: None, about: "succeed if the tag is gone" },
                OUTPUT,
            ],
            args: Values::Tags,
        },
        CommandSpec {
            name: "generate",
            aliases: &[],
            about: "print a tag's manifests without changing anything",
            flags: &[REVISION, OVERWRITE, AUTO_INJECT, OUTPUT],
            args: Values::Tags,
        },
        meshkit::complete::COMPLETION,
    ],
};

#[cfg(test)]
mod tests {
    #[test]
    fn every_flag_in_the_help_is_completed_and_the_reverse() {
        let help = crate::cli::all_help();
        assert_eq!(meshkit::complete::unlisted_flags(&super::SPEC, &help), (vec![], vec![]));
    }
}
