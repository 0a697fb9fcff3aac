//! Command line: global kubectl flags anywhere, then a command, its arguments and its flags.

use std::ffi::OsString;

use lexopt::{Parser, ValueExt};
use meshkit::args::{Flag, GLOBAL_FLAGS_HELP, KubeArgs, next_arg};
use meshkit::cluster::Cluster;
use meshkit::render::{OUTPUT_FLAGS_HELP, OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};

use crate::commands;
use crate::tag::{DryRun, SetRequest, validate_tag};

const NAME: &str = "kubectl revtag";

const HELP: &str = "\
Usage:
  kubectl revtag <command> [flags]

Commands:
  list        Tags, the revisions they point at, their Istio versions and the namespaces using them
  revisions   Every installed revision side by side: istiod, webhooks, version, tags, users
  set         Create a tag or point it at another revision
  remove      Remove a tag
  generate    Print the manifests of a tag without changing anything
  completion  Print or install the kubectl completion shim (kubectl_complete-revtag)

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
  kubectl revtag list -o json";

const REVISIONS_HELP: &str = "\
Show every installed control-plane revision: its istiod Deployments and ready replicas, injector
and validating webhooks, Istio version, the tags pointing at it, whether it is the default, and
how many namespaces and pods use it.

Usage:
  kubectl revtag revisions [REVISION] [flags]

Examples:
  kubectl revtag revisions
  kubectl revtag revisions 1-31-1 -o yaml";

const SET_HELP: &str = "\
Create revision tag TAG pointing at REVISION, or point an existing tag at another revision
(--overwrite). Writes the tag's injector webhook, its Service and, for `default`, the default
validating webhook, derived from the revision's own injector, with server-side apply.

Refuses a tag named like a revision, an unknown revision, and any change that would make two
webhooks inject the same pod. Moving `default` asks first (or needs --yes); a legacy injector is
switched off only after the new objects are in place, and `remove default` switches it back on.

Usage:
  kubectl revtag set TAG --revision REVISION [flags]

Flags:
  -r, --revision REVISION      The revision the tag points at (required)
      --overwrite              Point an existing tag at another revision
  -y, --yes                    Do not ask for confirmation
      --dry-run[=client|server]  Show what would change; `server` has the apiserver validate it
      --auto-inject-namespaces Also inject pods in unlabelled namespaces (default tag only)

Examples:
  kubectl revtag set prod-canary --revision 1-31-1
  kubectl revtag set prod-stable --revision 1-31-1 --overwrite
  kubectl revtag set default --revision 1-31-1 --overwrite --yes";

const REMOVE_HELP: &str = "\
Remove revision tag TAG: its injector webhook, its Service, and for `default` the default
validating webhook. Asks first (or needs --yes) while namespaces or pods still select the tag.

Usage:
  kubectl revtag remove TAG [flags]

Aliases: remove, rm, delete

Flags:
  -y, --yes                    Remove even while namespaces or pods use the tag
      --dry-run[=client|server]  Show what would be removed
      --ignore-not-found       Succeed when the tag does not exist";

const GENERATE_HELP: &str = "\
Print the objects `set` would write for TAG as multi-document YAML (or a JSON List with
-o json). Changes nothing.

Usage:
  kubectl revtag generate TAG --revision REVISION [flags]

Flags:
  -r, --revision REVISION      The revision the tag points at (required)
      --overwrite              Generate even if the tag points elsewhere today
      --auto-inject-namespaces Also inject pods in unlabelled namespaces (default tag only)";

/// What the user asked for.
#[derive(Debug, PartialEq)]
pub enum Request {
    Help(String),
    Version,
    Run(Box<Invocation>),
}

#[derive(Debug, PartialEq)]
pub struct Invocation {
    pub kube: KubeArgs,
    pub output: OutputArgs,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    List,
    Revisions { revision: Option<String> },
    Set { request: SetRequest, yes: bool, dry_run: DryRun },
    Generate { request: SetRequest },
    Remove { tag: String, yes: bool, dry_run: DryRun, ignore_not_found: bool },
}

/// Flags of the mutating commands; which ones a command accepts is checked after parsing.
#[derive(Debug, Default)]
struct CommandFlags {
    revision: Option<String>,
    overwrite: bool,
    yes: bool,
    dry_run: Option<DryRun>,
    auto_inject: bool,
    ignore_not_found: bool,
    seen: Vec<&'static str>,
}

impl CommandFlags {
    fn consume(&mut self, arg: &Flag, parser: &mut Parser) -> Result<bool> {
        let name = match arg {
            Flag::Short('r') => "--revision",
            Flag::Short('y') => "--yes",
            Flag::Long(long) => match long.as_str() {
                "revision" => "--revision",
                "overwrite" => "--overwrite",
                "yes" => "--yes",
                "dry-run" => "--dry-run",
                "auto-inject-namespaces" => "--auto-inject-namespaces",
                "ignore-not-found" => "--ignore-not-found",
                _ => return Ok(false),
            },
            _ => return Ok(false),
        };
        match name {
            "--revision" => self.revision = Some(meshkit::args::name_value(parser, "--revision", "revision")?),
            "--overwrite" => self.overwrite = true,
            "--yes" => self.yes = true,
            "--auto-inject-namespaces" => self.auto_inject = true,
            "--ignore-not-found" => self.ignore_not_found = true,
            _ => {
                let mode = parser
                    .optional_value()
                    .map(|v| v.string())
                    .transpose()
                    .map_err(|_| Error::usage("--dry-run value is not UTF-8", ""))?;
                self.dry_run = Some(match mode.as_deref() {
                    None | Some("client") => DryRun::Client,
                    Some("server") => DryRun::Server,
                    Some("none") => DryRun::None,
                    Some(other) => {
                        return Err(Error::usage(
                            format!("invalid --dry-run value {other:?}"),
                            "valid values: client, server, none",
                        ));
                    }
                });
            }
        }
        self.seen.push(name);
        Ok(true)
    }

    fn only(&self, command: &str, allowed: &[&str]) -> Result<()> {
        match self.seen.iter().find(|f| !allowed.contains(f)) {
            Some(flag) => Err(Error::usage(
                format!("flag {flag} does not apply to `{NAME} {command}`"),
                format!("see `{NAME} {command} --help`"),
            )),
            None => Ok(()),
        }
    }

    fn set_request(&self, command: &str, tag: String) -> Result<SetRequest> {
        let revision = self.revision.clone().ok_or_else(|| {
            Error::usage(
                format!("`{NAME} {command}` needs --revision"),
                format!("e.g. `{NAME} {command} {tag} --revision 1-31-1`"),
            )
        })?;
        Ok(SetRequest { tag, revision, overwrite: self.overwrite, auto_inject: self.auto_inject })
    }
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Request> {
    let mut parser = Parser::from_args(args);
    let mut kube = KubeArgs::default();
    let mut output = OutputArgs::default();
    let mut flags = CommandFlags::default();
    let mut words: Vec<String> = Vec::new();
    let mut help = false;
    while let Some(arg) = next_arg(&mut parser, NAME)? {
        if kube.consume(&arg, &mut parser)? || output.consume(&arg, &mut parser)? || flags.consume(&arg, &mut parser)? {
            continue;
        }
        match arg {
            Flag::Short('h') => help = true,
            Flag::Long(name) if name == "help" => help = true,
            Flag::Long(name) if name == "version" => return Ok(Request::Version),
            Flag::Value(value) => {
                words.push(value.string().map_err(|_| Error::usage("arguments must be valid UTF-8", ""))?)
            }
            other => {
                let command = words.first().map(|c| format!("{NAME} {c}")).unwrap_or(NAME.into());
                return Err(other.unexpected(&command));
            }
        }
    }
    let Some((command, rest)) = words.split_first() else { return Ok(Request::Help(top_help())) };
    let command = command.as_str();
    let canonical = match command {
        "list" | "ls" | "show" => "list",
        "remove" | "rm" | "delete" => "remove",
        "revisions" | "revision" => "revisions",
        "set" | "generate" | "help" => command,
        other => {
            return Err(Error::usage(
                format!("unknown command {other:?} for \"{NAME}\""),
                "available commands: list, revisions, set, remove, generate; see `kubectl revtag --help`",
            ));
        }
    };
    if help || canonical == "help" {
        let text = match canonical {
            "list" => LIST_HELP,
            "revisions" => REVISIONS_HELP,
            "set" => SET_HELP,
            "remove" => REMOVE_HELP,
            "generate" => GENERATE_HELP,
            _ => return Ok(Request::Help(top_help())),
        };
        return Ok(Request::Help(full_help(text)));
    }
    let at_most = |n: usize, what: &str| -> Result<()> {
        match rest.get(n) {
            Some(extra) => Err(Error::usage(
                format!("unexpected argument {extra:?}"),
                format!("`{NAME} {canonical}` takes {what}"),
            )),
            None => Ok(()),
        }
    };
    let tag = || -> Result<String> {
        let tag = rest.first().cloned().ok_or_else(|| {
            Error::usage(format!("`{NAME} {canonical}` needs a TAG"), format!("see `{NAME} {canonical} --help`"))
        })?;
        validate_tag(&tag)?;
        Ok(tag)
    };
    let command = match canonical {
        "list" => {
            flags.only("list", &[])?;
            at_most(0, "no arguments")?;
            Command::List
        }
        "revisions" => {
            flags.only("revisions", &[])?;
            at_most(1, "at most one REVISION")?;
            if let Some(revision) = rest.first() {
                meshkit::istio::names::validate("revision", revision)?;
            }
            Command::Revisions { revision: rest.first().cloned() }
        }
        "set" => {
            flags.only("set", &["--revision", "--overwrite", "--yes", "--dry-run", "--auto-inject-namespaces"])?;
            at_most(1, "one TAG")?;
            let request = flags.set_request("set", tag()?)?;
            Command::Set { request, yes: flags.yes, dry_run: flags.dry_run.unwrap_or(DryRun::None) }
        }
        "generate" => {
            flags.only("generate", &["--revision", "--overwrite", "--auto-inject-namespaces"])?;
            at_most(1, "one TAG")?;
            Command::Generate { request: flags.set_request("generate", tag()?)? }
        }
        _ => {
            flags.only("remove", &["--yes", "--dry-run", "--ignore-not-found"])?;
            at_most(1, "one TAG")?;
            Command::Remove {
                tag: tag()?,
                yes: flags.yes,
                dry_run: flags.dry_run.unwrap_or(DryRun::None),
                ignore_not_found: flags.ignore_not_found,
            }
        }
    };
    Ok(Request::Run(Box::new(Invocation { kube, output, command })))
}

fn full_help(text: &str) -> String {
    format!("{text}\n\n{OUTPUT_FLAGS_HELP}\n\n{GLOBAL_FLAGS_HELP}\n")
}

fn top_help() -> String {
    full_help(&format!("{}.\n\n{HELP}", meshkit::catalogue::about("revtag")))
}

/// Every help text, for the test that keeps completion in step with them.
#[cfg(test)]
pub fn all_help() -> String {
    [HELP, LIST_HELP, REVISIONS_HELP, SET_HELP, REMOVE_HELP, GENERATE_HELP, OUTPUT_FLAGS_HELP, GLOBAL_FLAGS_HELP]
        .join("\n")
        + meshkit::complete::COMPLETION_HELP
}

pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit> {
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(done) = meshkit::complete::dispatch(&crate::completion::SPEC, &args) {
        return done;
    }
    match parse(args)? {
        Request::Help(text) => {
            meshkit::render::print_text(&text);
            Ok(Exit::Ok)
        }
        Request::Version => {
            meshkit::render::print_text(&format!("kubectl-revtag {}\n", env!("CARGO_PKG_VERSION")));
            Ok(Exit::Ok)
        }
        Request::Run(invocation) => meshkit::cluster::block_on(async {
            let Invocation { kube, output, command } = *invocation;
            let cluster = Cluster::connect(&kube).await?;
            commands::run(&cluster, &kube, Renderer::new(output), command).await
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshkit::render::Format;

    fn parse_str(args: &[&str]) -> Result<Request> {
        parse(args.iter().map(OsString::from))
    }

    fn command(args: &[&str]) -> Command {
        match parse_str(args).unwrap() {
            Request::Run(invocation) => invocation.command,
            other => panic!("expected a command, got {other:?}"),
        }
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let Request::Run(invocation) =
            parse_str(&["--context=a", "list", "-o", "json", "--istio-namespace", "mesh"]).unwrap()
        else {
            panic!("expected list")
        };
        let Invocation { kube, output, command } = *invocation;
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
        let Request::Help(text) = parse_str(&["list", "--help"]).unwrap() else { panic!() };
        assert!(text.contains("kubectl revtag list [flags]") && text.contains("--kubeconfig"));
        let Request::Help(text) = parse_str(&["set", "-h"]).unwrap() else { panic!() };
        assert!(text.contains("--overwrite"));
        let Request::Help(text) = parse_str(&[]).unwrap() else { panic!() };
        assert!(text.contains("Commands:"));
        assert_eq!(parse_str(&["--version"]).unwrap(), Request::Version);
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
            SetRequest { tag: "prod".into(), revision: "1-31-1".into(), overwrite: true, auto_inject: false }
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
            (&["frobnicate"], "unknown command \"frobnicate\" for \"kubectl revtag\""),
            (&["list", "--bogus"], "unknown flag --bogus"),
            (&["list", "extra"], "unexpected argument \"extra\""),
            (&["set", "prod"], "`kubectl revtag set` needs --revision"),
            (&["set", "--revision", "x"], "`kubectl revtag set` needs a TAG"),
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
