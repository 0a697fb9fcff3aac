//! Command line: global kubectl flags anywhere, then a command and its own flags.

use std::ffi::OsString;

use lexopt::{Parser, ValueExt};
use meshkit::args::{Flag, GLOBAL_FLAGS_HELP, KubeArgs, next_arg};
use meshkit::cluster::Cluster;
use meshkit::render::{OUTPUT_FLAGS_HELP, OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};

use crate::list;

const NAME: &str = "kubectl revtag";

const HELP: &str = "\
Istio revisions and revision tags.

Usage:
  kubectl revtag <command> [flags]

Commands:
  list        Revision tags, the revisions they point at, their Istio versions and the namespaces using them

Run `kubectl revtag <command> --help` for a command's flags.
  -h, --help                   Show help
      --version                Show the version";

const LIST_HELP: &str = "\
List revision tags with the revision each points at, that revision's Istio version, and the
namespaces using each tag or revision, including namespaces that use the default revision
through `istio-injection=enabled`. Tags whose revision is no longer installed are marked.

Usage:
  kubectl revtag list [flags]

Aliases: list, ls, show

Examples:
  kubectl revtag list
  kubectl revtag list -o json
  kubectl revtag list --context prod --istio-namespace istio-system";

/// What the user asked for.
#[derive(Debug, PartialEq)]
pub enum Request {
    Help(String),
    Version,
    List { kube: KubeArgs, output: OutputArgs },
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Request> {
    let mut parser = Parser::from_args(args);
    let mut kube = KubeArgs::default();
    let mut output = OutputArgs::default();
    let mut command: Option<String> = None;
    let mut help = false;
    while let Some(arg) = next_arg(&mut parser, NAME)? {
        if kube.consume(&arg, &mut parser)? || output.consume(&arg, &mut parser)? {
            continue;
        }
        match arg {
            Flag::Short('h') => help = true,
            Flag::Long(name) if name == "help" => help = true,
            Flag::Long(name) if name == "version" => return Ok(Request::Version),
            Flag::Value(value) if command.is_none() => {
                command = Some(value.string().map_err(|_| Error::usage("the command is not valid UTF-8", ""))?);
            }
            other => {
                let command = command.as_deref().map(|c| format!("{NAME} {c}")).unwrap_or(NAME.into());
                return Err(other.unexpected(&command));
            }
        }
    }
    match command.as_deref() {
        None => Ok(Request::Help(full_help(HELP))),
        Some("list" | "ls" | "show") if help => Ok(Request::Help(full_help(LIST_HELP))),
        Some("list" | "ls" | "show") => Ok(Request::List { kube, output }),
        Some("help") => Ok(Request::Help(full_help(HELP))),
        Some(other) => Err(Error::usage(
            format!("unknown command {other:?} for \"{NAME}\""),
            "available commands: list; see `kubectl revtag --help`",
        )),
    }
}

fn full_help(text: &str) -> String {
    format!("{text}\n\n{OUTPUT_FLAGS_HELP}\n\n{GLOBAL_FLAGS_HELP}\n")
}

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    match parse(args)? {
        Request::Help(text) => {
            print!("{text}");
            Ok(Exit::Ok)
        }
        Request::Version => {
            println!("kubectl-revtag {}", env!("CARGO_PKG_VERSION"));
            Ok(Exit::Ok)
        }
        Request::List { kube, output } => block_on(async {
            let cluster = Cluster::connect(&kube).await?;
            list::run(&cluster, &kube, Renderer::new(output)).await
        }),
    }
}

fn block_on<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Output(std::io::Error::other(e)))?
        .block_on(work)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshkit::render::Format;

    fn parse_str(args: &[&str]) -> Result<Request> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let Request::List { kube, output } =
            parse_str(&["--context=a", "list", "-o", "json", "--istio-namespace", "mesh"]).unwrap()
        else {
            panic!("expected list")
        };
        assert_eq!(kube.context.as_deref(), Some("a"));
        assert_eq!(kube.istio_namespace(), "mesh");
        assert_eq!(output.format, Format::Json);
    }

    #[test]
    fn aliases_and_help() {
        assert!(matches!(parse_str(&["show"]).unwrap(), Request::List { .. }));
        assert!(matches!(parse_str(&["ls"]).unwrap(), Request::List { .. }));
        let Request::Help(text) = parse_str(&["list", "--help"]).unwrap() else { panic!() };
        assert!(text.contains("kubectl revtag list [flags]") && text.contains("--kubeconfig"));
        let Request::Help(text) = parse_str(&[]).unwrap() else { panic!() };
        assert!(text.contains("Commands:"));
        assert_eq!(parse_str(&["--version"]).unwrap(), Request::Version);
    }

    #[test]
    fn bad_input_is_a_usage_error_with_a_hint() {
        let err = parse_str(&["frobnicate"]).unwrap_err();
        assert_eq!(err.exit(), Exit::Usage);
        assert!(err.hint().unwrap().contains("available commands: list"));
        let err = parse_str(&["list", "--bogus"]).unwrap_err();
        assert_eq!(err.to_string(), "unknown flag --bogus");
        assert_eq!(err.hint().as_deref(), Some("see `kubectl revtag list --help`"));
        let err = parse_str(&["list", "-o", "xml"]).unwrap_err();
        assert_eq!(err.hint().as_deref(), Some("valid formats: table, json, yaml"));
        let err = parse_str(&["list", "extra"]).unwrap_err();
        assert_eq!(err.to_string(), "unexpected argument \"extra\"");
    }
}
