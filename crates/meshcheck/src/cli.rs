//! Command line and the run loop (`--wait` retries until the checks pass or time is up).

use std::ffi::OsString;
use std::time::{Duration, Instant};

use meshkit::args::{KubeArgs, parse_duration};
use meshkit::cli::{Matches, Parsed};
use meshkit::cluster::Cluster;
use meshkit::istio::IstioVersion;
use meshkit::render::{OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};

use crate::checks::{self, Options};
use crate::report::FailOn;
use crate::snapshot::{Needs, Snapshot};
use crate::spec::SPEC;
use crate::{catalogue, manifest, manifest_settings, version};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Precheck,
    Verify,
    Version,
    ProxyStatus(crate::proxy_status::Filter),
    Manifest {
        files: Vec<String>,
        offline: bool,
    },
    /// Prints `docs/checks.md` (used to regenerate it; not listed).
    Catalogue,
    /// One check's documentation.
    Explain {
        code: String,
    },
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
    Help(String),
    Version,
    Run(Box<Invocation>),
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Request> {
    let args: Vec<OsString> = args.into_iter().collect();
    // Not a user command (it regenerates docs/checks.md), so not in the spec.
    if args.first().and_then(|a| a.to_str()) == Some("catalogue") {
        let invocation = Invocation {
            kube: KubeArgs::default(),
            output: OutputArgs::default(),
            command: Command::Catalogue,
            options: Options::default(),
            fail_on: FailOn::default(),
            wait: None,
        };
        return Ok(Request::Run(Box::new(invocation)));
    }
    let m = match meshkit::cli::parse(&SPEC, args)? {
        Parsed::Help(text) => return Ok(Request::Help(text)),
        Parsed::Version => return Ok(Request::Version),
        Parsed::Run(m) => m,
    };
    let mut options = Options::default();
    if let Some(raw) = m.value("to-version") {
        let parsed = IstioVersion::parse(raw).filter(|v| v.major == 1).ok_or_else(|| {
            Error::usage(format!("invalid --to-version {raw:?}"), "write the Istio version as 1.Y or 1.Y.Z, e.g. 1.31")
        })?;
        options.to_version = Some(parsed);
    }
    if let Some(revision) = m.value("revision") {
        meshkit::istio::names::validate("revision", revision)?;
        options.revision = Some(revision.to_string());
    }
    let fail_on = match m.value("fail-on") {
        None | Some("error") => FailOn::Error,
        Some("warning") => FailOn::Warning,
        Some(other) => {
            return Err(Error::usage(format!("invalid --fail-on {other:?}"), "valid values: error, warning"));
        }
    };
    if let Some(raw) = m.value("stale-after") {
        options.stale_after = parse_duration("--stale-after", raw)?;
    }
    let wait = match m.value("wait") {
        Some(raw) => parse_duration("--wait", raw)?,
        None => None,
    };
    let command = match m.command.name {
        "precheck" | "verify" | "version" => {
            m.at_most(0, "no arguments")?;
            match m.command.name {
                "precheck" => Command::Precheck,
                "verify" => Command::Verify,
                _ => Command::Version,
            }
        }
        "proxy-status" => {
            let selector = m.value("selector").map(str::to_string);
            if let Some(selector) = &selector {
                meshkit::args::check_selector(selector)?;
            }
            for namespace in &m.args {
                meshkit::istio::names::validate("namespace", namespace)?;
            }
            Command::ProxyStatus(crate::proxy_status::Filter { namespaces: m.args.clone(), selector })
        }
        "manifest" => {
            let mut files: Vec<String> = m.values("filename").to_vec();
            files.extend(m.args.iter().cloned());
            if files.is_empty() {
                return Err(Error::usage(
                    "`kubectl meshcheck manifest` needs a FILE (or -f -)",
                    "e.g. `helm template … | kubectl meshcheck manifest -f -`",
                ));
            }
            Command::Manifest { files, offline: m.has("offline") }
        }
        _ => {
            let code = m.one_arg("a check CODE")?.to_ascii_uppercase();
            if catalogue::find(&code).is_none() {
                return Err(Error::usage(
                    format!("unknown check {code:?}"),
                    "check codes look like MC0401; `kubectl meshcheck precheck` and `verify` print them",
                ));
            }
            Command::Explain { code }
        }
    };
    let Matches { kube, output, .. } = *m;
    Ok(Request::Run(Box::new(Invocation { kube, output, command, options, fail_on, wait })))
}

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(done) = meshkit::complete::dispatch(&SPEC, &args) {
        return done;
    }
    let invocation = match parse(args)? {
        Request::Help(text) => {
            meshkit::render::print_text(&text);
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
    if let Command::Explain { code } = &invocation.command {
        let check = catalogue::find(code).expect("checked when parsed");
        meshkit::render::print_text(&catalogue::explain(check));
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
    if let Command::ProxyStatus(filter) = &command {
        return crate::proxy_status::run(&cluster, filter, &renderer).await;
    }
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
        let needs = Needs {
            permissions: command == Command::Precheck,
            all_pods: true,
            inventory: true,
            live: command == Command::Verify,
        };
        let snapshot = Snapshot::fetch(&cluster, needs).await?;
        let report = match command {
            Command::Precheck => checks::precheck(&snapshot, &options),
            _ => checks::verify(&snapshot, &options),
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
        assert!(matches!(parse_str(&[]).unwrap(), Request::Help(_)));
    }

    #[test]
    fn bad_input() {
        for (args, message) in [
            (vec!["precheck", "--to-version", "banana"], "invalid --to-version \"banana\""),
            (vec!["precheck", "--to-version", "2.0"], "invalid --to-version \"2.0\""),
            (vec!["precheck", "--fail-on", "info"], "invalid --fail-on \"info\""),
            (vec!["verify", "--wait", "soon"], "invalid --wait \"soon\""),
            (vec!["analyse"], "unknown command \"analyse\" for `kubectl meshcheck`"),
            (vec!["version", "extra"], "`kubectl meshcheck version` takes no arguments; unexpected argument \"extra\""),
            (vec!["version", "-o", "xml"], "unknown output format \"xml\" for `kubectl meshcheck version`"),
            (vec!["version", "--wait", "5m"], "flag --wait does not apply to `kubectl meshcheck version`"),
            (vec!["explain", "MC9999"], "unknown check \"MC9999\""),
        ] {
            let err = parse_str(&args).unwrap_err();
            assert_eq!(err.exit(), Exit::Usage, "{args:?}");
            assert_eq!(err.to_string(), message);
            assert!(err.hint().is_some());
        }
    }
}
