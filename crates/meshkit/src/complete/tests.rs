use super::*;
use crate::spec::{DRY_RUN, OUTPUT, YES, flag};

const SPEC: Spec = Spec {
    plugin: "demo",
    commands: &[
        CommandSpec {
            name: "set",
            aliases: &[],
            about: "Create a tag",
            flags: &[flag("revision", Some('r'), Some(Values::Revisions), "target"), YES],
            args: Values::Tags,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "move",
            aliases: &["mv"],
            about: "Move namespaces",
            flags: &[flag("to", None, Some(Values::RevisionsOrTags), "target"), OUTPUT, DRY_RUN],
            args: Values::Namespaces,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "review",
            aliases: &[],
            about: "Review files",
            flags: &[],
            args: Values::Files,
            ..CommandSpec::BARE
        },
        CommandSpec {
            name: "log",
            aliases: &[],
            about: "The journal",
            flags: &[OUTPUT],
            args: Values::Nothing,
            ..CommandSpec::BARE
        },
    ],
};

fn words(line: &str) -> Vec<String> {
    // The last word is the one being completed; a trailing space starts a new, empty one.
    let mut out: Vec<String> = line.split_whitespace().map(String::from).collect();
    if line.ends_with(' ') || line.is_empty() {
        out.push(String::new());
    }
    out
}

fn fixed(line: &str) -> Vec<String> {
    match plan(&SPEC, &words(line)) {
        Plan::Fixed(c) => c.into_iter().map(|(v, _)| v).collect(),
        live => panic!("{line:?}: {live:?}"),
    }
}

fn live(line: &str) -> (Values, String, Vec<String>) {
    match plan(&SPEC, &words(line)) {
        Plan::Live { values, prefix, exclude } => (values, prefix, exclude),
        fixed => panic!("{line:?}: {fixed:?}"),
    }
}

#[test]
fn commands_first_then_their_arguments() {
    assert_eq!(fixed(""), ["set", "move", "review", "log"]);
    assert_eq!(fixed("m"), ["move"]);
    assert_eq!(live("set "), (Values::Tags, String::new(), vec![]));
    assert_eq!(live("move a b "), (Values::Namespaces, String::new(), vec!["a".into(), "b".into()]));
    assert_eq!(fixed("log "), Vec::<String>::new());
    assert_eq!(live("mv a "), (Values::Namespaces, String::new(), vec!["a".into()]));
    assert_eq!(fixed("frobnicate "), Vec::<String>::new(), "no commands offered after an unknown one");
}

#[test]
fn flags_of_the_command_and_the_global_ones() {
    let set = fixed("set --");
    assert!(set.contains(&"--revision".to_string()) && set.contains(&"--context".to_string()), "{set:?}");
    assert!(!set.contains(&"--to".to_string()), "another command's flag: {set:?}");
    assert_eq!(fixed("set --re"), ["--request-timeout", "--revision"]);
    assert_eq!(fixed("set -r"), ["-r"]);
    assert!(fixed("-").contains(&"-n".to_string()));
}

#[test]
fn flag_values_separate_or_after_equals() {
    assert_eq!(live("set t --revision "), (Values::Revisions, String::new(), vec![]));
    assert_eq!(live("set t -r 1"), (Values::Revisions, String::new(), vec![]));
    assert_eq!(live("move --to=pr"), (Values::RevisionsOrTags, "--to=".into(), vec![]));
    assert_eq!(fixed("move -o "), ["table", "json", "yaml"]);
    assert_eq!(fixed("move --output=j"), ["--output=json"]);
    assert_eq!(live("-n "), (Values::Namespaces, String::new(), vec![]));
    assert_eq!(live("--context "), (Values::Contexts, String::new(), vec![]));
    // A flag value is not mistaken for the command or a positional.
    assert_eq!(live("--context set move "), (Values::Namespaces, String::new(), vec![]));
    assert_eq!(live("move --to x a "), (Values::Namespaces, String::new(), vec!["a".into()]));
    // A switch takes no value.
    assert_eq!(live("move --dry-run a "), (Values::Namespaces, String::new(), vec!["a".into()]));
}

#[test]
fn file_names_only_where_files_are_wanted() {
    let directive = |line: &str| {
        let w = words(line);
        directive_for(&SPEC, &w, &plan(&SPEC, &w))
    };
    assert_eq!(directive("review "), directive::DEFAULT);
    assert_eq!(directive("--kubeconfig "), directive::DEFAULT);
    assert_eq!(directive("log "), directive::NO_FILE_COMP);
    assert_eq!(directive("review --"), directive::NO_FILE_COMP);
    assert_eq!(directive(""), directive::NO_FILE_COMP);
}

#[test]
fn live_lookups_use_the_typed_cluster_flags_and_a_short_timeout() {
    let kube = kube_args(
        "revtag",
        &words("--context=kind set --kubeconfig /k --as me --as-group g1 --istio-namespace mesh x"),
    );
    assert_eq!(kube.context.as_deref(), Some("kind"));
    assert_eq!(kube.kubeconfig.as_deref(), Some("/k"));
    assert_eq!((kube.as_user.as_deref(), kube.as_groups.as_slice()), (Some("me"), &["g1".to_string()][..]));
    assert_eq!(kube.istio_namespace(), "mesh");
    assert_eq!(kube.request_timeout, Some(Duration::from_secs(5)));
    assert_eq!(kube_args("revtag", &words("--request-timeout 30s x")).request_timeout, Some(Duration::from_secs(30)));
}

#[test]
fn the_shim_runs_the_plugin_binary() {
    assert_eq!(shim_name("mesh-backup"), "kubectl_complete-mesh_backup");
    assert!(shim("revtag").contains("exec kubectl-revtag __complete \"$@\""));
    let dir = tempfile::tempdir().unwrap();
    let path = write_shim(dir.path(), "revtag").unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o755);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), shim("revtag"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no staging file left behind");
}

#[test]
fn help_and_spec_stay_in_step() {
    let help = "  --revision R --to T --output F --dry-run --context C --bogus";
    let (unknown, unmentioned) = unlisted_flags(&SPEC, help);
    assert!(unknown.contains(&"bogus".to_string()), "{unknown:?}");
    assert!(!unknown.contains(&"kubeconfig".to_string()), "the shared flags are known: {unknown:?}");
    assert!(unmentioned.contains(&"yes".to_string()) && !unmentioned.contains(&"to".to_string()), "{unmentioned:?}");
}
