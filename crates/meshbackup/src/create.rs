//! `create`: stream the mesh's objects into a new archive.

use std::collections::BTreeSet;
use std::path::PathBuf;

use meshkit::archive::{Header, PendingFile, Writer};
use meshkit::args::KubeArgs;
use meshkit::cli::Matches;
use meshkit::cluster::Cluster;
use meshkit::render::Renderer;
use meshkit::{Error, Exit, Result};

use crate::sources;

pub struct Options {
    pub file: Option<PathBuf>,
    pub include_secrets: bool,
    pub force: bool,
}

impl Options {
    /// `create [FILE] [--include-secrets] [--force]`: at most one FILE, the archive to write.
    pub fn from_matches(m: &Matches) -> Result<Options> {
        m.at_most(1, "at most one FILE")?;
        Ok(Options {
            file: m.args.first().map(PathBuf::from),
            include_secrets: m.has("include-secrets"),
            force: m.has("force"),
        })
    }
}

/// `istio-backup-<context>-<UTC time>.tar.gz`, with the context reduced to file-name-safe characters.
pub fn default_file_name(context: &str, time: &str) -> String {
    let context: String =
        context.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    format!("istio-backup-{context}-{time}.tar.gz")
}

pub async fn run(kube: &KubeArgs, options: Options, renderer: &Renderer) -> Result<Exit> {
    // Before the cluster is read: where the archive goes must be writable.
    match &options.file {
        Some(file) => meshkit::args::check_output_path(file, options.force)?,
        // The default name is in the working directory; only the directory can be checked yet.
        None => meshkit::args::check_output_path(&PathBuf::from(default_file_name("probe", "now")), true)?,
    }
    let cluster = Cluster::connect(kube).await?;
    let now = k8s_openapi::jiff::Timestamp::now();
    let path = options.file.unwrap_or_else(|| {
        PathBuf::from(default_file_name(&cluster.target.context, &now.strftime("%Y%m%dT%H%M%SZ").to_string()))
    });
    // Before anything is read: an existing file is refused at once.
    let pending = PendingFile::create(&path, options.force)?;
    let version = cluster.call("get the server version", cluster.client().apiserver_version()).await?;
    let mesh = meshkit::fetch::control_plane(&cluster).await?.mesh();
    let custom = sources::discover(&cluster).await?;
    if mesh.revisions.is_empty() && custom.is_empty() {
        return Err(Error::not_found(
            format!(
                "no Istio installation found ({}): no istiod, no injector webhook, no Istio API group",
                cluster.target
            ),
            "check --context, and --istio-namespace if Istio is not in istio-system",
        ));
    }
    let plan = sources::plan(&cluster.istio_namespace, custom, options.include_secrets);
    let mut writer = Writer::new(pending).map_err(Error::Output)?;
    sources::collect(
        &cluster,
        &plan,
        &BTreeSet::new(),
        |resource, object| {
            writer.add(&object, resource)?;
            Ok(())
        },
        |source, count| crate::spec::SPEC.note(format_args!("{count:>6} {}", sources::describe(&source.resource))),
    )
    .await?;
    let tool = format!("kubectl-meshbackup {}", env!("CARGO_PKG_VERSION"));
    let header =
        Header::describe(&cluster, version.git_version, &mesh, tool, &now.to_string(), options.include_secrets);
    let (file, manifest) = writer.finish(header).map_err(Error::Output)?;
    file.persist()?;
    crate::spec::SPEC.note(format_args!("wrote {} ({} objects)", path.display(), manifest.objects.len()));
    if !options.include_secrets {
        crate::spec::SPEC.warn(format_args!(
            "secrets were not backed up; without the CA secret (cacerts or \
             istio-ca-secret) a restored istiod mints a new root. Add --include-secrets to keep it."
        ));
    }
    let summary = crate::inspect::summarize(&path.display().to_string(), &manifest, false);
    renderer.print_human(&summary, |_| crate::inspect::human(&summary, renderer))?;
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_safe_file_names() {
        assert_eq!(
            default_file_name("arn:aws:eks:eu-west-1:1:cluster/prod", "20261123T100000Z"),
            "istio-backup-arn_aws_eks_eu-west-1_1_cluster_prod-20261123T100000Z.tar.gz"
        );
    }
}
