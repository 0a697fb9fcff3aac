//! Istio versions as they appear in image tags (`1.30.3`, `1.31.0-beta.1-distroless`), in vendor
//! builds (`1.24.3-solo`, `1.20.0-tetrate0`, `1.18.2-asm.4`, chart versions `1.20.0+tetrate0`)
//! and in revision names (`1-30-3`).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Serialize, Serializer};

use super::{PodView, keys};

/// Image variants Istio and vendors publish; they are not part of the version.
const VARIANTS: [&str; 2] = ["-distroless", "-debug"];

/// What Istio names its pre-releases (`1.31.0-alpha.0`, `-beta.1`, `-rc.0`, `1.32-dev`); any other
/// suffix is a vendor's build of the release (`-solo`, `-tetrate0`, `-asm.4`, `-fips`).
const PRE_RELEASES: [&str; 4] = ["alpha", "beta", "rc", "dev"];

/// An Istio version. A vendor build is the upstream release it is built from: it compares, sorts
/// and hashes as that release (skew and support rules are upstream's), and prints with its suffix.
#[derive(Debug, Clone)]
pub struct IstioVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Pre-release part without the dash, e.g. `beta.1`.
    pub pre: Option<String>,
    /// A vendor's build suffix without the dash or plus, e.g. `solo`, `tetrate0`, `asm.4`.
    pub vendor: Option<String>,
}

impl IstioVersion {
    /// Parses `1.30.3`, `1.30`, `1.31.0-rc.0`, vendor builds (`1.24.3-solo`, `1.20.0-tetrate0`,
    /// `1.18.2-asm.4-distroless`, `1.20.0+tetrate0`); a leading `v` is accepted.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let text = VARIANTS.iter().fold(text, |t, v| t.strip_suffix(v).unwrap_or(t));
        let (core, suffix) = match text.find(['-', '+']) {
            Some(at) if at + 1 < text.len() => (&text[..at], Some(&text[at + 1..])),
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
        let (pre, vendor) = match suffix {
            None => (None, None),
            Some(suffix) if is_pre_release(suffix) => (Some(suffix.to_string()), None),
            Some(suffix) => (None, Some(suffix.to_string())),
        };
        Some(IstioVersion { major, minor, patch, pre, vendor })
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

/// `alpha`, `beta.1`, `rc.0`, `dev`, `alpha.5f2b…`: the first dot-separated word is Istio's.
fn is_pre_release(suffix: &str) -> bool {
    PRE_RELEASES.contains(&suffix.split(['.', '-']).next().unwrap_or_default())
}

impl fmt::Display for IstioVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(suffix) = self.pre.as_ref().or(self.vendor.as_ref()) {
            write!(f, "-{suffix}")?;
        }
        Ok(())
    }
}

impl PartialEq for IstioVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for IstioVersion {}

impl Hash for IstioVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.major, self.minor, self.patch, &self.pre).hash(state);
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
        assert_eq!(v("1.30.3"), IstioVersion { major: 1, minor: 30, patch: 3, pre: None, vendor: None });
        assert_eq!(v("v1.30.3").to_string(), "1.30.3");
        assert_eq!(v("1.31").to_string(), "1.31.0");
        assert_eq!(v("1.31.0-beta.1").pre.as_deref(), Some("beta.1"));
        assert_eq!(v("1.30.3-distroless"), v("1.30.3"));
        assert_eq!(v("1.30.3-debug"), v("1.30.3"));
        for bad in ["", "latest", "1", "1.x.3", "1.30.3.4", "1.30.3-", "1..3", "a.b.c"] {
            assert_eq!(IstioVersion::parse(bad), None, "{bad:?}");
        }
    }

    /// Real-world tags: upstream, vendors' builds, variants, chart versions, development builds.
    #[test]
    fn reads_vendor_builds_as_their_upstream_release() {
        for (tag, upstream, shown, vendor) in [
            ("1.24.3-solo", "1.24.3", "1.24.3-solo", Some("solo")),
            ("1.24.3-solo-distroless", "1.24.3", "1.24.3-solo", Some("solo")),
            ("1.22.1-solo-fips-distroless", "1.22.1", "1.22.1-solo-fips", Some("solo-fips")),
            ("1.20.0-tetrate0", "1.20.0", "1.20.0-tetrate0", Some("tetrate0")),
            ("1.22.3-tetratefips-v0", "1.22.3", "1.22.3-tetratefips-v0", Some("tetratefips-v0")),
            ("1.20.0+tetrate0", "1.20.0", "1.20.0-tetrate0", Some("tetrate0")),
            ("1.18.2-asm.4", "1.18.2", "1.18.2-asm.4", Some("asm.4")),
            ("1.20.6-asm.33-distroless", "1.20.6", "1.20.6-asm.33", Some("asm.33")),
            ("1.30.3-distroless", "1.30.3", "1.30.3", None),
            ("v1.29.2", "1.29.2", "1.29.2", None),
        ] {
            let parsed = v(tag);
            assert_eq!(parsed, v(upstream), "{tag} is a build of {upstream}");
            assert_eq!(parsed.cmp(&v(upstream)), Ordering::Equal, "{tag}");
            assert_eq!(parsed.to_string(), shown, "{tag}");
            assert_eq!(parsed.vendor.as_deref(), vendor, "{tag}");
            assert_eq!(parsed.pre, None, "{tag} is a release");
        }
        for (tag, pre, release) in [
            ("1.31.0-alpha.0", "alpha.0", "1.31.0"),
            ("1.31.0-beta.1-distroless", "beta.1", "1.31.0"),
            ("1.31.0-rc.0", "rc.0", "1.31.0"),
            (
                "1.32-alpha.5f2b1c0d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c",
                "alpha.5f2b1c0d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c",
                "1.32.0",
            ),
            ("1.32-dev", "dev", "1.32.0"),
        ] {
            assert_eq!(v(tag).pre.as_deref(), Some(pre), "{tag}");
            assert_eq!(v(tag).vendor, None, "{tag}");
            assert!(v(tag) < v(release), "{tag} sorts before {release}");
        }
        assert!(v("1.24.3-solo") < v("1.24.4"));
        assert!(v("1.24.3-solo") > v("1.24.2-solo"));
        let images = [
            ("us-docker.pkg.dev/gloo-mesh/istio-abc123/proxyv2:1.24.3-solo", Some("1.24.3")),
            ("containers.istio.tetratelabs.com/proxyv2:1.20.0-tetrate0-distroless", Some("1.20.0")),
            ("gcr.io/gke-release/asm/proxyv2:1.18.2-asm.4", Some("1.18.2")),
            ("registry.redhat.io/openshift-service-mesh/proxyv2-rhel9@sha256:0123abcd", None),
            ("docker.io/istio/proxyv2:1.30.3-distroless@sha256:0123abcd", Some("1.30.3")),
        ];
        for (image, version) in images {
            assert_eq!(IstioVersion::from_image(image), version.map(v), "{image}");
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
