//! `kubectl revtag`: Istio revisions and revision tags.

mod cli;
mod commands;
mod legacy_injector;
mod list;
mod ownership;
mod revisions;
mod snapshot;
mod spec;
mod tag;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run(std::env::args_os().skip(1)) {
        Ok(code) => code.into(),
        Err(err) => meshkit::error::report("kubectl-revtag", &err),
    }
}
