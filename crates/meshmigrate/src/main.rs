//! `kubectl meshmigrate`: move the data plane between Istio revisions.

mod cli;
mod explain;
mod flags;
mod gateway;
mod journal;
mod migrate;
mod progress;
mod proxies;
mod relabel;
mod restart;
mod restart_run;
mod restart_wait;
mod retire;
mod retire_helm;
mod retire_owned;
mod retire_run;
mod rollout;
mod scope;
mod spec;
mod status;
mod verify;
mod waves;
mod waves_run;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run(std::env::args_os().skip(1)) {
        Ok(code) => code.into(),
        Err(err) => meshkit::error::report("kubectl-meshmigrate", &err),
    }
}
