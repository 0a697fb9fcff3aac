//! `kubectl meshbackup`: back up, inspect, diff and restore an Istio installation.

mod cli;
mod create;
mod diff;
mod inspect;
mod order;
mod restore;
mod sources;
mod spec;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run(std::env::args_os().skip(1)) {
        Ok(code) => code.into(),
        Err(err) => meshkit::error::report("kubectl-meshbackup", &err),
    }
}
