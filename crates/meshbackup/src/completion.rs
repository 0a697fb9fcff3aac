//! What `kubectl meshbackup` completes: its commands, their flags, archive files and namespaces.

use meshkit::complete::{CommandSpec, DRY_RUN, FlagSpec, NO_HEADERS, OUTPUT, Spec, Values, YES};

const FILE: FlagSpec =
    FlagSpec { long: "file", short: Some('f'), value: Some(Values::Files), about: "the archive to write" };

pub const SPEC: Spec = Spec {
    plugin: "meshbackup",
    commands: &[
        CommandSpec {
            name: "create",
            aliases: &[],
            about: "write one archive of the Istio installation",
            flags: &[
                FILE,
                FlagSpec { long: "include-secrets", short: None, value: None, about: "the CA and other Secrets too" },
                FlagSpec { long: "force", short: None, value: None, about: "replace an existing file" },
                OUTPUT,
            ],
            args: Values::Nothing, ..CommandSpec::BARE },
        CommandSpec {
            name: "inspect",
            aliases: &[],
            about: "what an archive holds; verifies every checksum",
            flags: &[OUTPUT, NO_HEADERS],
            args: Values::Files, ..CommandSpec::BARE },
        CommandSpec {
            name: "diff",
            aliases: &[],
            about: "the live cluster against an archive",
            flags: &[OUTPUT],
            args: Values::Files, ..CommandSpec::BARE },
        CommandSpec {
            name: "restore",
            aliases: &[],
            about: "server-side apply an archive in a safe order",
            flags: &[
                DRY_RUN,
                FlagSpec { long: "only", short: None, value: Some(Values::Nothing), about: "only these kinds" },
                FlagSpec {
                    long: "force-conflicts",
                    short: None,
                    value: None,
                    about: "take over fields others changed",
                },
                YES,
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
