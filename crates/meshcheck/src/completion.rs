//! What `kubectl meshcheck` completes: its commands, their flags, and live revisions.

use meshkit::complete::{CommandSpec, FlagSpec, NO_HEADERS, OUTPUT, Spec, Values};

const TO_VERSION: FlagSpec =
    FlagSpec { long: "to-version", short: None, value: Some(Values::Nothing), about: "the Istio version (1.Y)" };
const FAIL_ON: FlagSpec = FlagSpec {
    long: "fail-on",
    short: None,
    value: Some(Values::Words(&["error", "warning"])),
    about: "the least severe finding that exits 1",
};
const WAIT: FlagSpec =
    FlagSpec { long: "wait", short: None, value: Some(Values::Nothing), about: "retry failing checks this long" };

pub const SPEC: Spec = Spec {
    plugin: "meshcheck",
    commands: &[
        CommandSpec {
            name: "precheck",
            aliases: &[],
            about: "before an upgrade",
            flags: &[
                TO_VERSION,
                FlagSpec {
                    long: "revision",
                    short: None,
                    value: Some(Values::Nothing),
                    about: "the revision name the canary will get",
                },
                FAIL_ON,
                WAIT,
                OUTPUT,
            ],
            args: Values::Nothing, ..CommandSpec::BARE },
        CommandSpec {
            name: "verify",
            aliases: &[],
            about: "after an upgrade",
            flags: &[
                FlagSpec {
                    long: "revision",
                    short: None,
                    value: Some(Values::Revisions),
                    about: "check this revision only",
                },
                FAIL_ON,
                WAIT,
                OUTPUT,
            ],
            args: Values::Nothing, ..CommandSpec::BARE },
        CommandSpec {
            name: "version",
            aliases: &[],
            about: "control- and data-plane versions per revision",
            flags: &[OUTPUT, NO_HEADERS],
            args: Values::Nothing, ..CommandSpec::BARE },
        CommandSpec {
            name: "manifest",
            aliases: &[],
            about: "review an upgrade manifest before applying it",
            flags: &[
                FlagSpec { long: "filename", short: Some('f'), value: Some(Values::Files), about: "a manifest" },
                TO_VERSION,
                FlagSpec { long: "offline", short: None, value: None, about: "skip the server-side dry run" },
                FAIL_ON,
                OUTPUT,
            ],
            args: Values::Files, ..CommandSpec::BARE },
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
