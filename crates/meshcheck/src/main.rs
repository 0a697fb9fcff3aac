//! `kubectl meshcheck`: precheck before an Istio upgrade, verify after it, versions and skew.

mod checks;
mod checks_run;
mod cli;
mod explain;
mod flags;
mod located;
mod manifest;
mod manifest_run;
mod manifest_settings;
mod permissions;
mod proxy_status;
mod snapshot;
mod spec;
mod version;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run(std::env::args_os().skip(1)) {
        Ok(code) => code.into(),
        Err(err) => meshkit::error::report("kubectl-meshcheck", &err),
    }
}
