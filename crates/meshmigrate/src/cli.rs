//! Command line: the commands and flags declared in `spec.rs`, parsed by `meshkit::cli`, then run.

use std::ffi::OsString;

use meshkit::Result;
use meshkit::cli::Start;
use meshkit::cluster::block_on;
use meshkit::{Error, Exit};

use crate::explain::Subject;
use crate::gateway::GatewayArgs;
use crate::migrate::MigrateArgs;
use crate::restart_run::RestartArgs;
use crate::retire_run::RetireArgs;
use crate::spec::SPEC;
use crate::status::Scope;

/// Every command: its arguments read by its own module (before anything is sent), then run.
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    let m = match meshkit::cli::start(&SPEC, args)? {
        Start::Done(code) => return Ok(code),
        Start::Run(m) => m,
    };
    let (kube, output) = (&m.kube, m.output);
    match m.command.name {
        "status" => block_on(crate::status::run(kube, output, &Scope::from_matches(&m)?)),
        "namespace" => block_on(crate::migrate::run(kube, output, &MigrateArgs::for_move(&m)?)),
        "rollback" => block_on(crate::migrate::run(kube, output, &MigrateArgs::for_rollback(&m)?)),
        "restart" => block_on(crate::restart_run::run(kube, output, &RestartArgs::from_matches(&m)?)),
        "gateway" => block_on(crate::gateway::run(kube, output, &GatewayArgs::from_matches(&m)?)),
        "retire" => block_on(crate::retire_run::run(kube, output, &RetireArgs::from_matches(&m)?)),
        "explain" => block_on(crate::explain::run(kube, output, &Subject::from_matches(&m)?)),
        "log" => block_on(crate::relabel::log(kube, output)),
        other => Err(Error::usage(format!("unknown command {other:?}"), "see `kubectl meshmigrate --help`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(args: &[&str]) -> String {
        match run(args.iter().map(OsString::from)) {
            Err(err @ Error::Usage { .. }) => err.to_string(),
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    /// Wrong combinations fail before any request (no kubeconfig is needed to find out).
    #[test]
    fn flags_only_go_with_their_commands() {
        assert_eq!(
            usage(&["rollback", "a", "--to", "x"]),
            "flag --to does not apply to `kubectl meshmigrate rollback`"
        );
        assert_eq!(usage(&["status", "--restart"]), "flag --restart does not apply to `kubectl meshmigrate status`");
        assert_eq!(usage(&["frobnicate"]), "unknown command \"frobnicate\" for `kubectl meshmigrate`");
        assert_eq!(usage(&["restart", "--dry-run=maybe"]), "invalid --dry-run value \"maybe\"");
        assert_eq!(
            usage(&["namespace", "a", "-l", "x=y", "--to", "r"]),
            "name namespaces or pass -l SELECTOR, not both"
        );
        assert_eq!(
            usage(&["namespace", "--to", "r"]),
            "`kubectl meshmigrate namespace` needs at least one NAMESPACE or -l SELECTOR"
        );
        assert_eq!(usage(&["rollback"]), "`kubectl meshmigrate rollback` needs NAMESPACE… or --all (not both)");
        assert_eq!(
            usage(&["rollback", "a", "--all"]),
            "`kubectl meshmigrate rollback` needs NAMESPACE… or --all (not both)"
        );
        assert_eq!(usage(&["namespace", "a", "--to", "r", "--max-concurrent", "0"]), "invalid --max-concurrent \"0\"");
        assert_eq!(usage(&["gateway", "--to", "r"]), "`kubectl meshmigrate gateway` needs exactly one NAME");
        assert_eq!(usage(&["namespace", "a", "--to", "r", "--timeout", "soon"]), "invalid --timeout \"soon\"");
    }
}
