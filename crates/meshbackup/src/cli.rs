//! Command line: global kubectl flags anywhere, then a command and its arguments.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use meshkit::cluster::block_on;
use meshkit::render::Renderer;
use meshkit::{Error, Exit, Result};

use crate::spec::SPEC;

const NAME: &str = "kubectl meshbackup";
const PROGRAM: &str = "kubectl-meshbackup";

/// Prints an error with its hint on stderr; its exit code.
pub fn report(err: &Error) -> ExitCode {
    meshkit::error::report(PROGRAM, err)
}

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    let m = match meshkit::cli::start(&SPEC, args)? {
        meshkit::cli::Start::Done(code) => return Ok(code),
        meshkit::cli::Start::Run(m) => m,
    };
    let m = *m;
    let renderer = Renderer::new(m.output);
    let file_argument = || m.one_arg("a FILE").map(PathBuf::from);
    if m.kube.namespace.is_some() && m.command.name != "restore" {
        return Err(Error::usage(
            format!("flag -n does not apply to `{NAME} {}`", m.command.name),
            format!("only `{NAME} restore` takes -n (to restore one namespace)"),
        ));
    }
    let kube = &m.kube;
    match m.command.name {
        "create" => {
            if let Some(extra) = m.args.first() {
                return Err(Error::usage(format!("unexpected argument {extra:?}"), "write the file with -f FILE"));
            }
            let options = crate::create::Options {
                file: m.value("file").map(PathBuf::from),
                include_secrets: m.has("include-secrets"),
                force: m.has("force"),
            };
            block_on(crate::create::run(kube, options, &renderer))
        }
        "inspect" => crate::inspect::run(&file_argument()?, &renderer),
        "diff" => {
            let file = file_argument()?;
            // kubectl diff's codes: 1 means differences only, so an error that exits 1 elsewhere (a
            // failed request) exits 3 here.
            match block_on(crate::diff::run(kube, &file, &renderer)) {
                Err(err) if err.exit() == Exit::Failed => {
                    report(&err);
                    Ok(Exit::Unreachable)
                }
                other => other,
            }
        }
        _ => {
            let file = file_argument()?;
            let options = crate::restore::Options {
                only: m.values("only").to_vec(),
                dry_run: m.dry_run()?,
                force_conflicts: m.has("force-conflicts"),
                yes: m.has("yes"),
            };
            block_on(crate::restore::run(kube, &file, options, &renderer))
        }
    }
}
