//! Command line: the commands and flags declared in `spec.rs`, parsed by `meshkit::cli`; each
//! command reads its own arguments (before anything is sent), then runs.

use std::ffi::OsString;

use meshkit::cli::Start;
use meshkit::{Error, Exit, Result};

use crate::checks::Stage;
use crate::checks_run::CheckArgs;
use crate::manifest_run::Review;
use crate::proxy_status::Filter;
use crate::spec::SPEC;

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
    let (kube, output) = (&m.kube, m.output);
    match m.command.name {
        "precheck" => crate::checks_run::run(kube, output, &CheckArgs::from_matches(&m, Stage::Precheck)?),
        "verify" => crate::checks_run::run(kube, output, &CheckArgs::from_matches(&m, Stage::Verify)?),
        "version" => crate::version::run(kube, output, &m),
        "proxy-status" => crate::proxy_status::run(kube, output, &Filter::from_matches(&m)?),
        "manifest" => crate::manifest_run::run(kube, output, &Review::from_matches(&m)?),
        "explain" => crate::explain::run(&m),
        other => Err(Error::usage(format!("unknown command {other:?}"), "see `kubectl meshcheck --help`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::checks::report::FailOn;
    use meshkit::cli::{Matches, Parsed};

    fn matches(args: &[&str]) -> Box<Matches> {
        match meshkit::cli::parse(&SPEC, args.iter().map(OsString::from)).unwrap() {
            Parsed::Run(m) => m,
            other => panic!("expected a command, got {other:?}"),
        }
    }

    #[test]
    fn flags_and_commands() {
        let m = matches(&[
            "precheck",
            "--to-version",
            "1.31",
            "--revision=1-31-1",
            "--fail-on",
            "warning",
            "--wait",
            "--timeout",
            "30s",
        ]);
        let args = CheckArgs::from_matches(&m, Stage::Precheck).unwrap();
        assert_eq!(args.options.to_version.unwrap().to_string(), "1.31.0");
        assert_eq!(args.options.revision.as_deref(), Some("1-31-1"));
        assert_eq!(args.fail_on, FailOn::Warning);
        assert_eq!(args.wait, Some(Duration::from_secs(30)));
        let verify = CheckArgs::from_matches(&matches(&["verify", "--wait"]), Stage::Verify).unwrap();
        assert_eq!(verify.wait, Some(Duration::from_secs(300)));
        assert_eq!(CheckArgs::from_matches(&matches(&["verify"]), Stage::Verify).unwrap().wait, None);
        let review = Review::from_matches(&matches(&["manifest", "a.yaml", "-f", "-", "--offline"])).unwrap();
        assert_eq!(review.files, ["-", "a.yaml"]);
        assert!(review.offline);
        let filter = Filter::from_matches(&matches(&["proxy-status", "shop", "-l", "app=web"])).unwrap();
        assert_eq!(filter, Filter { namespaces: vec!["shop".into()], selector: Some("app=web".into()) });
        assert!(matches!(meshkit::cli::parse(&SPEC, Vec::<OsString>::new()).unwrap(), Parsed::Help(_)));
    }

    /// Bad input fails before any request: no kubeconfig is needed to find out.
    #[test]
    fn bad_input() {
        for (args, message) in [
            (vec!["precheck", "--to-version", "banana"], "invalid --to-version \"banana\""),
            (vec!["precheck", "--to-version", "2.0"], "invalid --to-version \"2.0\""),
            (vec!["precheck", "--fail-on", "info"], "invalid --fail-on \"info\""),
            (vec!["verify", "--wait", "--timeout", "soon"], "invalid --timeout \"soon\""),
            (vec!["verify", "--wait", "2m"], "`--wait` takes no value; unexpected argument \"2m\""),
            (vec!["verify", "--timeout", "2m"], "`kubectl meshcheck verify` takes --timeout only with --wait"),
            (vec!["analyse"], "unknown command \"analyse\" for `kubectl meshcheck`"),
            (vec!["version", "extra"], "`kubectl meshcheck version` takes no arguments; unexpected argument \"extra\""),
            (vec!["verify", "extra"], "`kubectl meshcheck verify` takes no arguments; unexpected argument \"extra\""),
            (vec!["version", "-o", "xml"], "unknown output format \"xml\" for `kubectl meshcheck version`"),
            (vec!["version", "--wait", "5m"], "flag --wait does not apply to `kubectl meshcheck version`"),
            (vec!["explain", "MC9999"], "unknown check \"MC9999\""),
            (vec!["manifest"], "`kubectl meshcheck manifest` needs a FILE (or -f -)"),
            (vec!["manifest", "a.yaml", "--to-version", "x"], "invalid --to-version \"x\""),
            (vec!["proxy-status", "Bad_Ns"], "invalid namespace name \"Bad_Ns\""),
        ] {
            let err = run(args.iter().map(OsString::from)).unwrap_err();
            assert_eq!(err.exit(), Exit::Usage, "{args:?}");
            assert_eq!(err.to_string(), message);
            assert!(err.hint().is_some());
        }
    }
}
