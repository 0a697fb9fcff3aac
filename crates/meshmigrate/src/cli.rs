//! Command line: global kubectl flags anywhere, then a command and its arguments.

use std::ffi::OsString;

use lexopt::{Parser, ValueExt};
use meshkit::args::{Flag, GLOBAL_FLAGS_HELP, next_arg};
use meshkit::cluster::Cluster;
use meshkit::render::{OUTPUT_FLAGS_HELP, OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};

use crate::migrate::{Goal, MigrateArgs};
use crate::scope::Selection;
use crate::status::{self, Scope};

const NAME: &str = "kubectl meshmigrate";

pub const HELP: &str = "\
Usage:
  kubectl meshmigrate <command> [flags]

Commands:
  namespace NS…|-l SELECTOR --to REV|TAG [--restart] [--wait] [--timeout D] [--max-concurrent N]
            [--dry-run] [--force] [--yes]
                    Move namespaces to a revision or tag: record their injection labels in the
                    journal, remove istio-injection, set istio.io/rev. -l (--selector) selects
                    namespaces by label. --restart rolls the Deployments, StatefulSets and DaemonSets whose pods
                    would be stale, at most N at a time (default 5); --wait follows the rollouts
                    (up to --timeout, default 10m) and then reports every pod without the sidecar
                    its namespace asks for, and why. System namespaces need --force. Restarting,
                    or selecting by label, asks first (--yes answers for scripts).
  rollback NS…|--all [--restart] [--wait] [--timeout D] [--max-concurrent N] [--dry-run] [--yes]
                    Restore the labels the last recorded move of each namespace replaced (--all:
                    every namespace with a move not yet rolled back); restart and wait as above.
  gateway NAME -n NS --to REV|TAG [--timeout D] [--dry-run]
                    Move an injected gateway Deployment to a revision or tag: record it, set its pod
                    template's istio.io/rev (which rolls it), follow the rollout, verify its pods.
                    Names the gateways that follow the default revision and move with it.
  retire REV [-f|--file FILE] [--dry-run] [--yes]
                    Delete an old revision's control plane, as istioctl's uninstall of one revision
                    does, once nothing uses it: refused while a tag, the default, a namespace, an injected
                    pod or a gateway still does. Everything it deletes is first written to a backup
                    archive (-f, default istio-retire-REV-TIME.tar.gz; `kubectl meshbackup restore`
                    puts it back); webhooks go first; CRDs and other revisions are left alone.
  restart [NS…] [--dry-run]
                    Restart only the workloads whose pods are stale (as `kubectl rollout restart`),
                    each recorded in the journal first. Without NS: every mesh namespace.
  log               The journal: every change, when, by whom, from what, to what.
  status [NS…|-A]   Per namespace: labels, intended revision (through tags and the default), pods per
                    injected revision and proxy version, stale pods, workloads needing a restart.
                    Without arguments: every namespace with an injection label or an injected pod.
  completion        Print or install the kubectl completion shim (kubectl_complete-meshmigrate).

Changes are made under a run lock (the Lease meshmigrate-lock in the Istio namespace): a second
run refuses and names the holder. Exit code 7: --wait stopped before every rollout finished; the
report names the unfinished workloads and rerunning the same command continues.

Examples:
  kubectl meshmigrate status
  kubectl meshmigrate status shop-canary shop-stable -o json
  kubectl meshmigrate namespace -l team=shop --to prod-canary --restart --wait --yes
  kubectl meshmigrate rollback shop-cart --restart --wait --yes
  -h, --help                   Show help
      --version                Show the version";

/// Flags of the mutating commands.
#[derive(Debug, Default)]
struct Flags {
    to: Option<String>,
    selector: Option<String>,
    dry_run: bool,
    force: bool,
    restart: bool,
    wait: bool,
    timeout: Option<std::time::Duration>,
    max_concurrent: Option<usize>,
    yes: bool,
    all: bool,
    file: Option<std::path::PathBuf>,
}

/// Default `--timeout` for `--wait` (and for the waves of a bounded `--restart`).
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
const DEFAULT_MAX_CONCURRENT: usize = 5;

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(done) = meshkit::complete::dispatch(&crate::completion::SPEC, &args) {
        return done;
    }
    let mut parser = Parser::from_args(args);
    let mut kube = meshkit::args::KubeArgs::default();
    let mut output = OutputArgs::default();
    let mut words: Vec<String> = Vec::new();
    let mut flags = Flags::default();
    while let Some(arg) = next_arg(&mut parser, NAME)? {
        if kube.consume(&arg, &mut parser)? || output.consume(&arg, &mut parser)? {
            continue;
        }
        match arg {
            Flag::Short('h') => words.insert(0, "help".into()),
            Flag::Long(name) if name == "help" => words.insert(0, "help".into()),
            Flag::Long(name) if name == "to" => {
                flags.to = Some(meshkit::args::name_value(&mut parser, "--to", "revision or tag")?)
            }
            Flag::Short('l') => flags.selector = Some(meshkit::args::selector_value(&mut parser, "-l")?),
            Flag::Long(name) if name == "selector" => {
                flags.selector = Some(meshkit::args::selector_value(&mut parser, "--selector")?)
            }
            Flag::Long(name) if name == "dry-run" => flags.dry_run = true,
            Flag::Long(name) if name == "force" => flags.force = true,
            Flag::Long(name) if name == "restart" => flags.restart = true,
            Flag::Long(name) if name == "wait" => flags.wait = true,
            Flag::Long(name) if name == "yes" => flags.yes = true,
            Flag::Short('y') => flags.yes = true,
            Flag::Long(name) if name == "all" => flags.all = true,
            Flag::Short('f') => flags.file = Some(meshkit::args::value(&mut parser, "-f")?.into()),
            Flag::Long(name) if name == "file" => {
                flags.file = Some(meshkit::args::value(&mut parser, "--file")?.into())
            }
            Flag::Long(name) if name == "timeout" => {
                let raw = meshkit::args::value(&mut parser, "--timeout")?;
                // 0: no deadline (a century).
                let none = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
                flags.timeout = Some(meshkit::args::parse_duration("--timeout", &raw)?.unwrap_or(none));
            }
            Flag::Long(name) if name == "max-concurrent" => {
                let raw = meshkit::args::value(&mut parser, "--max-concurrent")?;
                match raw.parse::<usize>() {
                    Ok(n) if n > 0 => flags.max_concurrent = Some(n),
                    _ => {
                        return Err(Error::usage(format!("invalid --max-concurrent {raw:?}"), "a whole number from 1"));
                    }
                }
            }
            Flag::Long(name) if name == "version" => {
                meshkit::render::print_text(&format!("kubectl-meshmigrate {}\n", env!("CARGO_PKG_VERSION")));
                return Ok(Exit::Ok);
            }
            Flag::Value(v) => words.push(v.string().map_err(|_| Error::usage("arguments must be valid UTF-8", ""))?),
            other => return Err(other.unexpected(NAME)),
        }
    }
    let command = words.first().map(String::as_str);
    check_flags(command.unwrap_or("help"), &flags)?;
    match command {
        None | Some("help") => {
            let about = meshkit::catalogue::about("meshmigrate");
            meshkit::render::print_text(&format!("{about}.\n\n{HELP}\n\n{OUTPUT_FLAGS_HELP}\n\n{GLOBAL_FLAGS_HELP}\n"));
            Ok(Exit::Ok)
        }
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
            meshkit::cluster::block_on(async {
                let cluster = Cluster::connect(&kube).await?;
                let snapshot = status::fetch(&cluster, &scope).await?;
                let (restarts, bare) = crate::restart::plan(&status::decide(&snapshot, &scope));
                for pod in &bare {
                    eprintln!("kubectl-meshmigrate: warning: {pod} is stale and has no controller to restart it");
                }
                if !flags.dry_run && !restarts.is_empty() {
                    let user = crate::relabel::whoami(&cluster).await;
                    let lock = crate::lock::acquire(&cluster, &user).await?;
                    let restarted = crate::restart::apply(&cluster, &user, &restarts).await;
                    let released = lock.release().await;
                    restarted?;
                    released?;
                }
                Renderer::new(output).print(&restarts, || crate::restart::table(&restarts, flags.dry_run))?;
                Ok(Exit::Ok)
            })
        }
        Some("status") => {
            let names = words[1..].to_vec();
            if kube.all_namespaces && !names.is_empty() {
                return Err(Error::usage("name namespaces or pass -A, not both", format!("see `{NAME} --help`")));
            }
            let scope = if names.is_empty() { Scope::All } else { Scope::Named(names) };
            meshkit::cluster::block_on(async {
                let cluster = Cluster::connect(&kube).await?;
                let snapshot = status::fetch(&cluster, &scope).await?;
                let rows = status::decide(&snapshot, &scope);
                Renderer::new(output).print(&rows, || status::table(&rows))?;
                Ok(Exit::Ok)
            })
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
            let timeout = flags.timeout.unwrap_or(DEFAULT_TIMEOUT);
            meshkit::cluster::block_on(crate::gateway::run(&kube, output, name, &target, timeout, flags.dry_run))
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
            let args = crate::retire::RetireArgs {
                revision: revision.clone(),
                file: flags.file,
                dry_run: flags.dry_run,
                yes: flags.yes,
            };
            meshkit::cluster::block_on(crate::retire::run(&kube, output, &args))
        }
        Some("log") => meshkit::cluster::block_on(async {
            let cluster = Cluster::connect(&kube).await?;
            let journal = crate::journal::Journal::read(&cluster).await?;
            Renderer::new(output).print(&journal.entries, || crate::relabel::log_table(&journal))?;
            Ok(Exit::Ok)
        }),
        Some(other) => Err(Error::usage(
            format!("unknown command {other:?} for \"{NAME}\""),
            "available commands: namespace, rollback, gateway, retire, restart, log, status; see `kubectl meshmigrate --help`",
        )),
    }
}

/// Flags only some commands take: anything else is a usage error, before any request.
fn check_flags(command: &str, flags: &Flags) -> Result<()> {
    let given: Vec<(&str, bool)> = vec![
        ("--to", flags.to.is_some()),
        ("-l", flags.selector.is_some()),
        ("--restart", flags.restart),
        ("--wait", flags.wait),
        ("--timeout", flags.timeout.is_some()),
        ("--max-concurrent", flags.max_concurrent.is_some()),
        ("--yes", flags.yes),
        ("--force", flags.force),
        ("--all", flags.all),
        ("--dry-run", flags.dry_run),
        ("-f", flags.file.is_some()),
    ];
    let rolling = ["--restart", "--wait", "--timeout", "--max-concurrent", "--yes", "--dry-run"];
    let allowed: Vec<&str> = match command {
        "help" => return Ok(()),
        "namespace" => ["--to", "-l", "--force"].into_iter().chain(rolling).collect(),
        "rollback" => ["--all"].into_iter().chain(rolling).collect(),
        "restart" => vec!["--dry-run"],
        "gateway" => vec!["--to", "--timeout", "--dry-run"],
        "retire" => vec!["-f", "--dry-run", "--yes"],
        _ => vec![],
    };
    match given.iter().find(|(flag, set)| *set && !allowed.contains(flag)) {
        Some((flag, _)) => {
            Err(Error::usage(format!("{flag} does not go with `{command}`"), format!("see `{NAME} --help`")))
        }
        None => Ok(()),
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
        assert_eq!(usage(&["rollback", "a", "--to", "x"]), "--to does not go with `rollback`");
        assert_eq!(usage(&["status", "--restart"]), "--restart does not go with `status`");
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
