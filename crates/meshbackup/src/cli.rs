//! Command line: global kubectl flags anywhere, then a command and its arguments.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use lexopt::{Parser, ValueExt};
use meshkit::args::{Flag, GLOBAL_FLAGS_HELP, KubeArgs, next_arg, value};
use meshkit::cluster::block_on;
use meshkit::render::{OUTPUT_FLAGS_HELP, OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};

const NAME: &str = "kubectl meshbackup";
const PROGRAM: &str = "kubectl-meshbackup";

pub const HELP: &str = "\
Usage:
  kubectl meshbackup <command> [flags]

Commands:
  create [-f FILE] [--include-secrets] [--force]
                    Write one archive (tar.gz) of Istio's CRDs, every Istio and Gateway API custom
                    resource in every namespace, the control plane in the Istio namespace, the
                    webhooks, ClusterRoles and bindings of the install, and the injection labels of
                    namespaces; stripped of server-managed fields. Secrets of the Istio namespace
                    only with --include-secrets. Never replaces a file without --force.
  inspect FILE      What the archive holds per kind, namespace and revision; verifies every checksum.
  diff FILE         The live cluster against the archive: added, removed and changed objects with
                    unified YAML diffs. Exit 0: no differences, 1: differences, above 1: error.
  restore FILE [--dry-run=server] [--only KIND,…] [-n NS] [--force-conflicts] [--yes]
                    Verify the whole archive, then server-side apply (field manager meshbackup):
                    CRDs (waiting until Established), namespaces, configuration and RBAC, the
                    control plane, custom resources, webhooks last. Reports each object as
                    created, updated, unchanged or failed. Safe to rerun.
  completion        Print or install the kubectl completion shim (kubectl_complete-meshbackup).

Flags:
  -f, --file FILE              create: where to write (default: istio-backup-CONTEXT-TIME.tar.gz)
      --include-secrets        create: also back up the Secrets of the Istio namespace (the CA included)
      --force                  create: replace an existing file
      --dry-run[=server]       restore: let the apiserver check every object; nothing is persisted
      --only KIND[,KIND…]      restore: only these kinds (Kind, kind.group or plural; repeatable)
  -n, --namespace NS           restore: only objects in NS, and NS itself
      --force-conflicts        restore: take over fields that others changed since the backup
      --yes                    restore: do not ask for confirmation
  -h, --help                   Show help
      --version                Show the version

Examples:
  kubectl meshbackup create -f before-upgrade.tar.gz --include-secrets
  kubectl meshbackup inspect before-upgrade.tar.gz
  kubectl meshbackup diff before-upgrade.tar.gz
  kubectl meshbackup restore before-upgrade.tar.gz --only VirtualService,DestinationRule --dry-run=server";

/// Prints an error with its hint on stderr; its exit code.
pub fn report(err: &Error) -> ExitCode {
    meshkit::error::report(PROGRAM, err)
}

#[derive(Default)]
struct Flags {
    file: Option<PathBuf>,
    include_secrets: bool,
    force: bool,
    dry_run: bool,
    only: Vec<String>,
    force_conflicts: bool,
    yes: bool,
}

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(done) = meshkit::complete::dispatch(&crate::completion::SPEC, &args) {
        return done;
    }
    let mut parser = Parser::from_args(args);
    let mut kube = KubeArgs::default();
    let mut output = OutputArgs::default();
    let mut words: Vec<String> = Vec::new();
    let mut flags = Flags::default();
    while let Some(arg) = next_arg(&mut parser, NAME)? {
        if kube.consume(&arg, &mut parser)? || output.consume(&arg, &mut parser)? {
            continue;
        }
        match arg {
            Flag::Short('h') => words.insert(0, "help".into()),
            Flag::Long(name) => match name.as_str() {
                "help" => words.insert(0, "help".into()),
                "file" => flags.file = Some(value(&mut parser, "--file")?.into()),
                "include-secrets" => flags.include_secrets = true,
                "force" => flags.force = true,
                "force-conflicts" => flags.force_conflicts = true,
                "yes" => flags.yes = true,
                "only" => flags.only.push(value(&mut parser, "--only")?),
                "dry-run" => {
                    let mode = parser.optional_value().map(|v| v.string()).transpose().ok().flatten();
                    match mode.as_deref() {
                        None | Some("server") => flags.dry_run = true,
                        Some(other) => {
                            return Err(Error::usage(
                                format!("--dry-run={other} is not supported"),
                                "only --dry-run=server: the apiserver checks every object",
                            ));
                        }
                    }
                }
                "version" => {
                    meshkit::render::print_text(&format!("{PROGRAM} {}\n", env!("CARGO_PKG_VERSION")));
                    return Ok(Exit::Ok);
                }
                _ => return Err(Flag::Long(name).unexpected(NAME)),
            },
            Flag::Short('f') => flags.file = Some(value(&mut parser, "-f")?.into()),
            Flag::Value(v) => words.push(v.string().map_err(|_| Error::usage("arguments must be valid UTF-8", ""))?),
            other => return Err(other.unexpected(NAME)),
        }
    }
    let renderer = Renderer::new(output);
    let command = words.first().cloned();
    let file_argument = |command: &str| -> Result<PathBuf> {
        match &words[1..] {
            [file] => Ok(PathBuf::from(file)),
            [] => Err(Error::usage(format!("`{NAME} {command}` needs a FILE"), format!("see `{NAME} --help`"))),
            [_, extra, ..] => {
                Err(Error::usage(format!("unexpected argument {extra:?}"), format!("see `{NAME} --help`")))
            }
        }
    };
    let misplaced = |allowed: &[&str], command: &str| -> Result<()> {
        let given = [
            ("--file", flags.file.is_some()),
            ("--include-secrets", flags.include_secrets),
            ("--force", flags.force),
            ("--dry-run", flags.dry_run),
            ("--only", !flags.only.is_empty()),
            ("--force-conflicts", flags.force_conflicts),
            ("--yes", flags.yes),
            ("--namespace", kube.namespace.is_some()),
        ];
        match given.iter().find(|(flag, set)| *set && !allowed.contains(flag)) {
            Some((flag, _)) => {
                Err(Error::usage(format!("{flag} does not apply to `{command}`"), format!("see `{NAME} --help`")))
            }
            None => Ok(()),
        }
    };
    match command.as_deref() {
        None | Some("help") => {
            let about = meshkit::catalogue::about("meshbackup");
            meshkit::render::print_text(&format!("{about}.\n\n{HELP}\n\n{OUTPUT_FLAGS_HELP}\n\n{GLOBAL_FLAGS_HELP}\n"));
            Ok(Exit::Ok)
        }
        Some("create") => {
            misplaced(&["--file", "--include-secrets", "--force"], "create")?;
            if let Some(extra) = words.get(1) {
                return Err(Error::usage(format!("unexpected argument {extra:?}"), "write the file with -f FILE"));
            }
            let options =
                crate::create::Options { file: flags.file, include_secrets: flags.include_secrets, force: flags.force };
            block_on(crate::create::run(&kube, options, &renderer))
        }
        Some("inspect") => {
            misplaced(&[], "inspect")?;
            crate::inspect::run(&file_argument("inspect")?, &renderer)
        }
        Some("diff") => {
            misplaced(&[], "diff")?;
            let file = file_argument("diff")?;
            // kubectl diff's codes: 1 means differences only, so an error that exits 1 elsewhere (a
            // failed request) exits 3 here.
            match block_on(crate::diff::run(&kube, &file, &renderer)) {
                Err(err) if err.exit() == Exit::Failed => {
                    report(&err);
                    Ok(Exit::Unreachable)
                }
                other => other,
            }
        }
        Some("restore") => {
            misplaced(&["--dry-run", "--only", "--force-conflicts", "--yes", "--namespace"], "restore")?;
            let file = file_argument("restore")?;
            let options = crate::restore::Options {
                only: flags.only,
                dry_run: flags.dry_run,
                force_conflicts: flags.force_conflicts,
                yes: flags.yes,
            };
            block_on(crate::restore::run(&kube, &file, options, &renderer))
        }
        Some(other) => Err(Error::usage(
            format!("unknown command {other:?} for \"{NAME}\""),
            format!("available commands: create, inspect, diff, restore; see `{NAME} --help`"),
        )),
    }
}
