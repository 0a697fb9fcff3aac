//! Typed readers of the flags several commands share (declared once, in `spec.rs`).

use meshkit::args::parse_duration;
use meshkit::cli::Matches;
use meshkit::istio::IstioVersion;
use meshkit::{Error, Result};

use crate::checks::Options;
use crate::checks::report::FailOn;

/// `--to-version 1.Y[.Z]`, the Istio being upgraded to.
pub fn to_version(m: &Matches) -> Result<Option<IstioVersion>> {
    let Some(raw) = m.value("to-version") else { return Ok(None) };
    let parsed = IstioVersion::parse(raw).filter(|v| v.major == 1).ok_or_else(|| {
        Error::usage(format!("invalid --to-version {raw:?}"), "write the Istio version as 1.Y or 1.Y.Z, e.g. 1.31")
    })?;
    Ok(Some(parsed))
}

/// `--fail-on error|warning`, error by default.
pub fn fail_on(m: &Matches) -> Result<FailOn> {
    match m.value("fail-on") {
        None | Some("error") => Ok(FailOn::Error),
        Some("warning") => Ok(FailOn::Warning),
        Some(other) => Err(Error::usage(format!("invalid --fail-on {other:?}"), "valid values: error, warning")),
    }
}

/// What the checks are told: `--to-version`, `--revision`, `--stale-after`.
pub fn options(m: &Matches) -> Result<Options> {
    let mut options = Options { to_version: to_version(m)?, ..Options::default() };
    if let Some(revision) = m.value("revision") {
        meshkit::istio::names::validate("revision", revision)?;
        options.revision = Some(revision.to_string());
    }
    if let Some(raw) = m.value("stale-after") {
        options.stale_after = parse_duration("--stale-after", raw)?;
    }
    Ok(options)
}
