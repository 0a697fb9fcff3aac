//! Istio's API groups and versions across releases: versions superseded by `v1`, groups Istio has
//! removed, what a target release serves per CRD, and the Gateway API bundle versions istiod needs.

use super::IstioVersion;

/// API groups older releases served and later ones removed, with the removing release. Their CRDs
/// and objects can linger after an upgrade; nothing reads them any more.
const REMOVED_GROUPS: &[(&str, &str)] = &[
    ("rbac.istio.io", "1.6"),
    ("authentication.istio.io", "1.6"),
    ("config.istio.io", "1.8"),
    ("policy.istio.io", "1.8"),
];

/// Whether `group` is one of Istio's API groups (`istio.io` or a subgroup such as
/// `networking.istio.io`); a group merely ending in the letters, like `notistio.io`, is not.
pub fn is_istio_group(group: &str) -> bool {
    group == "istio.io" || group.ends_with(".istio.io")
}

/// The Istio release that removed `group`, if it is one of the removed groups.
pub fn removed_in(group: &str) -> Option<&'static str> {
    REMOVED_GROUPS.iter().find(|(g, _)| *g == group).map(|(_, release)| *release)
}

/// MeshConfig fields Istio has removed (reserved names in istio.io/api `mesh/v1alpha1/config.proto`,
/// as the JSON/YAML names the `mesh` ConfigMap uses). istiod ignores them: a setting that once
/// mattered silently does nothing.
const REMOVED_MESH_CONFIG_FIELDS: &[&str] = &[
    "mixerCheckServer",
    "mixerReportServer",
    "disablePolicyChecks",
    "disableMixerHttpReports",
    "policyCheckFailOpen",
    "sidecarToTelemetrySessionAffinity",
    "authPolicy",
    "rdsRefreshDelay",
    "mixerAddress",
    "enableClientSidePolicyCheck",
    "sdsUdsPath",
    "sdsRefreshDelay",
    "enableSdsTokenMount",
    "sdsUseK8sSaJwt",
    "terminationDrainDuration",
    "disableReportBatch",
    "reportBatchMaxEntries",
    "reportBatchMaxTime",
    "fileFlushInterval",
    "fileFlushMinSize",
    "thriftConfig",
];

/// ProxyConfig fields Istio has removed (reserved in `mesh/v1alpha1/proxy.proto`): in
/// `meshConfig.defaultConfig` and the `proxy.istio.io/config` annotation.
const REMOVED_PROXY_CONFIG_FIELDS: &[&str] = &["parentShutdownDuration", "connectTimeout"];

/// Removed fields set in a MeshConfig document, as `field` or `defaultConfig.field` paths.
pub fn removed_mesh_config_fields(mesh: &serde_json::Value) -> Vec<String> {
    let mut found: Vec<String> =
        REMOVED_MESH_CONFIG_FIELDS.iter().filter(|f| mesh.get(**f).is_some()).map(|f| f.to_string()).collect();
    found.extend(removed_proxy_config_fields(&mesh["defaultConfig"]).into_iter().map(|f| format!("defaultConfig.{f}")));
    if mesh["outboundTrafficPolicy"]["mode"] == "VIRTUAL_SERVICE_ONLY" {
        found.push("outboundTrafficPolicy.mode: VIRTUAL_SERVICE_ONLY".into());
    }
    found
}

/// Removed fields set in a ProxyConfig document.
pub fn removed_proxy_config_fields(proxy: &serde_json::Value) -> Vec<String> {
    REMOVED_PROXY_CONFIG_FIELDS.iter().filter(|f| proxy.get(**f).is_some()).map(|f| f.to_string()).collect()
}

/// Whether objects written as `version` should move to `v1`: the kind serves `v1` and `version` is
/// an alpha or beta (same schema, since Istio's CRDs have no conversion webhooks, but the old
/// version is the one a future release will stop serving).
pub fn superseded(version: &str, served: &[String]) -> bool {
    version != "v1" && (version.contains("alpha") || version.contains("beta")) && served.iter().any(|v| v == "v1")
}

/// The versions each Istio CRD serves, by the first release that served exactly those. Unchanged
/// since 1.22 (`manifests/charts/base/files/crd-all.gen.yaml`); a later target is assumed to serve
/// what the newest known release does.
const SERVED: &[(u64, &str, &[&str])] = &[
    (22, "networking.istio.io", &["v1", "v1beta1", "v1alpha3"]),
    (22, "security.istio.io", &["v1", "v1beta1"]),
    (22, "telemetry.istio.io", &["v1", "v1alpha1"]),
    (22, "extensions.istio.io", &["v1alpha1"]),
    (22, "install.istio.io", &["v1alpha1"]),
];

/// Kinds whose versions differ from the rest of their group.
const SERVED_BY_KIND: &[(&str, &[&str])] =
    &[("envoyfilters.networking.istio.io", &["v1alpha3"]), ("proxyconfigs.networking.istio.io", &["v1beta1"])];

/// What the Istio `target` serves for the CRD named `crd` (`virtualservices.networking.istio.io`),
/// or `None` when we have no record (older than 1.22, or a group we do not know).
pub fn served_by(target: &IstioVersion, crd: &str) -> Option<&'static [&'static str]> {
    if target.major != 1 || target.minor < 22 {
        return None;
    }
    if let Some((_, versions)) = SERVED_BY_KIND.iter().find(|(name, _)| *name == crd) {
        return Some(versions);
    }
    let group = crd.split_once('.').map(|(_, g)| g)?;
    SERVED.iter().filter(|(since, g, _)| *g == group && *since <= target.minor).map(|(_, _, v)| *v).next_back()
}

/// Minimum Gateway API bundle versions istiod accepts per CRD, from the first Istio minor we know
/// it for (read from Istio's `pkg/config/schema/gatewayapi/minimumversions.go`). Below them istiod
/// ignores the CRD and every object of that kind.
const GATEWAY_API_MINIMUMS: &[(u64, &str, (u64, u64, u64))] = &[
    (31, "grpcroutes.gateway.networking.k8s.io", (1, 1, 0)),
    (31, "backendtlspolicies.gateway.networking.k8s.io", (1, 4, 0)),
    (31, "tlsroutes.gateway.networking.k8s.io", (1, 5, 0)),
    (31, "tcproutes.gateway.networking.k8s.io", (1, 6, 0)),
];

/// The minimum bundle version `target` needs for `crd`; `None` when it has none we know of.
pub fn gateway_api_minimum(target: &IstioVersion, crd: &str) -> Option<(u64, u64, u64)> {
    if target.major != 1 {
        return None;
    }
    GATEWAY_API_MINIMUMS.iter().find(|(since, name, _)| *name == crd && *since <= target.minor).map(|(_, _, v)| *v)
}

/// Whether the table knows `target` at all (older targets are not checked).
pub fn gateway_api_minimums_known(target: &IstioVersion) -> bool {
    target.major == 1 && GATEWAY_API_MINIMUMS.iter().any(|(since, _, _)| *since <= target.minor)
}

/// `v1.5.0`, `1.5.0` or `v1.5.0-rc.1` (a pre-release counts as its release, as istiod rounds it).
pub fn parse_bundle_version(raw: &str) -> Option<(u64, u64, u64)> {
    let core = raw.trim().trim_start_matches('v');
    let core = core.split_once(['-', '+']).map_or(core, |(c, _)| c);
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

#[cfg(test)]
mod tests {

    #[test]
    fn istio_groups_are_istio_io_and_its_subgroups() {
        assert!(is_istio_group("istio.io") && is_istio_group("networking.istio.io"));
        assert!(!is_istio_group("notistio.io") && !is_istio_group("gateway.networking.k8s.io"));
    }

    use super::*;

    fn v(text: &str) -> IstioVersion {
        IstioVersion::parse(text).unwrap()
    }

    #[test]
    fn superseded_only_where_v1_exists() {
        let networking = ["v1".to_string(), "v1beta1".into(), "v1alpha3".into()];
        assert!(superseded("v1alpha3", &networking));
        assert!(superseded("v1beta1", &networking));
        assert!(!superseded("v1", &networking));
        assert!(!superseded("v1alpha3", &["v1alpha3".to_string()]), "EnvoyFilter has nothing newer");
        assert_eq!(removed_in("rbac.istio.io"), Some("1.6"));
        assert_eq!(removed_in("networking.istio.io"), None);
    }

    #[test]
    fn removed_config_fields() {
        let mesh = serde_json::json!({
            "mixerAddress": "x", "accessLogFile": "/dev/stdout",
            "defaultConfig": {"connectTimeout": "1s", "concurrency": 2},
            "outboundTrafficPolicy": {"mode": "VIRTUAL_SERVICE_ONLY"}
        });
        assert_eq!(
            removed_mesh_config_fields(&mesh),
            ["mixerAddress", "defaultConfig.connectTimeout", "outboundTrafficPolicy.mode: VIRTUAL_SERVICE_ONLY"]
        );
        assert!(removed_mesh_config_fields(&serde_json::json!({"accessLogFile": "x"})).is_empty());
    }

    #[test]
    fn served_versions_by_target() {
        assert_eq!(
            served_by(&v("1.31.1"), "virtualservices.networking.istio.io"),
            Some(&["v1", "v1beta1", "v1alpha3"][..])
        );
        assert_eq!(served_by(&v("1.40.0"), "envoyfilters.networking.istio.io"), Some(&["v1alpha3"][..]));
        assert_eq!(served_by(&v("1.30.0"), "peerauthentications.security.istio.io"), Some(&["v1", "v1beta1"][..]));
        assert_eq!(served_by(&v("1.21.0"), "virtualservices.networking.istio.io"), None, "before our records");
        assert_eq!(served_by(&v("1.31.0"), "widgets.example.com"), None);
    }

    #[test]
    fn gateway_api_minimums() {
        assert_eq!(gateway_api_minimum(&v("1.31.0"), "tlsroutes.gateway.networking.k8s.io"), Some((1, 5, 0)));
        assert_eq!(gateway_api_minimum(&v("1.31.0"), "httproutes.gateway.networking.k8s.io"), None);
        assert_eq!(gateway_api_minimum(&v("1.30.3"), "tlsroutes.gateway.networking.k8s.io"), None);
        assert!(gateway_api_minimums_known(&v("1.32.0")) && !gateway_api_minimums_known(&v("1.30.0")));
        assert_eq!(parse_bundle_version("v1.5.0-rc.1"), Some((1, 5, 0)));
        assert_eq!(parse_bundle_version("1.4.1"), Some((1, 4, 1)));
        assert_eq!(parse_bundle_version("v1.4"), None);
        assert_eq!(parse_bundle_version("v1.4.0.1"), None);
        assert!(parse_bundle_version("v1.4.1") < Some((1, 5, 0)));
    }
}
