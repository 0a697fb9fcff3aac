//! `kubectl meshmigrate`: move the data plane between Istio revisions.

mod cli;
mod commands;
mod completion;
mod journal;
mod relabel;
mod restart;
mod status;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run(std::env::args_os().skip(1)) {
        Ok(code) => code.into(),
        Err(err) => meshkit::error::report("kubectl-meshmigrate", &err),
    }
}
