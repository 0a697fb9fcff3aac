//! Typed readers of the flags several commands share (declared once, in `spec.rs`).

use std::time::Duration;

use meshkit::cli::Matches;
use meshkit::{Error, Result};

/// Default `--timeout` for `--wait` (and for the waves of a bounded `--restart`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
pub const DEFAULT_MAX_CONCURRENT: usize = 5;

/// `--to REV|TAG`, required.
pub fn target(m: &Matches) -> Result<String> {
    let Some(to) = m.value("to") else {
        return Err(Error::usage(
            format!("`kubectl meshmigrate {}` needs --to REV|TAG", m.command.name),
            "e.g. --to prod-canary",
        ));
    };
    meshkit::istio::names::validate("revision or tag", to)?;
    Ok(to.to_string())
}

/// `--timeout` (0: no deadline, a century), else [`DEFAULT_TIMEOUT`].
pub fn timeout(m: &Matches) -> Result<Duration> {
    match m.value("timeout") {
        Some(raw) => {
            Ok(meshkit::args::parse_duration("--timeout", raw)?.unwrap_or(Duration::from_secs(100 * 365 * 24 * 3600)))
        }
        None => Ok(DEFAULT_TIMEOUT),
    }
}

/// `--max-concurrent N` (from 1), else [`DEFAULT_MAX_CONCURRENT`].
pub fn max_concurrent(m: &Matches) -> Result<usize> {
    match m.value("max-concurrent") {
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::usage(format!("invalid --max-concurrent {raw:?}"), "a whole number from 1")),
        },
        None => Ok(DEFAULT_MAX_CONCURRENT),
    }
}

/// The command's one positional argument, named `what` in the error.
pub fn exactly_one(m: &Matches, what: &str) -> Result<String> {
    match m.args.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(m.usage(format!("needs exactly one {what}"))),
    }
}
