//! Command line: the commands and flags declared in `spec.rs`, parsed by `meshkit::cli`; each
//! command reads its own arguments (before anything is sent), then runs.

use std::ffi::OsString;

use meshkit::cli::Start;
use meshkit::{Error, Exit, Result};

use crate::remove::RemoveArgs;
use crate::set::{SetArgs, SetRequest};
use crate::spec::SPEC;

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    let m = match meshkit::cli::start(&SPEC, args)? {
        Start::Done(code) => return Ok(code),
        Start::Run(m) => m,
    };
    let (kube, output) = (&m.kube, m.output);
    match m.command.name {
        "list" => crate::list::run(kube, output, &m),
        "revisions" => crate::revisions::run(kube, output, &m),
        "set" => crate::set::run(kube, output, &SetArgs::from_matches(&m)?),
        "generate" => crate::generate::run(kube, output, &SetRequest::from_matches(&m)?),
        "remove" => crate::remove::run(kube, output, &RemoveArgs::from_matches(&m)?),
        other => Err(Error::usage(format!("unknown command {other:?}"), "see `kubectl revtag --help`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshkit::cli::{DryRun, Matches, Parsed};
    use meshkit::render::Format;

    fn matches(args: &[&str]) -> Result<Box<Matches>> {
        match meshkit::cli::parse(&SPEC, args.iter().map(OsString::from))? {
            Parsed::Run(m) => Ok(m),
            other => panic!("expected a command, got {other:?}"),
        }
    }

    fn help(args: &[&str]) -> String {
        match meshkit::cli::parse(&SPEC, args.iter().map(OsString::from)).unwrap() {
            Parsed::Help(text) => text,
            other => panic!("expected help, got {other:?}"),
        }
    }

    /// Bad input fails before any request: no kubeconfig is needed to find out.
    fn usage(args: &[&str]) -> Error {
        match run(args.iter().map(OsString::from)) {
            Err(err @ Error::Usage { .. }) => err,
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let m = matches(&["--context=a", "list", "-o", "json", "--istio-namespace", "mesh"]).unwrap();
        assert_eq!(m.command.name, "list");
        assert_eq!(m.kube.context.as_deref(), Some("a"));
        assert_eq!(m.kube.istio_namespace(), "mesh");
        assert_eq!(m.output.format, Format::Json);
    }

    #[test]
    fn aliases_and_help() {
        assert_eq!(matches(&["show"]).unwrap().command.name, "list");
        assert_eq!(matches(&["ls"]).unwrap().command.name, "list");
        assert_eq!(matches(&["rm", "x"]).unwrap().command.name, "remove");
        let text = help(&["list", "--help"]);
        assert!(text.contains("kubectl revtag list [flags]") && text.contains("--kubeconfig"));
        assert!(help(&["set", "-h"]).contains("--overwrite"));
        assert!(help(&[]).contains("Commands:"));
        assert!(matches!(meshkit::cli::parse(&SPEC, [OsString::from("--version")]).unwrap(), Parsed::Version));
    }

    #[test]
    fn set_and_its_flags() {
        let m = matches(&["set", "prod", "-r", "1-31-1", "--overwrite", "-y", "--dry-run=server"]).unwrap();
        let SetArgs { request, yes, dry_run } = SetArgs::from_matches(&m).unwrap();
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
        let m = matches(&["set", "prod", "--revision=1-31-1", "--dry-run"]).unwrap();
        assert_eq!(SetArgs::from_matches(&m).unwrap().dry_run, DryRun::Client);
        let m = matches(&["remove", "prod", "--ignore-not-found", "--dry-run=server"]).unwrap();
        let remove = RemoveArgs::from_matches(&m).unwrap();
        assert!(remove.ignore_not_found && remove.dry_run == DryRun::Server && remove.backup.is_none());
    }

    #[test]
    fn bad_input_is_a_usage_error_with_a_hint() {
        let cases: &[(&[&str], &str)] = &[
            (&["frobnicate"], "unknown command \"frobnicate\" for `kubectl revtag`"),
            (&["list", "--bogus"], "unknown flag --bogus"),
            (&["list", "extra"], "`kubectl revtag list` takes no arguments; unexpected argument \"extra\""),
            (
                &["revisions", "a", "b"],
                "`kubectl revtag revisions` takes at most one REVISION; unexpected argument \"b\"",
            ),
            (&["revisions", "Bad_Rev"], "invalid revision name \"Bad_Rev\""),
            (&["set", "prod"], "`kubectl revtag set` needs --revision"),
            (&["generate", "prod"], "`kubectl revtag generate` needs --revision"),
            (&["set", "--revision", "x"], "`kubectl revtag set` needs a TAG"),
            (&["set", "p", "-r", "Bad_Rev"], "invalid revision name \"Bad_Rev\""),
            (&["list", "-o", "wide"], "unknown output format \"wide\" for `kubectl revtag list`"),
            (&["set", "Prod_1", "-r", "x"], "invalid tag name \"Prod_1\""),
            (&["remove", "prod", "--revision", "x"], "flag --revision does not apply to `kubectl revtag remove`"),
            (&["set", "p", "-r", "x", "--dry-run=maybe"], "invalid --dry-run value \"maybe\""),
            (&["list", "--overwrite"], "flag --overwrite does not apply to `kubectl revtag list`"),
        ];
        for (args, message) in cases {
            let err = usage(args);
            assert_eq!(err.exit(), Exit::Usage, "{args:?}");
            assert_eq!(err.to_string(), *message, "{args:?}");
            assert!(err.hint().is_some(), "{args:?}");
        }
        let long = "a".repeat(64);
        assert_eq!(usage(&["set", &long, "-r", "x"]).exit(), Exit::Usage);
        assert!(SetArgs::from_matches(&matches(&["set", &"a".repeat(63), "-r", "x"]).unwrap()).is_ok());
    }
}
