//! Command line and the run loop (`--wait` retries until the checks pass or time is up).

use std::ffi::OsString;
use std::time::{Duration, Instant};

use meshkit::args::{KubeArgs, parse_duration};
use meshkit::cli::{Matches, Start};
use meshkit::cluster::Cluster;
use meshkit::istio::IstioVersion;
use meshkit::render::{OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};

use crate::checks::catalogue;
use crate::checks::report::FailOn;
use crate::checks::{self, Options};
use crate::snapshot::{Needs, Snapshot};
use crate::spec::SPEC;
use crate::{manifest_run, version};

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

/// The command a parsed command line asks for, its arguments checked.
pub fn invocation(m: Box<Matches>) -> Result<Invocation> {
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
    Ok(Invocation { kube, output, command, options, fail_on, wait })
}

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    let mut args = args.into_iter().peekable();
    // Not a user command (it regenerates docs/checks.md), so not in the spec.
    if args.peek().and_then(|a| a.to_str()) == Some("catalogue") {
        meshkit::render::print_text(&crate::checks::docs::markdown());
        return Ok(Exit::Ok);
    }
    let m = match meshkit::cli::start(&SPEC, args)? {
        Start::Done(code) => return Ok(code),
        Start::Run(m) => m,
    };
    let invocation = invocation(m)?;
    match &invocation.command {
        Command::Explain { code } => {
            let check = catalogue::find(code).expect("checked when parsed");
            meshkit::render::print_text(&crate::checks::docs::explain(check));
            Ok(Exit::Ok)
        }
        Command::Manifest { files, offline } => {
            let Invocation { kube, output, options, fail_on, .. } = &invocation;
            let review = manifest_run::Review { files, offline: *offline, to_version: options.to_version.as_ref() };
            manifest_run::run(kube, Renderer::new(*output), *fail_on, &review)
        }
        _ => meshkit::cluster::block_on(execute(invocation)),
    }
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

    use meshkit::cli::Parsed;

    fn parse_str(args: &[&str]) -> Result<Invocation> {
        match meshkit::cli::parse(&SPEC, args.iter().map(OsString::from))? {
            Parsed::Run(m) => invocation(m),
            other => panic!("expected a command, got {other:?}"),
        }
    }

    #[test]
    fn flags_and_commands() {
        let inv = parse_str(&[
            "precheck",
            "--to-version",
            "1.31",
            "--revision=1-31-1",
            "--fail-on",
            "warning",
            "--wait",
            "30s",
        ])
        .unwrap();
        assert_eq!(inv.command, Command::Precheck);
        assert_eq!(inv.options.to_version.unwrap().to_string(), "1.31.0");
        assert_eq!(inv.options.revision.as_deref(), Some("1-31-1"));
        assert_eq!(inv.fail_on, FailOn::Warning);
        assert_eq!(inv.wait, Some(Duration::from_secs(30)));
        assert!(matches!(meshkit::cli::parse(&SPEC, Vec::<OsString>::new()).unwrap(), Parsed::Help(_)));
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
