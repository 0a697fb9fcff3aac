//! Command line: the commands and flags declared in `spec.rs`, parsed by `meshkit::cli`, turned
//! into a request.

use std::ffi::OsString;

use meshkit::args::KubeArgs;
use meshkit::cli::{Matches, Start};
use meshkit::cluster::Cluster;
use meshkit::render::{OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};

use crate::commands::{self, Command};
use crate::spec::SPEC;
use crate::tag::{SetRequest, validate_tag};

#[derive(Debug, PartialEq)]
pub struct Invocation {
    pub kube: KubeArgs,
    pub output: OutputArgs,
    pub command: Command,
}

fn tag(m: &Matches) -> Result<String> {
    let tag = m.one_arg("a TAG")?.to_string();
    validate_tag(&tag)?;
    Ok(tag)
}

fn set_request(m: &Matches) -> Result<SetRequest> {
    let tag = tag(m)?;
    let revision = m.value("revision").ok_or_else(|| {
        Error::usage(
            format!("`kubectl revtag {}` needs --revision", m.command.name),
            format!("e.g. `kubectl revtag {} {tag} --revision 1-31-1`", m.command.name),
        )
    })?;
    meshkit::istio::names::validate("revision", revision)?;
    Ok(SetRequest {
        tag,
        revision: revision.to_string(),
        overwrite: m.has("overwrite"),
        auto_inject: m.has("auto-inject-namespaces"),
        take_ownership: m.has("take-ownership"),
    })
}

/// The command a parsed command line asks for, its arguments checked.
pub fn invocation(m: Box<Matches>) -> Result<Invocation> {
    let command = match m.command.name {
        "list" => {
            m.at_most(0, "no arguments")?;
            Command::List
        }
        "revisions" => {
            m.at_most(1, "at most one REVISION")?;
            if let Some(revision) = m.args.first() {
                meshkit::istio::names::validate("revision", revision)?;
            }
            Command::Revisions { revision: m.args.first().cloned() }
        }
        "set" => Command::Set { request: set_request(&m)?, yes: m.has("yes"), dry_run: m.dry_run()? },
        "generate" => Command::Generate { request: set_request(&m)? },
        _ => Command::Remove {
            tag: tag(&m)?,
            yes: m.has("yes"),
            dry_run: m.dry_run()?,
            ignore_not_found: m.has("ignore-not-found"),
            take_ownership: m.has("take-ownership"),
            backup: match m.value("backup") {
                Some(path) => {
                    let path = std::path::PathBuf::from(path);
                    meshkit::args::check_output_path(&path, false)?;
                    Some(path)
                }
                None => None,
            },
        },
    };
    let Matches { kube, output, .. } = *m;
    Ok(Invocation { kube, output, command })
}

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    let m = match meshkit::cli::start(&SPEC, args)? {
        Start::Done(code) => return Ok(code),
        Start::Run(m) => m,
    };
    let Invocation { kube, output, command } = invocation(m)?;
    meshkit::cluster::block_on(async {
        let cluster = Cluster::connect(&kube).await?;
        commands::run(&cluster, &kube, Renderer::new(output), command).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tag::DryRun;
    use meshkit::render::Format;

    use meshkit::cli::Parsed;

    fn parse_str(args: &[&str]) -> Result<Invocation> {
        match meshkit::cli::parse(&SPEC, args.iter().map(OsString::from))? {
            Parsed::Run(m) => invocation(m),
            other => panic!("expected a command, got {other:?}"),
        }
    }

    fn help(args: &[&str]) -> String {
        match meshkit::cli::parse(&SPEC, args.iter().map(OsString::from)).unwrap() {
            Parsed::Help(text) => text,
            other => panic!("expected help, got {other:?}"),
        }
    }

    fn command(args: &[&str]) -> Command {
        parse_str(args).unwrap().command
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let Invocation { kube, output, command } =
            parse_str(&["--context=a", "list", "-o", "json", "--istio-namespace", "mesh"]).unwrap();
        assert_eq!(command, Command::List);
        assert_eq!(kube.context.as_deref(), Some("a"));
        assert_eq!(kube.istio_namespace(), "mesh");
        assert_eq!(output.format, Format::Json);
    }

    #[test]
    fn aliases_and_help() {
        assert_eq!(command(&["show"]), Command::List);
        assert_eq!(command(&["ls"]), Command::List);
        assert!(matches!(command(&["rm", "x"]), Command::Remove { .. }));
        let text = help(&["list", "--help"]);
        assert!(text.contains("kubectl revtag list [flags]") && text.contains("--kubeconfig"));
        assert!(help(&["set", "-h"]).contains("--overwrite"));
        assert!(help(&[]).contains("Commands:"));
        assert!(matches!(meshkit::cli::parse(&SPEC, [OsString::from("--version")]).unwrap(), Parsed::Version));
    }

    #[test]
    fn set_and_its_flags() {
        let Command::Set { request, yes, dry_run } =
            command(&["set", "prod", "-r", "1-31-1", "--overwrite", "-y", "--dry-run=server"])
        else {
            panic!()
        };
        assert_eq!(
            request,
            SetRequest {
                tag: "prod".into(),
                revision: "1-31-1".into(),
                overwrite: true,
                auto_inject: false,
                take_ownership: false
            }
        );
        assert!(yes);
        assert_eq!(dry_run, DryRun::Server);
        let Command::Set { dry_run, .. } = command(&["set", "prod", "--revision=1-31-1", "--dry-run"]) else {
            panic!()
        };
        assert_eq!(dry_run, DryRun::Client);
        assert_eq!(command(&["revisions", "1-31-1"]), Command::Revisions { revision: Some("1-31-1".into()) });
    }

    #[test]
    fn bad_input_is_a_usage_error_with_a_hint() {
        let cases: &[(&[&str], &str)] = &[
            (&["frobnicate"], "unknown command \"frobnicate\" for `kubectl revtag`"),
            (&["list", "--bogus"], "unknown flag --bogus"),
            (&["list", "extra"], "`kubectl revtag list` takes no arguments; unexpected argument \"extra\""),
            (&["set", "prod"], "`kubectl revtag set` needs --revision"),
            (&["set", "--revision", "x"], "`kubectl revtag set` needs a TAG"),
            (&["set", "p", "-r", "Bad_Rev"], "invalid revision name \"Bad_Rev\""),
            (&["list", "-o", "wide"], "unknown output format \"wide\" for `kubectl revtag list`"),
            (&["set", "Prod_1", "-r", "x"], "invalid tag name \"Prod_1\""),
            (&["remove", "prod", "--revision", "x"], "flag --revision does not apply to `kubectl revtag remove`"),
            (&["set", "p", "-r", "x", "--dry-run=maybe"], "invalid --dry-run value \"maybe\""),
            (&["list", "--overwrite"], "flag --overwrite does not apply to `kubectl revtag list`"),
        ];
        for (args, message) in cases {
            let err = parse_str(args).unwrap_err();
            assert_eq!(err.exit(), Exit::Usage, "{args:?}");
            assert_eq!(err.to_string(), *message, "{args:?}");
            assert!(err.hint().is_some(), "{args:?}");
        }
        let long = "a".repeat(64);
        assert!(parse_str(&["set", &long, "-r", "x"]).is_err());
        assert!(parse_str(&["set", &"a".repeat(63), "-r", "x"]).is_ok());
    }
}
