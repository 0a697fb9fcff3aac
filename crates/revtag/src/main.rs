//! `kubectl revtag`: Istio revisions and revision tags.

mod cli;
mod common;
mod generate;
mod legacy_injector;
mod list;
mod ownership;
#[cfg(test)]
mod plan_tests;
mod remove;
mod revisions;
mod set;
mod snapshot;
mod spec;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run(std::env::args_os().skip(1)) {
        Ok(code) => code.into(),
        Err(err) => meshkit::error::report("kubectl-revtag", &err),
    }
}
