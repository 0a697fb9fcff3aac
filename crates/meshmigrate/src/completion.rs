//! What `kubectl meshmigrate` completes: its commands, their flags, and live namespaces,
//! revisions and tags.

use meshkit::complete::{CommandSpec, DRY_RUN, FlagSpec, NO_HEADERS, OUTPUT, Spec, Values, YES};

const FORCE: FlagSpec = FlagSpec { long: "force", short: None, value: None, about: "allow system namespaces" };
const TO: FlagSpec =
    FlagSpec { long: "to", short: None, value: Some(Values::RevisionsOrTags), about: "the target revision or tag" };
const RESTART: FlagSpec =
    FlagSpec { long: "restart", short: None, value: None, about: "roll the workloads whose pods are stale" };
const WAIT: FlagSpec = FlagSpec { long: "wait", short: None, value: None, about: "follow the rollouts, then verify" };
const TIMEOUT: FlagSpec =
    FlagSpec { long: "timeout", short: None, value: Some(Values::Nothing), about: "how long --wait waits" };
const MAX_CONCURRENT: FlagSpec =
    FlagSpec { long: "max-concurrent", short: None, value: Some(Values::Nothing), about: "rollouts at a time" };

pub const SPEC: Spec = Spec {
    plugin: "meshmigrate",
    commands: &[
        CommandSpec {
            name: "namespace",
            aliases: &[],
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
            args: Values::Namespaces, ..CommandSpec::BARE },
        CommandSpec {
            name: "rollback",
            aliases: &[],
            about: "restore the labels the last move replaced",
            flags: &[
                FlagSpec { long: "all", short: None, value: None, about: "every namespace with a move" },
                RESTART,
                WAIT,
                TIMEOUT,
                MAX_CONCURRENT,
                DRY_RUN,
                YES,
                OUTPUT,
            ],
            args: Values::Namespaces, ..CommandSpec::BARE },
        CommandSpec {
            name: "gateway",
            aliases: &[],
            about: "move an injected gateway to a revision or tag",
            flags: &[TO, TIMEOUT, DRY_RUN, OUTPUT],
            args: Values::Nothing, ..CommandSpec::BARE },
        CommandSpec {
            name: "retire",
            aliases: &[],
            about: "back up and delete a revision nothing uses",
            flags: &[
                FlagSpec { long: "file", short: Some('f'), value: Some(Values::Files), about: "where the backup goes" },
                DRY_RUN,
                YES,
                OUTPUT,
            ],
            args: Values::Revisions, ..CommandSpec::BARE },
        CommandSpec {
            name: "restart",
            aliases: &[],
            about: "restart only workloads with stale pods",
            flags: &[DRY_RUN, OUTPUT],
            args: Values::Namespaces, ..CommandSpec::BARE },
        CommandSpec {
            name: "log",
            aliases: &[],
            about: "the journal",
            flags: &[OUTPUT, NO_HEADERS],
            args: Values::Nothing, ..CommandSpec::BARE },
        CommandSpec {
            name: "status",
            aliases: &[],
            about: "per namespace: intent, injected revisions, stale pods",
            flags: &[OUTPUT, NO_HEADERS],
            args: Values::Namespaces, ..CommandSpec::BARE },
        meshkit::complete::COMPLETION,
    ],
};

#[cfg(test)]
mod tests {
    #[test]
    fn every_flag_in_the_help_is_completed_and_the_reverse() {
        assert_eq!(meshkit::complete::unlisted_flags(&super::SPEC, crate::cli::HELP), (vec![], vec![]));
    }
}
