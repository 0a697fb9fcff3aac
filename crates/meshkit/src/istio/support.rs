//! Which Kubernetes minors each Istio minor supports (istio.io's support status table), with
//! both bounds and the "tested but not supported" range.

use serde::Serialize;

use super::IstioVersion;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportWindow {
    pub istio: (u64, u64),
    /// Supported Kubernetes minors, inclusive.
    pub supported: (u64, u64),
    /// Tested but not supported, inclusive.
    pub tested: (u64, u64),
}

/// Kubernetes `1.x` minors, newest Istio first: only rows istio.io has published (a newer Istio
/// minor answers [`Support::Unknown`] rather than a guess).
const WINDOWS: &[SupportWindow] = &[
    SupportWindow { istio: (1, 30), supported: (32, 36), tested: (27, 31) },
    SupportWindow { istio: (1, 29), supported: (31, 35), tested: (26, 30) },
    SupportWindow { istio: (1, 28), supported: (30, 34), tested: (26, 29) },
    SupportWindow { istio: (1, 27), supported: (29, 33), tested: (25, 28) },
    SupportWindow { istio: (1, 26), supported: (29, 33), tested: (25, 28) },
    SupportWindow { istio: (1, 25), supported: (29, 32), tested: (24, 28) },
    SupportWindow { istio: (1, 24), supported: (28, 31), tested: (23, 27) },
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Support {
    Supported,
    /// Istio's tests ran on it, but it is outside the supported window.
    TestedOnly,
    Unsupported,
    /// The Istio minor is not in our table.
    Unknown,
}

pub fn support_window(istio: &IstioVersion) -> Option<SupportWindow> {
    WINDOWS.iter().copied().find(|w| w.istio == istio.minor_version())
}

/// Whether Kubernetes `1.<kube_minor>` is supported by `istio`.
pub fn kubernetes_support(istio: &IstioVersion, kube_minor: u64) -> Support {
    let Some(window) = support_window(istio) else { return Support::Unknown };
    let within = |(low, high): (u64, u64)| (low..=high).contains(&kube_minor);
    if within(window.supported) {
        Support::Supported
    } else if within(window.tested) {
        Support::TestedOnly
    } else {
        Support::Unsupported
    }
}

/// The Istio minors a data plane may lag its control plane by (Istio supports proxies up to two
/// minors older than istiod, and none newer).
pub const MAX_PROXY_LAG: u64 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> IstioVersion {
        IstioVersion::parse(text).unwrap()
    }

    #[test]
    fn both_bounds_and_the_tested_range() {
        assert_eq!(kubernetes_support(&v("1.30.3"), 35), Support::Supported);
        assert_eq!(kubernetes_support(&v("1.30.3"), 32), Support::Supported);
        assert_eq!(kubernetes_support(&v("1.30.3"), 36), Support::Supported);
        assert_eq!(kubernetes_support(&v("1.30.3"), 37), Support::Unsupported, "a maximum exists");
        assert_eq!(kubernetes_support(&v("1.30.3"), 30), Support::TestedOnly);
        assert_eq!(kubernetes_support(&v("1.30.3"), 20), Support::Unsupported);
        assert_eq!(kubernetes_support(&v("1.19.0"), 25), Support::Unknown);
    }

    #[test]
    fn windows_are_ordered_and_sane() {
        for w in WINDOWS {
            assert!(w.supported.0 <= w.supported.1 && w.tested.1 < w.supported.0, "{w:?}");
        }
        assert!(WINDOWS.windows(2).all(|p| p[0].istio > p[1].istio));
    }
}
