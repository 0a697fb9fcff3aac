//! Help text, generated from the spec: the plugin's, and each command's.

use std::fmt::Write as _;

use crate::args::GLOBAL_FLAGS_HELP;
use crate::error::Exit;
use crate::spec::{CommandSpec, FlagSpec, Spec, Values};

/// `REVISION`, `FILE`, `table|json|yaml` …: how a flag's value is shown.
fn value_name(flag: &FlagSpec) -> String {
    match flag.value {
        None if flag.long == "dry-run" => "[=none|client|server]".into(),
        None => String::new(),
        Some(values) => {
            let name = match values {
                Values::Revisions => "REVISION".into(),
                Values::Tags => "TAG".into(),
                Values::RevisionsOrTags => "REV|TAG".into(),
                Values::Files => "FILE".into(),
                Values::Namespaces => "NAMESPACE".into(),
                Values::Contexts => "CONTEXT".into(),
                Values::Words(words) => words.join("|"),
                Values::Nothing => match flag.long {
                    "to-version" => "1.Y".into(),
                    "wait" | "timeout" | "request-timeout" | "stale-after" => "DURATION".into(),
                    "max-concurrent" => "N".into(),
                    other => other.to_ascii_uppercase().replace('-', "_"),
                },
            };
            format!(" {name}")
        }
    }
}

fn flag_lines(flags: &[FlagSpec]) -> String {
    let mut out = String::new();
    for flag in flags {
        let short = flag.short.map_or("    ".to_string(), |c| format!("-{c}, "));
        let left = format!("  {short}--{}{}", flag.long, value_name(flag));
        let _ = writeln!(out, "{left:<34} {}", flag.about);
    }
    out
}

fn exit_lines(codes: &[Exit]) -> String {
    let mut out = String::from("Exit codes:\n");
    for code in codes {
        let _ = writeln!(out, "  {:<3}{}", *code as u8, code.meaning());
    }
    out
}

/// The plugin's own help: its commands, how to get a command's help, global flags.
pub fn plugin_help(spec: &Spec) -> String {
    let about = crate::catalogue::about(spec.plugin);
    let mut out = format!("{about}.\n\nUsage:\n  kubectl {} <command> [flags]\n\nCommands:\n", spec.plugin);
    // The names' column is as wide as the longest name, and always leaves a gap.
    let width = spec.commands.iter().map(|c| c.name.len()).max().unwrap_or(0).max(10) + 2;
    for command in spec.commands {
        let _ = writeln!(out, "  {:<width$}{}", command.name, command.about);
    }
    let _ = write!(
        out,
        "\nRun `kubectl {p} <command> --help` or `kubectl {p} help <command>` for a command's flags,\nexamples and exit codes.\n\n{GLOBAL_FLAGS_HELP}\n  -h, --help                   Show help\n      --version                Show the version\n",
        p = spec.plugin
    );
    out
}

/// One command's help: what it does, usage, aliases, flags, examples, exit codes, global flags.
pub fn command_help(spec: &Spec, command: &CommandSpec) -> String {
    let p = spec.plugin;
    let description = if command.description.is_empty() { command.about } else { command.description };
    let mut out = format!("{description}\n\nUsage:\n  kubectl {p} {} {}[flags]\n", command.name, spaced(command.usage));
    if !command.aliases.is_empty() {
        let _ = writeln!(out, "\nAliases: {}, {}", command.name, command.aliases.join(", "));
    }
    if !command.flags.is_empty() {
        let _ = write!(out, "\nFlags:\n{}", flag_lines(command.flags));
    }
    if !command.examples.is_empty() {
        out.push_str("\nExamples:\n");
        for example in command.examples {
            let _ = writeln!(out, "  {example}");
        }
    }
    let _ = write!(out, "\n{}\n{GLOBAL_FLAGS_HELP}\n", exit_lines(command.exits));
    out
}

fn spaced(usage: &str) -> String {
    if usage.is_empty() { String::new() } else { format!("{usage} ") }
}
