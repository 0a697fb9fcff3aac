//! Revision and tag names. Both end up in object names (`istiod-<rev>`,
//! `istio-sidecar-injector-<rev>`, `istio-revision-tag-<tag>`) and in label values, so Istio's
//! installers accept only DNS-1123 labels: at most 63 lower-case letters, digits and '-',
//! starting and ending with a letter or digit.

use crate::error::{Error, Result};

/// Whether `name` is a DNS-1123 label.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A usage error unless `name` can be a revision or tag; `what` says which ("revision",
/// "tag", "revision or tag").
pub fn validate(what: &str, name: &str) -> Result<()> {
    if is_dns_label(name) {
        return Ok(());
    }
    Err(Error::usage(
        format!("invalid {what} name {name:?}"),
        format!(
            "a {what} name is a DNS-1123 label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit (e.g. 1-31-1 or prod-canary)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        for good in ["1-31-1", "canary", "a", &"x".repeat(63)] {
            assert!(validate("revision", good).is_ok(), "{good}");
        }
        for bad in ["", "Bad_Rev", "-x", "x-", "1.31.1", "UPPER", &"x".repeat(64)] {
            let err = validate("revision", bad).unwrap_err();
            assert_eq!(err.exit(), crate::error::Exit::Usage, "{bad}");
            assert!(err.hint().unwrap().contains("DNS-1123"));
        }
    }
}
