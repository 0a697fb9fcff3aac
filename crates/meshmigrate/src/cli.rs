//! Command line: global kubectl flags anywhere, then a command and its arguments.

use std::ffi::OsString;

use lexopt::{Parser, ValueExt};
use meshkit::args::{Flag, GLOBAL_FLAGS_HELP, next_arg};
use meshkit::cluster::Cluster;
use meshkit::render::{OUTPUT_FLAGS_HELP, OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};

use crate::status::{self, Scope};

const NAME: &str = "kubectl meshmigrate";

pub const HELP: &str = "\
Usage:
  kubectl meshmigrate <command> [flags]

Commands:
  namespace NS… --to REV|TAG [--dry-run] [--force]
                    Move namespaces to a revision or tag: record their injection labels in the
                    journal, remove istio-injection, set istio.io/rev. Pods change on restart.
  rollback NS… [--dry-run]
                    Restore the labels the last recorded move of each namespace replaced.
  restart [NS…] [--dry-run]
                    Restart only the workloads whose pods are stale (as `kubectl rollout restart`),
                    each recorded in the journal first. Without NS: every mesh namespace.
  log               The journal: every change, when, by whom, from what, to what.
  status [NS…|-A]   Per namespace: labels, intended revision (through tags and the default), pods per
                    injected revision and proxy version, stale pods, workloads needing a restart.
                    Without arguments: every namespace with an injection label or an injected pod.
  completion        Print or install the kubectl completion shim (kubectl_complete-meshmigrate).

Examples:
  kubectl meshmigrate status
  kubectl meshmigrate status shop-canary shop-stable -o json
  -h, --help                   Show help
      --version                Show the version";

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(done) = meshkit::complete::dispatch(&crate::completion::SPEC, &args) {
        return done;
    }
    let mut parser = Parser::from_args(args);
    let mut kube = meshkit::args::KubeArgs::default();
    let mut output = OutputArgs::default();
    let mut words: Vec<String> = Vec::new();
    let (mut to, mut dry_run, mut force) = (None, false, false);
    while let Some(arg) = next_arg(&mut parser, NAME)? {
        if kube.consume(&arg, &mut parser)? || output.consume(&arg, &mut parser)? {
            continue;
        }
        match arg {
            Flag::Short('h') => words.insert(0, "help".into()),
            Flag::Long(name) if name == "help" => words.insert(0, "help".into()),
            Flag::Long(name) if name == "to" => to = Some(meshkit::args::value(&mut parser, "--to")?),
            Flag::Long(name) if name == "dry-run" => dry_run = true,
            Flag::Long(name) if name == "force" => force = true,
            Flag::Long(name) if name == "version" => {
                println!("kubectl-meshmigrate {}", env!("CARGO_PKG_VERSION"));
                return Ok(Exit::Ok);
            }
            Flag::Value(v) => words.push(v.string().map_err(|_| Error::usage("arguments must be valid UTF-8", ""))?),
            other => return Err(other.unexpected(NAME)),
        }
    }
    match words.first().map(String::as_str) {
        None | Some("help") => {
            let about = meshkit::catalogue::about("meshmigrate");
            println!("{about}.\n\n{HELP}\n\n{OUTPUT_FLAGS_HELP}\n\n{GLOBAL_FLAGS_HELP}");
            Ok(Exit::Ok)
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
                if !dry_run && !restarts.is_empty() {
                    crate::restart::apply(&cluster, &restarts).await?;
                }
                Renderer::new(output).print(&restarts, || crate::restart::table(&restarts, dry_run))?;
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
        Some(command @ ("namespace" | "rollback" | "log")) => {
            let names = words[1..].to_vec();
            match command {
                "log" => meshkit::cluster::block_on(async {
                    let cluster = Cluster::connect(&kube).await?;
                    let journal = crate::journal::Journal::read(&cluster).await?;
                    Renderer::new(output).print(&journal.entries, || crate::relabel::log_table(&journal))?;
                    Ok(Exit::Ok)
                }),
                _ => {
                    if names.is_empty() {
                        return Err(Error::usage(
                            format!("`{NAME} {command}` needs at least one NAMESPACE"),
                            format!("see `{NAME} --help`"),
                        ));
                    }
                    let target = match (command, to) {
                        ("namespace", Some(target)) => Some(target),
                        ("namespace", None) => {
                            return Err(Error::usage(
                                format!("`{NAME} namespace` needs --to REV|TAG"),
                                "e.g. --to prod-canary",
                            ));
                        }
                        (_, Some(_)) => {
                            return Err(Error::usage("--to goes with `namespace`", format!("see `{NAME} --help`")));
                        }
                        (_, None) => None,
                    };
                    meshkit::cluster::block_on(crate::commands::relabel(
                        &kube,
                        output,
                        &names,
                        target.as_deref(),
                        dry_run,
                        force,
                    ))
                }
            }
        }
        Some(other) => Err(Error::usage(
            format!("unknown command {other:?} for \"{NAME}\""),
            "available commands: namespace, rollback, restart, log, status; see `kubectl meshmigrate --help`",
        )),
    }
}
