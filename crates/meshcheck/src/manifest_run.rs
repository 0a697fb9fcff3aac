//! `kubectl meshcheck manifest`: read and parse the files first (bad input fails before any
//! cluster is contacted), review them, then ask the cluster what it would say (unless offline).

use meshkit::args::KubeArgs;
use meshkit::cluster::Cluster;
use meshkit::istio::IstioVersion;
use meshkit::render::Renderer;
use meshkit::{Error, Exit, Result};

use crate::checks::report::FailOn;
use crate::{manifest, manifest_settings};

/// What to review: the files (`-` is stdin), and against which version.
pub struct Review<'a> {
    pub files: &'a [String],
    pub offline: bool,
    pub to_version: Option<&'a IstioVersion>,
}

pub fn run(kube: &KubeArgs, renderer: Renderer, fail_on: FailOn, review: &Review) -> Result<Exit> {
    let mut objects = Vec::new();
    for file in review.files {
        let (name, text) = read(file)?;
        objects.extend(manifest::parse(&name, &text)?);
    }
    let mut report = manifest::review(&objects, review.to_version);
    if review.offline {
        report.findings.push(manifest_settings::cni(&objects, None));
    } else {
        let findings = meshkit::cluster::block_on(async {
            let cluster = Cluster::connect(kube).await?;
            let namespace = kube.namespace.clone().unwrap_or_else(|| "default".into());
            let cni = manifest_settings::cni(&objects, Some(manifest_settings::cni_in_cluster(&cluster).await?));
            Ok::<_, Error>([cni, manifest::dry_run(&cluster, &objects, &namespace).await])
        })?;
        report.findings.extend(findings);
    }
    renderer.print_human(&report.document(fail_on), |color| report.text(fail_on, color))?;
    Ok(report.exit(fail_on))
}

/// The file's name as shown in findings, and its text. The error names the file, never its
/// contents.
fn read(file: &str) -> Result<(String, String)> {
    if file == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        return Ok(("<stdin>".to_string(), text));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::usage(format!("cannot read {file}: {e}"), "check the path"))?;
    Ok((file.to_string(), text))
}
