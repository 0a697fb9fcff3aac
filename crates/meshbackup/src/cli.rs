//! Command line: the commands and flags declared in `spec.rs`, parsed by `meshkit::cli`; each
//! command reads its own arguments (before anything is sent), then runs.

use std::ffi::OsString;
use std::path::PathBuf;

use meshkit::cli::{Matches, Start};
use meshkit::cluster::block_on;
use meshkit::render::Renderer;
use meshkit::{Error, Exit, Result};

use crate::spec::SPEC;

const NAME: &str = "kubectl meshbackup";

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    let m = match meshkit::cli::start(&SPEC, args)? {
        Start::Done(code) => return Ok(code),
        Start::Run(m) => m,
    };
    // -n is a global kubectl flag, so the spec cannot refuse it per command.
    if m.kube.namespace.is_some() && m.command.name != "restore" {
        return Err(Error::usage(
            format!("flag -n does not apply to `{NAME} {}`", m.command.name),
            format!("only `{NAME} restore` takes -n (to restore one namespace)"),
        ));
    }
    let (kube, renderer) = (&m.kube, Renderer::new(m.output));
    match m.command.name {
        "create" => block_on(crate::create::run(kube, crate::create::Options::from_matches(&m)?, &renderer)),
        "inspect" => crate::inspect::run(&archive(&m)?, &renderer),
        "diff" => block_on(crate::diff::run(kube, &archive(&m)?, &renderer)),
        "restore" => {
            let options = crate::restore::Options::from_matches(&m)?;
            block_on(crate::restore::run(kube, &archive(&m)?, options, &renderer))
        }
        other => Err(Error::usage(format!("unknown command {other:?}"), format!("see `{NAME} --help`"))),
    }
}

/// The archive a command reads: its one FILE argument.
fn archive(m: &Matches) -> Result<PathBuf> {
    m.one_arg("a FILE").map(PathBuf::from)
}
