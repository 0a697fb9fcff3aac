//! `inspect`: what an archive holds, per kind, namespace and revision, once every checksum has
//! been verified. `create` prints the same summary of what it wrote.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use meshkit::archive::{Header, Manifest};
use meshkit::render::{Cell, Renderer, Table, Tone, paint};
use meshkit::{Exit, Result};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub file: String,
    pub format_version: u32,
    #[serde(flatten)]
    pub header: Header,
    pub objects: usize,
    /// Whether every object was read back and matched its checksum (inspect), rather than just
    /// written with one (create).
    pub verified: bool,
    /// `namespace/name` of the Secrets holding the mesh's CA.
    pub ca_secrets: Vec<String>,
    pub groups: Vec<Group>,
}

/// Objects of one kind in one namespace belonging to one revision.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// `Kind` for the core group, else `Kind.group`.
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    /// The `istio.io/rev` label; empty without one.
    pub revision: String,
    pub objects: usize,
}

pub fn summarize(file: &str, manifest: &Manifest, verified: bool) -> Summary {
    let mut counts: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for entry in &manifest.objects {
        let kind =
            if entry.group().is_empty() { entry.kind.clone() } else { format!("{}.{}", entry.kind, entry.group()) };
        let key = (kind, entry.namespace.clone().unwrap_or_default(), entry.revision.clone().unwrap_or_default());
        *counts.entry(key).or_default() += 1;
    }
    Summary {
        file: file.to_string(),
        format_version: manifest.format_version,
        header: manifest.header.clone(),
        objects: manifest.objects.len(),
        verified,
        ca_secrets: manifest
            .objects
            .iter()
            .filter(|e| e.ca_secret)
            .map(|e| format!("{}/{}", e.namespace.as_deref().unwrap_or_default(), e.name))
            .collect(),
        groups: counts
            .into_iter()
            .map(|((kind, namespace, revision), objects)| Group { kind, namespace, revision, objects })
            .collect(),
    }
}

pub fn table(summary: &Summary) -> Table {
    let mut table = Table::new(&["KIND", "NAMESPACE", "REVISION", "OBJECTS"]);
    let dash = |s: &str| if s.is_empty() { Cell::new("-", Tone::Dim) } else { Cell::from(s) };
    for group in &summary.groups {
        table.push(vec![
            group.kind.as_str().into(),
            dash(&group.namespace),
            dash(&group.revision),
            group.objects.to_string().into(),
        ]);
    }
    table
}

/// The header lines, then the table.
pub fn human(summary: &Summary, renderer: &Renderer) -> String {
    let header = &summary.header;
    let mut text = String::new();
    let revisions: Vec<String> = header
        .revisions
        .iter()
        .map(|r| match &r.version {
            Some(version) => format!("{} ({version})", r.name),
            None => r.name.clone(),
        })
        .collect();
    let _ =
        writeln!(text, "archive:     {} (format {}, written by {})", summary.file, summary.format_version, header.tool);
    let _ = writeln!(text, "created:     {}", header.created);
    let _ = writeln!(
        text,
        "cluster:     {} (context {}, Kubernetes {})",
        header.cluster.server, header.cluster.context, header.cluster.kubernetes_version
    );
    let _ = writeln!(text, "istio:       namespace {}, revisions {}", header.istio_namespace, or_none(&revisions));
    let secrets = if !header.includes_secrets {
        paint("not included (create --include-secrets); restoring cannot bring back the CA", Tone::Warn, renderer.color)
    } else if summary.ca_secrets.is_empty() {
        "included; no CA secret (cacerts, istio-ca-secret) was found".into()
    } else {
        format!("included; CA: {}", summary.ca_secrets.join(", "))
    };
    let _ = writeln!(text, "secrets:     {secrets}");
    let checksums = if summary.verified { "every checksum verified" } else { "each with its sha256" };
    let _ = writeln!(text, "objects:     {}, {checksums}\n", summary.objects);
    text.push_str(&renderer.table_text(&table(summary)));
    text
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

pub fn run(file: &Path, renderer: &Renderer) -> Result<Exit> {
    let manifest = meshkit::archive::verify_file(file)?;
    let summary = summarize(&file.display().to_string(), &manifest, true);
    renderer.print_human(&summary, |_| human(&summary, renderer))?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use meshkit::archive::Entry;

    use super::*;

    fn entry(api_version: &str, kind: &str, namespace: Option<&str>, name: &str, revision: Option<&str>) -> Entry {
        Entry {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(str::to_string),
            name: name.into(),
            revision: revision.map(str::to_string),
            ca_secret: kind == "Secret" && name == "cacerts",
            ..Entry::default()
        }
    }

    #[test]
    fn objects_are_counted_per_kind_namespace_and_revision() {
        let manifest = Manifest {
            format_version: 1,
            header: Header { includes_secrets: true, ..Header::default() },
            objects: vec![
                entry("networking.istio.io/v1", "VirtualService", Some("shop"), "a", None),
                entry("networking.istio.io/v1", "VirtualService", Some("shop"), "b", None),
                entry("apps/v1", "Deployment", Some("istio-system"), "istiod-1-30-3", Some("1-30-3")),
                entry("apps/v1", "Deployment", Some("istio-system"), "istiod-1-31-1", Some("1-31-1")),
                entry("v1", "Secret", Some("istio-system"), "cacerts", None),
                entry("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, "w", Some("1-30-3")),
            ],
        };
        let summary = summarize("b.tar.gz", &manifest, true);
        assert_eq!(summary.objects, 6);
        assert_eq!(summary.ca_secrets, ["istio-system/cacerts"]);
        let rows: Vec<(String, String, String, usize)> = summary
            .groups
            .iter()
            .map(|g| (g.kind.clone(), g.namespace.clone(), g.revision.clone(), g.objects))
            .collect();
        let row = |k: &str, n: &str, r: &str, c| (k.to_string(), n.to_string(), r.to_string(), c);
        assert_eq!(
            rows,
            [
                row("Deployment.apps", "istio-system", "1-30-3", 1),
                row("Deployment.apps", "istio-system", "1-31-1", 1),
                row("MutatingWebhookConfiguration.admissionregistration.k8s.io", "", "1-30-3", 1),
                row("Secret", "istio-system", "", 1),
                row("VirtualService.networking.istio.io", "shop", "", 2),
            ]
        );
        let text = human(&summary, &Renderer { format: Default::default(), no_headers: false, color: false });
        assert!(text.contains("secrets:     included; CA: istio-system/cacerts"), "{text}");
        assert!(text.contains("objects:     6, every checksum verified"), "{text}");
        assert!(
            text.contains("VirtualService.networking.istio.io                          shop           -          2"),
            "{text}"
        );
    }
}
