use super::*;
use crate::error::Exit;
use crate::spec::{DRY_RUN, OUTPUT, YES};

const TO: FlagSpec = FlagSpec { long: "to", short: None, value: Some(Values::RevisionsOrTags), about: "where to" };
const WAIT: FlagSpec = FlagSpec { long: "wait", short: None, value: None, about: "follow the rollouts" };
const WIDE: FlagSpec = FlagSpec {
    long: "output",
    short: Some('o'),
    value: Some(Values::Words(&["table", "wide", "json", "yaml"])),
    about: "",
};

static SPEC: Spec = Spec {
    plugin: "meshmigrate",
    commands: &[
        CommandSpec {
            name: "namespace",
            aliases: &["ns"],
            about: "move namespaces",
            flags: &[TO, WAIT, DRY_RUN, YES, OUTPUT],
            usage: "NS… --to REV|TAG",
            examples: &["kubectl meshmigrate namespace shop --to prod-canary"],
            exits: &[Exit::Ok, Exit::Usage, Exit::Incomplete],
            ..CommandSpec::BARE
        },
        CommandSpec { name: "status", about: "per namespace", flags: &[WIDE], ..CommandSpec::BARE },
        CommandSpec { name: "log", about: "the journal", ..CommandSpec::BARE },
    ],
};

fn parse_words(words: &[&str]) -> Result<Parsed> {
    parse(&SPEC, words.iter().map(OsString::from))
}

fn run(words: &[&str]) -> Matches {
    match parse_words(words).unwrap() {
        Parsed::Run(m) => *m,
        other => panic!("{other:?}"),
    }
}

fn usage_error(words: &[&str]) -> (String, String) {
    let err = parse_words(words).unwrap_err();
    assert_eq!(err.exit(), Exit::Usage, "{err}");
    (err.to_string(), err.hint().unwrap_or_default())
}

#[test]
fn flags_anywhere_aliases_and_values() {
    let m = run(&["--context", "prod", "ns", "shop", "--to=prod-canary", "--wait", "-o", "json", "web"]);
    assert_eq!(m.command.name, "namespace");
    assert_eq!(m.args, ["shop", "web"]);
    assert_eq!(m.value("to"), Some("prod-canary"));
    assert!(m.has("wait") && !m.has("yes"));
    assert_eq!(m.kube.context.as_deref(), Some("prod"));
    assert_eq!(m.output.format, Format::Json);
}

#[test]
fn dry_run_means_what_kubectl_means() {
    assert_eq!(run(&["namespace", "a"]).dry_run().unwrap(), DryRun::None);
    assert_eq!(run(&["namespace", "a", "--dry-run"]).dry_run().unwrap(), DryRun::Client);
    assert_eq!(run(&["namespace", "a", "--dry-run=server"]).dry_run().unwrap(), DryRun::Server);
    assert_eq!(run(&["namespace", "a", "--dry-run=client"]).dry_run().unwrap(), DryRun::Client);
    assert!(run(&["namespace", "a", "--dry-run=maybe"]).dry_run().is_err());
}

#[test]
fn one_phrasing_for_every_refusal() {
    let (message, hint) = usage_error(&["frobnicate"]);
    assert_eq!(message, "unknown command \"frobnicate\" for `kubectl meshmigrate`");
    assert_eq!(hint, "available commands: namespace, status, log");
    let (message, _) = usage_error(&["status", "--nope"]);
    assert_eq!(message, "unknown flag --nope");
    let (message, hint) = usage_error(&["log", "--wait"]);
    assert_eq!(message, "flag --wait does not apply to `kubectl meshmigrate log`");
    assert_eq!(hint, "`kubectl meshmigrate log` takes only the global flags");
    let (message, hint) = usage_error(&["status", "--to", "x"]);
    assert!(message.contains("does not apply") && hint.contains("--output"), "{hint}");
    let (message, _) = usage_error(&["log", "-o", "json"]);
    assert!(message.contains("-o json does not apply"), "{message}");
    let (message, hint) = usage_error(&["namespace", "a", "-o", "wide"]);
    assert!(message.contains("unknown output format \"wide\"") && hint == "valid formats: table, json, yaml");
    assert_eq!(run(&["status", "-o", "wide"]).output.format, Format::Table);
    let (message, _) = usage_error(&["namespace", "a", "--to"]);
    assert!(message.contains("--to needs a value"), "{message}");
}

#[test]
fn help_for_the_plugin_and_each_command() {
    for words in [&["namespace", "--help"][..], &["help", "namespace"], &["ns", "-h"]] {
        let Parsed::Help(text) = parse_words(words).unwrap() else { panic!("{words:?}") };
        assert!(text.contains("Usage:\n  kubectl meshmigrate namespace NS… --to REV|TAG [flags]"), "{text}");
        assert!(text.contains("      --to REV|TAG"), "{text}");
        assert!(text.contains("      --dry-run[=none|client|server]"), "{text}");
        assert!(text.contains("Aliases: namespace, ns"));
        assert!(text.contains("  7  stopped before the work finished"), "{text}");
        assert!(!text.contains("  3  "), "only the codes it uses");
        assert!(text.contains("kubectl meshmigrate namespace shop --to prod-canary"));
    }
    let Parsed::Help(top) = parse_words(&[]).unwrap() else { panic!() };
    assert!(top.contains("  namespace   move namespaces") && top.contains("  log         the journal"), "{top}");
    assert!(matches!(parse_words(&["help"]).unwrap(), Parsed::Help(_)));
    assert!(matches!(parse_words(&["--version"]).unwrap(), Parsed::Version));
    let (message, _) = usage_error(&["help", "proxy-status"]);
    assert!(message.contains("unknown command \"proxy-status\""));
    let (message, _) = usage_error(&["proxy-status", "--help"]);
    assert!(message.contains("unknown command"), "a command that does not exist has no help");
}

#[test]
fn long_command_names_keep_a_gap_before_their_description() {
    static LONG: Spec = Spec {
        plugin: "meshcheck",
        commands: &[
            CommandSpec { name: "verify", about: "after", ..CommandSpec::BARE },
            CommandSpec { name: "proxy-status", about: "which istiod", ..CommandSpec::BARE },
        ],
    };
    let text = help::plugin_help(&LONG);
    assert!(text.contains("  verify        after\n") && text.contains("  proxy-status  which istiod\n"), "{text}");
}

#[test]
fn positional_helpers() {
    let m = run(&["namespace"]);
    assert!(
        m.one_arg("a NAMESPACE").unwrap_err().to_string().contains("`kubectl meshmigrate namespace` needs a NAMESPACE")
    );
    assert!(run(&["namespace", "a", "b"]).at_most(1, "one NAMESPACE").is_err());
    assert_eq!(run(&["namespace", "a"]).one_arg("a NAMESPACE").unwrap(), "a");
}
