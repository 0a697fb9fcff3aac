//! Istio versions as they appear in image tags (`1.30.3`, `1.31.0-beta.1-distroless`) and in
//! revision names (`1-30-3`).

use std::cmp::Ordering;
use std::fmt;

use serde::{Serialize, Serializer};

use super::{PodView, keys};

/// Image variants Istio publishes; they are not part of the version.
const VARIANTS: [&str; 2] = ["-distroless", "-debug"];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IstioVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Pre-release part without the dash, e.g. `beta.1`.
    pub pre: Option<String>,
}

impl IstioVersion {
    /// Parses `1.30.3`, `1.30` or `1.31.0-rc.0`; a leading `v` is accepted.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let text = VARIANTS.iter().fold(text, |t, v| t.strip_suffix(v).unwrap_or(t));
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, Some(pre.to_string())),
            Some(_) => return None,
            None => (text, None),
        };
        let mut parts = core.split('.');
        let number =
            |p: Option<&str>| p.filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))?.parse().ok();
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        let patch = match parts.next() {
            Some(p) => number(Some(p))?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(IstioVersion { major, minor, patch, pre })
    }

    /// The version in an image reference's tag: `docker.io/istio/proxyv2:1.30.3-distroless`.
    /// Digests and non-version tags (`latest`) give `None`.
    pub fn from_image(image: &str) -> Option<Self> {
        let image = image.split('@').next()?;
        let last = image.rsplit('/').next()?;
        let (_, tag) = last.split_once(':')?;
        Self::parse(tag)
    }

    /// The version a revision name spells, if it spells one: `1-30-3`, `canary-1-31-0`.
    pub fn from_revision_name(revision: &str) -> Option<Self> {
        let parts: Vec<&str> = revision.split('-').collect();
        (0..parts.len()).find_map(|start| {
            let tail = &parts[start..];
            (tail.len() == 3 || tail.len() == 2).then(|| Self::parse(&tail.join(".")))?
        })
    }

    /// `1.30`, for comparing minors.
    pub fn minor_version(&self) -> (u64, u64) {
        (self.major, self.minor)
    }
}

impl fmt::Display for IstioVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

impl Serialize for IstioVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Ord for IstioVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch)).then_with(|| {
            // A release sorts after its pre-releases.
            match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            }
        })
    }
}

impl PartialOrd for IstioVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The version of a pod's sidecar, from the `istio-proxy` container's image, whether it runs as an
/// ordinary container or as a native sidecar among the init containers.
pub fn proxy_version(pod: &PodView) -> Option<IstioVersion> {
    pod.containers
        .iter()
        .chain(&pod.init_containers)
        .find(|c| c.name == keys::PROXY_CONTAINER)
        .and_then(|c| IstioVersion::from_image(&c.image))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::ContainerView;

    fn v(text: &str) -> IstioVersion {
        IstioVersion::parse(text).unwrap_or_else(|| panic!("{text} should parse"))
    }

    #[test]
    fn parses_release_and_prerelease() {
        assert_eq!(v("1.30.3"), IstioVersion { major: 1, minor: 30, patch: 3, pre: None });
        assert_eq!(v("v1.30.3").to_string(), "1.30.3");
        assert_eq!(v("1.31").to_string(), "1.31.0");
        assert_eq!(v("1.31.0-beta.1").pre.as_deref(), Some("beta.1"));
        assert_eq!(v("1.30.3-distroless"), v("1.30.3"));
        assert_eq!(v("1.30.3-debug"), v("1.30.3"));
        for bad in ["", "latest", "1", "1.x.3", "1.30.3.4", "1.30.3-", "1..3", "a.b.c"] {
            assert_eq!(IstioVersion::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn orders_like_releases() {
        assert!(v("1.30.3") < v("1.31.0"));
        assert!(v("1.31.0-rc.0") < v("1.31.0"));
        assert!(v("1.9.0") < v("1.10.0"));
        assert_eq!(v("1.30.3").minor_version(), (1, 30));
    }

    #[test]
    fn reads_image_tags() {
        assert_eq!(IstioVersion::from_image("docker.io/istio/pilot:1.30.3"), Some(v("1.30.3")));
        assert_eq!(IstioVersion::from_image("localhost:5000/istio/proxyv2:1.31.1-distroless"), Some(v("1.31.1")));
        assert_eq!(IstioVersion::from_image("istio/proxyv2:1.31.1@sha256:abcd"), Some(v("1.31.1")));
        assert_eq!(IstioVersion::from_image("localhost:5000/proxyv2"), None);
        assert_eq!(IstioVersion::from_image("proxyv2@sha256:abcd"), None);
        assert_eq!(IstioVersion::from_image("gcr.io/istio-testing/pilot:latest"), None);
    }

    #[test]
    fn reads_revision_names() {
        assert_eq!(IstioVersion::from_revision_name("1-30-3"), Some(v("1.30.3")));
        assert_eq!(IstioVersion::from_revision_name("canary-1-31-0"), Some(v("1.31.0")));
        assert_eq!(IstioVersion::from_revision_name("1-31"), Some(v("1.31.0")));
        assert_eq!(IstioVersion::from_revision_name("canary"), None);
        assert_eq!(IstioVersion::from_revision_name("default"), None);
    }

    #[test]
    fn proxy_version_finds_classic_and_native_sidecars() {
        let container = |name: &str, image: &str| ContainerView { name: name.into(), image: image.into() };
        let classic = PodView {
            containers: vec![
                container("app", "nginx:1.27"),
                container("istio-proxy", "docker.io/istio/proxyv2:1.30.3"),
            ],
            ..Default::default()
        };
        assert_eq!(proxy_version(&classic), Some(v("1.30.3")));
        let native = PodView {
            containers: vec![container("app", "nginx:1.27")],
            init_containers: vec![container("istio-proxy", "docker.io/istio/proxyv2:1.31.1")],
            ..Default::default()
        };
        assert_eq!(proxy_version(&native), Some(v("1.31.1")));
        let none = PodView { containers: vec![container("app", "nginx:1.27")], ..Default::default() };
        assert_eq!(proxy_version(&none), None);
    }
}
