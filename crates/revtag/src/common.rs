//! What the tag commands share: reading a TAG, and their warnings.

use meshkit::Result;
use meshkit::cli::Matches;

use crate::spec::SPEC;

/// The command's one TAG argument, checked.
pub fn tag_argument(m: &Matches) -> Result<String> {
    let tag = m.one_arg("a TAG")?.to_string();
    validate_tag(&tag)?;
    Ok(tag)
}

/// DNS-1123 label: what Istio accepts as a tag and Kubernetes as part of object names.
pub fn validate_tag(tag: &str) -> Result<()> {
    meshkit::istio::names::validate("tag", tag)
}

pub fn warn(warnings: &[String]) {
    for warning in warnings {
        SPEC.warn(warning);
    }
}
