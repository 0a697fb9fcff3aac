//! What a revision injects now: the proxy image its injector's values name (`hub`, `tag`,
//! `proxy.image`, `variant` in the `values` key of `istio-sidecar-injector[-REV]`), computed as
//! Istio's injector computes it. A pod whose proxy differs was injected before the revision
//! changed in place (`helm upgrade` of the revision, or a reused revision name).

use k8s_openapi::api::core::v1::ConfigMap;
use serde::Serialize;
use serde_json::Value;

use super::{PodView, keys};

/// The pod annotation that pins a proxy image: such a pod is never stale on image grounds.
pub const PROXY_IMAGE_ANNOTATION: &str = "sidecar.istio.io/proxyImage";
/// The pod annotation that picks an image variant (`distroless`, `debug`, `default`).
pub const PROXY_IMAGE_TYPE_ANNOTATION: &str = "sidecar.istio.io/proxyImageType";
const INJECTOR_CONFIG_MAP: &str = "istio-sidecar-injector";
/// The variants Istio publishes, as tag suffixes.
const KNOWN_VARIANTS: [&str; 2] = ["distroless", "debug"];

/// One revision's injector values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Injects {
    pub revision: String,
    pub hub: String,
    pub tag: String,
    /// `proxyv2`, or a full image reference when it contains a `/`.
    pub image: String,
    pub variant: String,
    /// The mesh config's `defaultConfig.image.imageType` (`istio[-REV]` ConfigMap): before the
    /// values' variant, after the pod's own annotations.
    pub image_type: String,
    /// The template injects the `istio-validation` init container instead of `istio-init`
    /// (`pilot.cni.enabled`, or the older `istio_cni.enabled`).
    pub cni: bool,
    /// `pilot.env.ENABLE_NATIVE_SIDECARS` when set to `true` or `false`; `None` for `auto` or
    /// unset, which depends on the cluster.
    pub native_sidecars: Option<bool>,
}

/// The pod annotation that overrides the mesh's proxy config (`image.imageType` among others).
/// The pod annotation that picks a native or a classic sidecar.
const NATIVE_SIDECAR_ANNOTATION: &str = "sidecar.istio.io/nativeSidecar";
const MESH_CONFIG_MAP: &str = "istio";

/// One fact a revision-labelled ConfigMap of the Istio namespace gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevisionConfig {
    Injector(Injects),
    /// The mesh config's default proxy image type.
    MeshImageType {
        revision: String,
        image_type: String,
    },
}

impl RevisionConfig {
    pub fn from_config_map(config: &ConfigMap) -> Option<RevisionConfig> {
        if let Some(injects) = Injects::from_config_map(config) {
            return Some(RevisionConfig::Injector(injects));
        }
        let name = config.metadata.name.as_deref()?;
        let suffix = name.strip_prefix(MESH_CONFIG_MAP)?;
        if !(suffix.is_empty() || suffix.starts_with('-')) {
            return None;
        }
        let revision = revision_of(config, suffix);
        let mesh: Value = serde_saphyr::from_str(config.data.as_ref()?.get("mesh")?).ok()?;
        let image_type = mesh["defaultConfig"]["image"]["imageType"].as_str()?.to_string();
        Some(RevisionConfig::MeshImageType { revision, image_type })
    }

    /// Each revision's injects, its mesh config's image type merged in.
    pub fn merge(configs: impl IntoIterator<Item = RevisionConfig>) -> Vec<Injects> {
        let mut injects = Vec::new();
        let mut image_types = std::collections::BTreeMap::new();
        for config in configs {
            match config {
                RevisionConfig::Injector(i) => injects.push(i),
                RevisionConfig::MeshImageType { revision, image_type } => {
                    image_types.insert(revision, image_type);
                }
            }
        }
        for i in &mut injects {
            if let Some(image_type) = image_types.remove(&i.revision) {
                i.image_type = image_type;
            }
        }
        injects
    }
}

fn revision_of(config: &ConfigMap, suffix: &str) -> String {
    config
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(keys::REV))
        .cloned()
        .or_else(|| suffix.strip_prefix('-').map(str::to_string))
        .unwrap_or_else(|| keys::DEFAULT_REVISION.to_string())
}

/// The `image.imageType` a pod's own `proxy.istio.io/config` sets, if it sets one.
fn pod_image_type(pod: &PodView) -> Option<String> {
    let config: Value = serde_saphyr::from_str(pod.annotations.get(keys::PROXY_CONFIG)?).ok()?;
    Some(config["image"]["imageType"].as_str()?.to_string()).filter(|t| !t.is_empty())
}

impl Injects {
    /// From an injector ConfigMap (`istio-sidecar-injector-REV`); `None` for any other ConfigMap
    /// or one whose values do not parse.
    pub fn from_config_map(config: &ConfigMap) -> Option<Injects> {
        let name = config.metadata.name.as_deref()?;
        let suffix = name.strip_prefix(INJECTOR_CONFIG_MAP)?;
        let revision = revision_of(config, suffix);
        let values: Value = serde_json::from_str(config.data.as_ref()?.get("values")?).ok()?;
        let global = &values["global"];
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(), // `tag: 1.30` written unquoted
            _ => String::new(),
        };
        Some(Injects {
            revision,
            hub: text(&global["hub"]),
            tag: text(&global["tag"]),
            image: Some(text(&global["proxy"]["image"])).filter(|i| !i.is_empty()).unwrap_or_else(|| "proxyv2".into()),
            variant: text(&global["variant"]),
            image_type: String::new(),
            cni: values["pilot"]["cni"]["enabled"]
                .as_bool()
                .or(values["istio_cni"]["enabled"].as_bool())
                .unwrap_or(false),
            native_sidecars: match values["pilot"]["env"]["ENABLE_NATIVE_SIDECARS"].as_str() {
                Some("true") => Some(true),
                Some("false") => Some(false),
                _ => None,
            },
        })
    }

    /// The image the injector writes into a pod with these annotations now, or `None` when the
    /// pod pins its own (`sidecar.istio.io/proxyImage`).
    pub fn proxy_image_for(&self, pod: &PodView) -> Option<String> {
        if pod.annotations.contains_key(PROXY_IMAGE_ANNOTATION) {
            return None;
        }
        if self.image.contains('/') {
            return Some(self.image.clone());
        }
        // Istio's order: the pod's annotation, its proxy config, the mesh's, the values' variant.
        let variant = pod
            .annotations
            .get(PROXY_IMAGE_TYPE_ANNOTATION)
            .cloned()
            .or_else(|| pod_image_type(pod))
            .or_else(|| Some(self.image_type.clone()).filter(|t| !t.is_empty()))
            .unwrap_or_else(|| self.variant.clone());
        Some(format!("{}/{}:{}", self.hub, self.image, with_variant(&self.tag, &variant)))
    }
}

/// Istio's tag rule: a known variant suffix is replaced by the requested one; `default` or none
/// means the plain tag.
fn with_variant(tag: &str, variant: &str) -> String {
    let base = KNOWN_VARIANTS.iter().find_map(|v| tag.strip_suffix(&format!("-{v}"))).unwrap_or(tag);
    match variant {
        "" => tag.to_string(),
        "default" => base.to_string(),
        other => format!("{base}-{other}"),
    }
}

/// The image of the pod's `istio-proxy` container (a native sidecar counts too).
pub fn proxy_image(pod: &PodView) -> Option<&str> {
    pod.containers
        .iter()
        .chain(&pod.init_containers)
        .find(|c| c.name == keys::PROXY_CONTAINER)
        .map(|c| c.image.as_str())
}

/// Why a pod injected by `injects.revision` is stale because the revision's template changed,
/// where the pod's `sidecar.istio.io/status` shows it: CNI switched on or off (`istio-init` vs
/// `istio-validation`), or native sidecars set on or off explicitly.
pub fn stale_template(pod: &PodView, injects: &Injects) -> Option<String> {
    let status: Value = serde_json::from_str(pod.annotations.get(keys::SIDECAR_STATUS)?).ok()?;
    let listed = |key: &str, name: &str| status[key].as_array().is_some_and(|a| a.iter().any(|v| v == name));
    let revision = &injects.revision;
    if listed("initContainers", "istio-init") && injects.cni {
        return Some(format!("injected with istio-init; revision {revision} now uses the Istio CNI"));
    }
    if listed("initContainers", "istio-validation") && !injects.cni {
        return Some(format!("injected for the Istio CNI; revision {revision} now injects istio-init"));
    }
    let wanted = match pod.annotations.get(NATIVE_SIDECAR_ANNOTATION).map(String::as_str) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => injects.native_sidecars,
    }?;
    let native = listed("initContainers", keys::PROXY_CONTAINER);
    let classic = listed("containers", keys::PROXY_CONTAINER);
    match (wanted, native, classic) {
        (true, false, true) => Some(format!("a classic sidecar; revision {revision} now injects a native one")),
        (false, true, false) => Some(format!("a native sidecar; revision {revision} now injects a classic one")),
        _ => None,
    }
}

/// Why a pod injected by `injects.revision` is stale by its image, if it is:
/// `proxy 1.30.3, revision 1-30-3 now injects 1.31.1`.
pub fn stale_image(pod: &PodView, injects: &Injects) -> Option<String> {
    let wanted = injects.proxy_image_for(pod)?;
    let running = proxy_image(pod)?;
    if running == wanted {
        return None;
    }
    let shown =
        |image: &str| image.rsplit_once(':').map(|(_, tag)| tag.to_string()).unwrap_or_else(|| image.to_string());
    let (running_tag, wanted_tag) = (shown(running), shown(&wanted));
    Some(if running_tag == wanted_tag {
        format!("proxy image {running}, revision {} now injects {wanted}", injects.revision)
    } else {
        format!("proxy {running_tag}, revision {} now injects {wanted_tag}", injects.revision)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::ContainerView;

    fn injector(values: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "istio-sidecar-injector-1-30-3", "labels": {"istio.io/rev": "1-30-3"}},
            "data": {"values": values, "config": "policy: enabled"},
        }))
        .unwrap()
    }

    fn pod(image: &str, annotations: &[(&str, &str)]) -> PodView {
        PodView {
            containers: vec![ContainerView { name: "istio-proxy".into(), image: image.into() }],
            annotations: annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    const VALUES: &str =
        r#"{"global": {"hub": "docker.io/istio", "tag": "1.31.1", "proxy": {"image": "proxyv2"}, "variant": ""}}"#;

    #[test]
    fn the_injectors_values_name_the_image_a_new_pod_gets() {
        let injects = Injects::from_config_map(&injector(VALUES)).unwrap();
        assert_eq!(injects.revision, "1-30-3");
        assert_eq!(injects.proxy_image_for(&pod("x", &[])).as_deref(), Some("docker.io/istio/proxyv2:1.31.1"));
        // Other ConfigMaps of the revision are not injectors.
        let mut mesh_config = injector(VALUES);
        mesh_config.metadata.name = Some("istio-1-30-3".into());
        assert_eq!(Injects::from_config_map(&mesh_config), None);
        let unquoted = Injects::from_config_map(&injector(r#"{"global": {"hub": "h", "tag": 1.31}}"#)).unwrap();
        assert_eq!(unquoted.proxy_image_for(&pod("x", &[])).as_deref(), Some("h/proxyv2:1.31"));
    }

    #[test]
    fn staleness_by_image_has_a_reason_and_exemptions() {
        let injects = Injects::from_config_map(&injector(VALUES)).unwrap();
        let old = pod("docker.io/istio/proxyv2:1.30.3", &[]);
        assert_eq!(stale_image(&old, &injects).as_deref(), Some("proxy 1.30.3, revision 1-30-3 now injects 1.31.1"));
        assert_eq!(stale_image(&pod("docker.io/istio/proxyv2:1.31.1", &[]), &injects), None);
        // A pinned image is the pod's own choice.
        assert_eq!(
            stale_image(
                &pod("my.registry/proxy:1.30.3", &[(PROXY_IMAGE_ANNOTATION, "my.registry/proxy:1.30.3")]),
                &injects
            ),
            None
        );
        // The same tag from another hub is stale too, and said so in full.
        let mirrored = pod("mirror.example/istio/proxyv2:1.31.1", &[]);
        assert_eq!(
            stale_image(&mirrored, &injects).as_deref(),
            Some(
                "proxy image mirror.example/istio/proxyv2:1.31.1, revision 1-30-3 now injects docker.io/istio/proxyv2:1.31.1"
            )
        );
        // A pod without an Istio proxy has nothing to compare.
        assert_eq!(stale_image(&PodView::default(), &injects), None);
    }

    #[test]
    fn variants_follow_istios_tag_rule() {
        let distroless = Injects::from_config_map(&injector(
            r#"{"global": {"hub": "docker.io/istio", "tag": "1.31.1", "variant": "distroless"}}"#,
        ))
        .unwrap();
        assert_eq!(
            distroless.proxy_image_for(&pod("x", &[])).as_deref(),
            Some("docker.io/istio/proxyv2:1.31.1-distroless")
        );
        let debug = pod("x", &[(PROXY_IMAGE_TYPE_ANNOTATION, "debug")]);
        assert_eq!(distroless.proxy_image_for(&debug).as_deref(), Some("docker.io/istio/proxyv2:1.31.1-debug"));
        assert_eq!(with_variant("1.31.1-distroless", "default"), "1.31.1");
        let full = Injects { image: "registry.example/proxy@sha256:abc".into(), ..distroless };
        assert_eq!(full.proxy_image_for(&pod("x", &[])).as_deref(), Some("registry.example/proxy@sha256:abc"));
    }

    fn injected(status: &str, annotations: &[(&str, &str)]) -> PodView {
        let mut pod = pod("docker.io/istio/proxyv2:1.31.1", annotations);
        pod.annotations.insert(keys::SIDECAR_STATUS.into(), status.into());
        pod
    }

    const CLASSIC: &str = r#"{"initContainers":["istio-init"],"containers":["istio-proxy"],"revision":"1-30-3"}"#;
    const NATIVE: &str = r#"{"initContainers":["istio-init","istio-proxy"],"containers":null,"revision":"1-30-3"}"#;
    const FOR_CNI: &str = r#"{"initContainers":["istio-validation"],"containers":["istio-proxy"],"revision":"1-30-3"}"#;

    #[test]
    fn a_changed_template_is_a_reason_where_the_status_annotation_shows_it() {
        let with = |values: &str| Injects::from_config_map(&injector(values)).unwrap();
        let plain = with(VALUES);
        assert_eq!((plain.cni, plain.native_sidecars), (false, None));
        assert_eq!(stale_template(&injected(CLASSIC, &[]), &plain), None);
        assert_eq!(stale_template(&injected(NATIVE, &[]), &plain), None, "auto: the cluster decides; not compared");

        let cni = with(r#"{"global": {"hub": "h", "tag": "1"}, "pilot": {"cni": {"enabled": true}}}"#);
        assert_eq!(
            stale_template(&injected(CLASSIC, &[]), &cni).as_deref(),
            Some("injected with istio-init; revision 1-30-3 now uses the Istio CNI")
        );
        assert_eq!(stale_template(&injected(FOR_CNI, &[]), &cni), None);
        assert_eq!(
            stale_template(&injected(FOR_CNI, &[]), &plain).as_deref(),
            Some("injected for the Istio CNI; revision 1-30-3 now injects istio-init")
        );
        let legacy_cni = with(r#"{"global": {"hub": "h", "tag": "1"}, "istio_cni": {"enabled": true}}"#);
        assert!(legacy_cni.cni);

        let native =
            with(r#"{"global": {"hub": "h", "tag": "1"}, "pilot": {"env": {"ENABLE_NATIVE_SIDECARS": "true"}}}"#);
        assert_eq!(
            stale_template(&injected(CLASSIC, &[]), &native).as_deref(),
            Some("a classic sidecar; revision 1-30-3 now injects a native one")
        );
        assert_eq!(stale_template(&injected(NATIVE, &[]), &native), None);
        let pinned = injected(CLASSIC, &[("sidecar.istio.io/nativeSidecar", "false")]);
        assert_eq!(stale_template(&pinned, &native), None, "the pod's annotation decides for it");
        let classic =
            with(r#"{"global": {"hub": "h", "tag": "1"}, "pilot": {"env": {"ENABLE_NATIVE_SIDECARS": "false"}}}"#);
        assert_eq!(
            stale_template(&injected(NATIVE, &[]), &classic).as_deref(),
            Some("a native sidecar; revision 1-30-3 now injects a classic one")
        );
        assert_eq!(stale_template(&pod("x", &[]), &plain), None, "no status annotation: nothing to compare");
    }

    #[test]
    fn the_mesh_configs_image_type_comes_after_the_pods_own_and_before_the_variant() {
        let mesh: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "istio-1-30-3", "labels": {"istio.io/rev": "1-30-3"}},
            "data": {"mesh": "defaultConfig:\n  discoveryAddress: istiod-1-30-3.istio-system.svc:15012\n  image:\n    imageType: distroless\n"},
        }))
        .unwrap();
        let configs = [injector(VALUES), mesh].iter().filter_map(RevisionConfig::from_config_map).collect::<Vec<_>>();
        let merged = RevisionConfig::merge(configs);
        assert_eq!(merged.len(), 1);
        let injects = &merged[0];
        assert_eq!(injects.image_type, "distroless");
        assert_eq!(
            injects.proxy_image_for(&pod("x", &[])).as_deref(),
            Some("docker.io/istio/proxyv2:1.31.1-distroless")
        );
        let own = pod("x", &[("proxy.istio.io/config", r#"{"image": {"imageType": "debug"}}"#)]);
        assert_eq!(injects.proxy_image_for(&own).as_deref(), Some("docker.io/istio/proxyv2:1.31.1-debug"));
        let annotated = pod(
            "x",
            &[(PROXY_IMAGE_TYPE_ANNOTATION, "default"), ("proxy.istio.io/config", "image: {imageType: debug}")],
        );
        assert_eq!(injects.proxy_image_for(&annotated).as_deref(), Some("docker.io/istio/proxyv2:1.31.1"));
        let no_image_type: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "istio", "labels": {"istio.io/rev": "default"}}, "data": {"mesh": "defaultConfig: {}"},
        }))
        .unwrap();
        assert_eq!(RevisionConfig::from_config_map(&no_image_type), None);
        let other: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "istio-ca-root-cert"}, "data": {"mesh": "x"},
        }))
        .unwrap();
        assert_eq!(RevisionConfig::from_config_map(&other), None, "not a mesh config");
    }
}
