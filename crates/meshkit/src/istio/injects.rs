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
}

impl Injects {
    /// From an injector ConfigMap (`istio-sidecar-injector-REV`); `None` for any other ConfigMap
    /// or one whose values do not parse.
    pub fn from_config_map(config: &ConfigMap) -> Option<Injects> {
        let name = config.metadata.name.as_deref()?;
        let suffix = name.strip_prefix(INJECTOR_CONFIG_MAP)?;
        let labels = config.metadata.labels.as_ref();
        let revision = labels
            .and_then(|l| l.get(keys::REV))
            .cloned()
            .or_else(|| suffix.strip_prefix('-').map(str::to_string))
            .unwrap_or_else(|| keys::DEFAULT_REVISION.to_string());
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
        let variant = pod.annotations.get(PROXY_IMAGE_TYPE_ANNOTATION).unwrap_or(&self.variant);
        Some(format!("{}/{}:{}", self.hub, self.image, with_variant(&self.tag, variant)))
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
}
