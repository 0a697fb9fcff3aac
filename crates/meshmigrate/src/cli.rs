//! Command line: the commands and flags declared in `spec.rs`, parsed by `meshkit::cli`, then run.

use std::ffi::OsString;

use meshkit::cli::{DryRun, Matches};
use meshkit::{Error, Exit, Result};

use crate::migrate::{Goal, MigrateArgs};
use crate::scope::Selection;
use crate::spec::SPEC;
use crate::status::{self, Scope};

const NAME: &str = "kubectl meshmigrate";

/// Default `--timeout` for `--wait` (and for the waves of a bounded `--restart`).
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
const DEFAULT_MAX_CONCURRENT: usize = 5;

/// The flags the mutating commands share, typed.
struct Flags {
    to: Option<String>,
    selector: Option<String>,
    dry_run: DryRun,
    force: bool,
    restart: bool,
    wait: bool,
    timeout: Option<std::time::Duration>,
    max_concurrent: Option<usize>,
    yes: bool,
    all: bool,
    file: Option<std::path::PathBuf>,
    take_ownership: bool,
}

impl Flags {
    fn read(m: &Matches) -> Result<Flags> {
        let to = m.value("to").map(str::to_string);
        if let Some(to) = &to {
            meshkit::istio::names::validate("revision or tag", to)?;
        }
        let selector = m.value("selector").map(str::to_string);
        if let Some(selector) = &selector {
            meshkit::args::check_selector(selector)?;
        }
        let dry_run = m.dry_run()?;
        let timeout = match m.value("timeout") {
            // 0: no deadline (a century).
            Some(raw) => Some(
                meshkit::args::parse_duration("--timeout", raw)?
                    .unwrap_or(std::time::Duration::from_secs(100 * 365 * 24 * 3600)),
            ),
            None => None,
        };
        let max_concurrent = match m.value("max-concurrent") {
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(Error::usage(format!("invalid --max-concurrent {raw:?}"), "a whole number from 1")),
            },
            None => None,
        };
        Ok(Flags {
            to,
            selector,
            dry_run,
            force: m.has("force"),
            restart: m.has("restart"),
            wait: m.has("wait"),
            timeout,
            max_concurrent,
            yes: m.has("yes"),
            take_ownership: m.has("take-ownership"),
            all: m.has("all"),
            file: m.value("file").map(std::path::PathBuf::from),
        })
    }
}

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    let m = match meshkit::cli::start(&SPEC, args)? {
        meshkit::cli::Start::Done(code) => return Ok(code),
        meshkit::cli::Start::Run(m) => m,
    };
    let m = *m;
    let flags = Flags::read(&m)?;
    let mut words = vec![m.command.name.to_string()];
    words.extend(m.args.iter().cloned());
    let Matches { kube, output, .. } = m;
    let command = Some(words[0].as_str());
    match command {
        Some("namespace") => {
            let names = words[1..].to_vec();
            let selection = match (names.is_empty(), flags.selector) {
                (false, None) => Selection::Named(names),
                (true, Some(selector)) => Selection::Selector(selector),
                (false, Some(_)) => {
                    return Err(Error::usage(
                        "name namespaces or pass -l SELECTOR, not both",
                        format!("see `{NAME} --help`"),
                    ));
                }
                (true, None) => {
                    return Err(Error::usage(
                        format!("`{NAME} namespace` needs at least one NAMESPACE or -l SELECTOR"),
                        format!("see `{NAME} --help`"),
                    ));
                }
            };
            let Some(target) = flags.to else {
                return Err(Error::usage(format!("`{NAME} namespace` needs --to REV|TAG"), "e.g. --to prod-canary"));
            };
            let args = MigrateArgs {
                goal: Goal::Move { selection, target },
                restart: flags.restart,
                wait: flags.wait,
                timeout: flags.timeout.unwrap_or(DEFAULT_TIMEOUT),
                max_concurrent: flags.max_concurrent.unwrap_or(DEFAULT_MAX_CONCURRENT),
                dry_run: flags.dry_run,
                force: flags.force,
                yes: flags.yes,
            };
            meshkit::cluster::block_on(crate::migrate::run(&kube, output, &args))
        }
        Some("rollback") => {
            let names = words[1..].to_vec();
            if names.is_empty() != flags.all {
                return Err(Error::usage(
                    format!("`{NAME} rollback` needs NAMESPACE… or --all (not both)"),
                    format!("see `{NAME} --help`"),
                ));
            }
            let args = MigrateArgs {
                goal: Goal::Rollback { names },
                restart: flags.restart,
                wait: flags.wait,
                timeout: flags.timeout.unwrap_or(DEFAULT_TIMEOUT),
                max_concurrent: flags.max_concurrent.unwrap_or(DEFAULT_MAX_CONCURRENT),
                dry_run: flags.dry_run,
                force: false,
                yes: flags.yes,
            };
            meshkit::cluster::block_on(crate::migrate::run(&kube, output, &args))
        }
        Some("restart") => {
            let names = words[1..].to_vec();
            let scope = if names.is_empty() { Scope::All } else { Scope::Named(names) };
            let args = crate::restart_run::RestartArgs {
                scope,
                dry_run: flags.dry_run,
                wait: flags.wait,
                timeout: flags.timeout.unwrap_or(DEFAULT_TIMEOUT),
                max_concurrent: flags.max_concurrent.unwrap_or(DEFAULT_MAX_CONCURRENT),
            };
            meshkit::cluster::block_on(crate::restart_run::run(&kube, output, &args))
        }
        Some("status") => {
            let names = words[1..].to_vec();
            if kube.all_namespaces && !names.is_empty() {
                return Err(Error::usage("name namespaces or pass -A, not both", format!("see `{NAME} --help`")));
            }
            let scope = if names.is_empty() { Scope::All } else { Scope::Named(names) };
            meshkit::cluster::block_on(status::run(&kube, output, &scope))
        }
        Some("gateway") => {
            let [_, name] = words.as_slice() else {
                return Err(Error::usage(
                    format!("`{NAME} gateway` needs exactly one NAME"),
                    format!("see `{NAME} --help`"),
                ));
            };
            let Some(target) = flags.to else {
                return Err(Error::usage(format!("`{NAME} gateway` needs --to REV|TAG"), "e.g. --to prod-canary"));
            };
            let args = crate::gateway::GatewayArgs {
                name: name.clone(),
                target,
                timeout: flags.timeout.unwrap_or(DEFAULT_TIMEOUT),
                dry_run: flags.dry_run,
                take_ownership: flags.take_ownership,
            };
            meshkit::cluster::block_on(crate::gateway::run(&kube, output, &args))
        }
        Some("retire") => {
            let [_, revision] = words.as_slice() else {
                return Err(Error::usage(
                    format!("`{NAME} retire` needs exactly one REVISION"),
                    format!("see `{NAME} --help`"),
                ));
            };
            meshkit::istio::names::validate("revision", revision)?;
            if let Some(file) = &flags.file {
                meshkit::args::check_output_path(file, false)?;
            }
            let args = crate::retire_run::RetireArgs {
                revision: revision.clone(),
                file: flags.file,
                dry_run: flags.dry_run,
                yes: flags.yes,
            };
            meshkit::cluster::block_on(crate::retire_run::run(&kube, output, &args))
        }
        Some("explain") => {
            let [_, word] = words.as_slice() else {
                return Err(Error::usage(
                    format!("`{NAME} explain` needs one POD (with -n) or NAMESPACE"),
                    format!("see `{NAME} explain --help`"),
                ));
            };
            let subject = crate::explain::Subject::parse(word, kube.namespace.as_deref())?;
            meshkit::cluster::block_on(crate::explain::run(&kube, output, &subject))
        }
        Some("log") => meshkit::cluster::block_on(crate::relabel::log(&kube, output)),
        _ => unreachable!("meshkit::cli parses only the commands in the spec"),
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
