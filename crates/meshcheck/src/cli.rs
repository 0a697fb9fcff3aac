//! Command line and the run loop (`--wait` retries until the checks pass or time is up).

use std::ffi::OsString;
use std::time::{Duration, Instant};

use lexopt::{Parser, ValueExt};
use meshkit::args::{Flag, GLOBAL_FLAGS_HELP, KubeArgs, next_arg, parse_duration, value};
use meshkit::cluster::Cluster;
use meshkit::istio::IstioVersion;
use meshkit::render::{OUTPUT_FLAGS_HELP, OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};

use crate::checks::{self, Options};
use crate::report::FailOn;
use crate::snapshot::{Needs, Snapshot};
use crate::{catalogue, manifest, manifest_settings, version};

const NAME: &str = "kubectl meshcheck";

pub const HELP: &str = "\
Usage:
  kubectl meshcheck <command> [flags]

Commands:
  precheck    Before an upgrade: Kubernetes support, permissions, installation, injection, data plane
  verify      After an upgrade: control plane available, webhooks served, pods on their revisions
  version     Control-plane and data-plane versions per revision, with skew warnings
  manifest    Review an upgrade manifest before applying it: FILE… or -f FILE (- for stdin)
  completion  Print or install the kubectl completion shim (kubectl_complete-meshcheck)

Every check has a code; docs/checks.md explains each one.

Check flags (precheck, verify):
      --to-version 1.Y         The Istio version being upgraded to (precheck)
      --revision REV           The revision name the canary will get (precheck)
      --fail-on LEVEL          error (default) or warning: the least severe finding that exits 1
      --wait D                 Retry failing checks until they pass or D has passed (e.g. 2m)

Manifest flags:
  -f, --filename FILE          A manifest to review (repeatable; - reads stdin)
      --to-version 1.Y         The Istio version the images should carry
      --offline                Skip the server-side dry run (no cluster needed)

Exit codes: 0 nothing at or above --fail-on, 1 findings, 2 usage, 3 cluster unreachable,
4 forbidden.
  -h, --help                   Show help
      --version                Show the version";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Precheck,
    Verify,
    Version,
    Manifest {
        files: Vec<String>,
        offline: bool,
    },
    /// Prints `docs/checks.md` (used to regenerate it).
    Catalogue,
}

#[derive(Debug)]
pub struct Invocation {
    pub kube: KubeArgs,
    pub output: OutputArgs,
    pub command: Command,
    pub options: Options,
    pub fail_on: FailOn,
    pub wait: Option<Duration>,
}

#[derive(Debug)]
pub enum Request {
    Help,
    Version,
    Run(Box<Invocation>),
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Request> {
    let mut parser = Parser::from_args(args);
    let mut kube = KubeArgs::default();
    let mut output = OutputArgs::default();
    let mut options = Options::default();
    let mut fail_on = FailOn::default();
    let mut wait = None;
    let mut words: Vec<String> = Vec::new();
    let mut files: Vec<String> = Vec::new();
    let mut offline = false;
    let mut help = false;
    while let Some(arg) = next_arg(&mut parser, NAME)? {
        if kube.consume(&arg, &mut parser)? || output.consume(&arg, &mut parser)? {
            continue;
        }
        match arg {
            Flag::Short('h') => help = true,
            Flag::Short('f') => files.push(value(&mut parser, "--filename")?),
            Flag::Long(name) => match name.as_str() {
                "filename" => files.push(value(&mut parser, "--filename")?),
                "offline" => offline = true,
                "help" => help = true,
                "version" => return Ok(Request::Version),
                "to-version" => {
                    let raw = value(&mut parser, "--to-version")?;
                    let parsed = IstioVersion::parse(&raw).filter(|v| v.major == 1).ok_or_else(|| {
                        Error::usage(
                            format!("invalid --to-version {raw:?}"),
                            "write the Istio version as 1.Y or 1.Y.Z, e.g. 1.31",
                        )
                    })?;
                    options.to_version = Some(parsed);
                }
                "revision" => {
                    options.revision = Some(meshkit::args::name_value(&mut parser, "--revision", "revision")?)
                }
                "fail-on" => {
                    fail_on = match value(&mut parser, "--fail-on")?.as_str() {
                        "error" => FailOn::Error,
                        "warning" => FailOn::Warning,
                        other => {
                            return Err(Error::usage(
                                format!("invalid --fail-on {other:?}"),
                                "valid values: error, warning",
                            ));
                        }
                    }
                }
                "wait" => wait = parse_duration("--wait", &value(&mut parser, "--wait")?)?,
                _ => return Err(Flag::Long(name).unexpected(NAME)),
            },
            Flag::Value(v) => words.push(v.string().map_err(|_| Error::usage("arguments must be valid UTF-8", ""))?),
            other => return Err(other.unexpected(NAME)),
        }
    }
    if help || words.is_empty() {
        return Ok(Request::Help);
    }
    let command = match words[0].as_str() {
        "precheck" => Command::Precheck,
        "verify" => Command::Verify,
        "version" => Command::Version,
        "manifest" => {
            files.extend(words.drain(1..));
            if files.is_empty() {
                return Err(Error::usage(
                    "`kubectl meshcheck manifest` needs a FILE (or -f -)",
                    "e.g. `helm template … | kubectl meshcheck manifest -f -`",
                ));
            }
            Command::Manifest { files, offline }
        }
        "catalogue" => Command::Catalogue,
        other => {
            return Err(Error::usage(
                format!("unknown command {other:?} for \"{NAME}\""),
                "available commands: precheck, verify, version; see `kubectl meshcheck --help`",
            ));
        }
    };
    if let Some(extra) = words.get(1) {
        return Err(Error::usage(format!("unexpected argument {extra:?}"), format!("see `{NAME} --help`")));
    }
    Ok(Request::Run(Box::new(Invocation { kube, output, command, options, fail_on, wait })))
}

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(done) = meshkit::complete::dispatch(&crate::completion::SPEC, &args) {
        return done;
    }
    let invocation = match parse(args)? {
        Request::Help => {
            let about = meshkit::catalogue::about("meshcheck");
            meshkit::render::print_text(&format!("{about}.\n\n{HELP}\n\n{OUTPUT_FLAGS_HELP}\n\n{GLOBAL_FLAGS_HELP}\n"));
            return Ok(Exit::Ok);
        }
        Request::Version => {
            meshkit::render::print_text(&format!("kubectl-meshcheck {}\n", env!("CARGO_PKG_VERSION")));
            return Ok(Exit::Ok);
        }
        Request::Run(invocation) => *invocation,
    };
    if invocation.command == Command::Catalogue {
        meshkit::render::print_text(&catalogue::markdown());
        return Ok(Exit::Ok);
    }
    if let Command::Manifest { files, offline } = &invocation.command {
        // Read and parse first: bad input fails before any cluster is contacted.
        let mut objects = Vec::new();
        for file in files {
            let (name, text) = if file == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
                ("<stdin>".to_string(), text)
            } else {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| Error::usage(format!("cannot read {file}: {e}"), "check the path"))?;
                (file.clone(), text)
            };
            objects.extend(manifest::parse(&name, &text)?);
        }
        let mut report = manifest::review(&objects, invocation.options.to_version.as_ref());
        if *offline {
            report.findings.push(manifest_settings::cni(&objects, None));
        } else {
            let findings = meshkit::cluster::block_on(async {
                let cluster = Cluster::connect(&invocation.kube).await?;
                let namespace = invocation.kube.namespace.clone().unwrap_or_else(|| "default".into());
                let cni = manifest_settings::cni(&objects, Some(manifest_settings::cni_in_cluster(&cluster).await?));
                Ok::<_, Error>([cni, manifest::dry_run(&cluster, &objects, &namespace).await])
            })?;
            report.findings.extend(findings);
        }
        let renderer = Renderer::new(invocation.output);
        renderer.print_human(&report.document(invocation.fail_on), |color| report.text(invocation.fail_on, color))?;
        return Ok(report.exit(invocation.fail_on));
    }
    meshkit::cluster::block_on(execute(invocation))
}

async fn execute(invocation: Invocation) -> Result<Exit> {
    let Invocation { kube, output, command, options, fail_on, wait } = invocation;
    let cluster = Cluster::connect(&kube).await?;
    let renderer = Renderer::new(output);
    if command == Command::Version {
        let snapshot = Snapshot::fetch(&cluster, Needs::default()).await?;
        let versions = version::decide(&snapshot);
        for warning in &versions.warnings {
            eprintln!("kubectl-meshcheck: warning: {warning}");
        }
        renderer.print_human(&versions, |_| version::text(&versions, &renderer))?;
        return Ok(Exit::Ok);
    }
    let started = Instant::now();
    loop {
        let needs = Needs { permissions: command == Command::Precheck, all_pods: true, inventory: true };
        let snapshot = Snapshot::fetch(&cluster, needs).await?;
        let report = match command {
            Command::Precheck => checks::precheck(&snapshot, &options),
            _ => checks::verify(&snapshot),
        };
        let retry = wait.is_some_and(|limit| started.elapsed() < limit);
        if report.failed(fail_on) && retry {
            eprintln!(
                "kubectl-meshcheck: checks are failing; retrying (waited {}s so far)",
                started.elapsed().as_secs()
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        renderer.print_human(&report.document(fail_on), |color| report.text(fail_on, color))?;
        return Ok(report.exit(fail_on));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Request> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn flags_and_commands() {
        let Request::Run(inv) = parse_str(&[
            "precheck",
            "--to-version",
            "1.31",
            "--revision=1-31-1",
            "--fail-on",
            "warning",
            "--wait",
            "30s",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(inv.command, Command::Precheck);
        assert_eq!(inv.options.to_version.unwrap().to_string(), "1.31.0");
        assert_eq!(inv.options.revision.as_deref(), Some("1-31-1"));
        assert_eq!(inv.fail_on, FailOn::Warning);
        assert_eq!(inv.wait, Some(Duration::from_secs(30)));
        assert!(matches!(parse_str(&[]).unwrap(), Request::Help));
    }

    #[test]
    fn bad_input() {
        for (args, message) in [
            (vec!["precheck", "--to-version", "banana"], "invalid --to-version \"banana\""),
            (vec!["precheck", "--to-version", "2.0"], "invalid --to-version \"2.0\""),
            (vec!["precheck", "--fail-on", "info"], "invalid --fail-on \"info\""),
            (vec!["verify", "--wait", "soon"], "invalid --wait \"soon\""),
            (vec!["analyse"], "unknown command \"analyse\" for \"kubectl meshcheck\""),
            (vec!["version", "extra"], "unexpected argument \"extra\""),
            (vec!["version", "-o", "xml"], "unknown output format \"xml\""),
        ] {
            let err = parse_str(&args).unwrap_err();
            assert_eq!(err.exit(), Exit::Usage, "{args:?}");
            assert_eq!(err.to_string(), message);
            assert!(err.hint().is_some());
        }
    }
}
