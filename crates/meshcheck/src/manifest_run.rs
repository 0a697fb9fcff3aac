//! `kubectl meshcheck manifest`: read and parse the files first (bad input fails before any
//! cluster is contacted), review them, then ask the cluster what it would say (unless offline).

use meshkit::args::KubeArgs;
use meshkit::cli::Matches;
use meshkit::cluster::Cluster;
use meshkit::istio::IstioVersion;
use meshkit::render::{OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};

use crate::checks::report::FailOn;
use crate::{manifest, manifest_settings};

/// What to review: the files (`-` is stdin), against which version, and what fails.
#[derive(Debug)]
pub struct Review {
    pub files: Vec<String>,
    pub offline: bool,
    pub to_version: Option<IstioVersion>,
    pub fail_on: FailOn,
}

impl Review {
    /// `manifest FILE… | -f FILE…`, at least one.
    pub fn from_matches(m: &Matches) -> Result<Review> {
        let mut files: Vec<String> = m.values("filename").to_vec();
        files.extend(m.args.iter().cloned());
        if files.is_empty() {
            return Err(Error::usage(
                "`kubectl meshcheck manifest` needs a FILE (or -f -)",
                "e.g. `helm template … | kubectl meshcheck manifest -f -`",
            ));
        }
        Ok(Review {
            files,
            offline: m.has("offline"),
            to_version: crate::flags::to_version(m)?,
            fail_on: crate::flags::fail_on(m)?,
        })
    }
}

pub fn run(kube: &KubeArgs, output: OutputArgs, review: &Review) -> Result<Exit> {
    let (renderer, fail_on) = (Renderer::new(output), review.fail_on);
    let mut objects = Vec::new();
    for file in &review.files {
        let (name, text) = read(file)?;
        objects.extend(manifest::parse(&name, &text)?);
    }
    let mut report = manifest::review(&objects, review.to_version.as_ref());
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
