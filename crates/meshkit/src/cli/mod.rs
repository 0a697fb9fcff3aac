//! One command-line shape for every plugin, derived from its [`Spec`]: the same declarations
//! drive parsing, `--help` (the plugin's and each command's), `help <command>`, shell completion
//! and the usage errors. A flag is declared once, in the spec.
//!
//! Unknown commands, unknown flags and flags that do not apply to the command are refused with
//! one phrasing and exit code 2 ([`crate::error::Exit::Usage`]), before anything is sent.

use std::collections::BTreeMap;
use std::ffi::OsString;

use lexopt::{Parser, ValueExt};

use crate::args::{Flag, KubeArgs, next_arg};
use crate::error::{Error, Result};
use crate::render::{Format, OutputArgs};
use crate::spec::{CommandSpec, FlagSpec, GLOBAL_FLAGS, Spec, Values};

mod help;

pub use help::{command_help, plugin_help};

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Help text to print (exit 0).
    Help(String),
    /// `--version`.
    Version,
    Run(Box<Matches>),
}

/// A parsed command line: the command, its positional arguments and the flags given.
#[derive(Debug)]
pub struct Matches {
    pub command: &'static CommandSpec,
    pub args: Vec<String>,
    pub kube: KubeArgs,
    pub output: OutputArgs,
    values: BTreeMap<&'static str, Vec<String>>,
    plugin: &'static str,
}

/// kubectl's `--dry-run` values; a bare `--dry-run` means `client`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DryRun {
    #[default]
    None,
    Client,
    Server,
}

/// Where a plugin's command line leads: answered already, or a command to run.
#[derive(Debug)]
pub enum Start {
    /// Completion, help or the version was printed: exit with this.
    Done(crate::error::Exit),
    Run(Box<Matches>),
}

/// The prologue every plugin shares: `__complete` and `completion`, help (`--help`, `-h`,
/// `help <command>`, no command), `--version` (every plugin has the workspace's version), or the
/// parsed command to run.
pub fn start(spec: &'static Spec, args: impl IntoIterator<Item = OsString>) -> Result<Start> {
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(done) = crate::complete::dispatch(spec, &args) {
        return done.map(Start::Done);
    }
    match parse(spec, args)? {
        Parsed::Help(text) => crate::render::print_text(&text),
        Parsed::Version => {
            crate::render::print_text(&format!("kubectl-{} {}\n", spec.plugin, env!("CARGO_PKG_VERSION")))
        }
        Parsed::Run(m) => return Ok(Start::Run(m)),
    }
    Ok(Start::Done(crate::error::Exit::Ok))
}

impl DryRun {
    /// Client or server: nothing is persisted.
    pub fn is_dry(self) -> bool {
        self != DryRun::None
    }

    /// What a report line starts with, so that a dry run never reads like a change.
    pub fn prefix(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::Client => "(dry run) ",
            DryRun::Server => "(server dry run) ",
        }
    }

    /// The flag's value as written (`none`, `client`, `server`), for `-o json|yaml`.
    pub fn word(self) -> &'static str {
        match self {
            DryRun::None => "none",
            DryRun::Client => "client",
            DryRun::Server => "server",
        }
    }
}

impl Matches {
    /// Whether the switch or flag `long` was given.
    pub fn has(&self, long: &str) -> bool {
        self.values.contains_key(long)
    }

    /// The last value given for `long`.
    pub fn value(&self, long: &str) -> Option<&str> {
        self.values.get(long).and_then(|v| v.last()).map(String::as_str)
    }

    /// Every value given for `long`, in order.
    pub fn values(&self, long: &str) -> &[String] {
        self.values.get(long).map_or(&[], Vec::as_slice)
    }

    /// `--dry-run[=none|client|server]`.
    pub fn dry_run(&self) -> Result<DryRun> {
        match self.value("dry-run") {
            None if !self.has("dry-run") => Ok(DryRun::None),
            None | Some("") | Some("client") => Ok(DryRun::Client),
            Some("server") => Ok(DryRun::Server),
            Some("none") => Ok(DryRun::None),
            Some(other) => {
                Err(Error::usage(format!("invalid --dry-run value {other:?}"), "valid values: none, client, server"))
            }
        }
    }

    /// The one positional argument the command needs, named `what` in the error.
    pub fn one_arg(&self, what: &str) -> Result<&str> {
        match self.args.as_slice() {
            [one] => Ok(one),
            [] => Err(self.usage(format!("needs {what}"))),
            [_, extra, ..] => Err(self.usage(format!("takes one {what}; unexpected argument {extra:?}"))),
        }
    }

    /// At most `n` positional arguments.
    pub fn at_most(&self, n: usize, what: &str) -> Result<()> {
        match self.args.get(n) {
            Some(extra) => Err(self.usage(format!("takes {what}; unexpected argument {extra:?}"))),
            None => Ok(()),
        }
    }

    /// A usage error about this command: "`kubectl P CMD` MESSAGE", hint: its help.
    pub fn usage(&self, message: String) -> Error {
        Error::usage(format!("`kubectl {} {}` {message}", self.plugin(), self.command.name), self.see())
    }

    /// `see `kubectl P CMD --help``.
    pub fn see(&self) -> String {
        format!("see `kubectl {} {} --help`", self.plugin(), self.command.name)
    }

    fn plugin(&self) -> &'static str {
        self.plugin
    }
}

/// Finds a command by name or alias.
pub fn find_command<'a>(spec: &'a Spec, word: &str) -> Option<&'a CommandSpec> {
    spec.commands.iter().find(|c| c.name == word || c.aliases.contains(&word))
}

fn command_names(spec: &Spec) -> String {
    spec.commands.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
}

/// A flag of some command of the plugin, by its long or short name.
fn any_flag(spec: &Spec, flag: &Flag) -> Option<&'static FlagSpec> {
    spec.commands.iter().flat_map(|c| c.flags.iter()).find(|f| matches_flag(f, flag))
}

fn matches_flag(spec: &FlagSpec, flag: &Flag) -> bool {
    match flag {
        Flag::Long(name) => spec.long == name,
        Flag::Short(c) => spec.short == Some(*c),
        Flag::Value(_) => false,
    }
}

fn shown(flag: &Flag) -> String {
    match flag {
        Flag::Long(name) => format!("--{name}"),
        Flag::Short(c) => format!("-{c}"),
        Flag::Value(v) => v.to_string_lossy().into_owned(),
    }
}

/// Parses a plugin's command line. `completion` and `__complete` are handled before this (see
/// [`crate::complete::dispatch`]).
pub fn parse(spec: &'static Spec, args: impl IntoIterator<Item = OsString>) -> Result<Parsed> {
    let plugin = spec.plugin;
    let name = format!("kubectl {plugin}");
    let mut parser = Parser::from_args(args);
    let mut kube = KubeArgs { plugin, ..KubeArgs::default() };
    let mut words: Vec<String> = Vec::new();
    let mut given: Vec<(&'static FlagSpec, String, Option<String>)> = Vec::new();
    let (mut help, mut output, mut no_headers) = (false, None::<String>, false);
    while let Some(arg) = next_arg(&mut parser, &name)? {
        if kube.consume(&arg, &mut parser)? {
            continue;
        }
        match &arg {
            Flag::Short('h') => help = true,
            Flag::Long(l) if l == "help" => help = true,
            Flag::Long(l) if l == "version" => return Ok(Parsed::Version),
            Flag::Short('o') => output = Some(crate::args::value(&mut parser, "-o")?),
            Flag::Long(l) if l == "output" => output = Some(crate::args::value(&mut parser, "--output")?),
            Flag::Long(l) if l == "no-headers" => no_headers = true,
            Flag::Value(v) => {
                words.push(v.clone().string().map_err(|_| Error::usage("arguments must be valid UTF-8", ""))?);
            }
            flag => {
                let Some(declared) = any_flag(spec, flag) else {
                    return Err(Error::usage(format!("unknown flag {}", shown(flag)), format!("see `{name} --help`")));
                };
                let value = match declared.value {
                    _ if declared.long == "dry-run" => parser
                        .optional_value()
                        .map(|v| v.string())
                        .transpose()
                        .map_err(|_| Error::usage("--dry-run value is not UTF-8", ""))?,
                    Some(_) => Some(crate::args::value(&mut parser, &format!("--{}", declared.long))?),
                    None => None,
                };
                given.push((declared, shown(flag), value));
            }
        }
    }
    let mut words = words.into_iter();
    let first = words.next();
    let (command, help) = match first.as_deref() {
        None => return Ok(Parsed::Help(plugin_help(spec))),
        Some("help") => match words.next() {
            None => return Ok(Parsed::Help(plugin_help(spec))),
            Some(word) => (word, true),
        },
        Some(word) => (word.to_string(), help),
    };
    let Some(command) = find_command(spec, &command) else {
        return Err(Error::usage(
            format!("unknown command {command:?} for `{name}`"),
            format!("available commands: {}", command_names(spec)),
        ));
    };
    if help {
        return Ok(Parsed::Help(command_help(spec, command)));
    }
    for (flag, as_typed, _) in &given {
        if !command.flags.iter().any(|f| std::ptr::eq(f, *flag) || f.long == flag.long) {
            return Err(not_applicable(spec, command, as_typed));
        }
    }
    let output = output_args(spec, command, output, no_headers)?;
    let mut values: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for (flag, _, value) in given {
        values.entry(flag.long).or_default().push(value.unwrap_or_default());
    }
    Ok(Parsed::Run(Box::new(Matches { command, args: words.collect(), kube, output, values, plugin })))
}

fn not_applicable(spec: &Spec, command: &CommandSpec, flag: &str) -> Error {
    let own: Vec<String> = command.flags.iter().map(|f| format!("--{}", f.long)).collect();
    Error::usage(
        format!("flag {flag} does not apply to `kubectl {} {}`", spec.plugin, command.name),
        if own.is_empty() {
            format!("`kubectl {} {}` takes only the global flags", spec.plugin, command.name)
        } else {
            format!("`kubectl {} {}` takes {}", spec.plugin, command.name, own.join(", "))
        },
    )
}

/// `-o` is checked against the formats the command declares (`wide` only where it has more columns).
fn output_args(spec: &Spec, command: &CommandSpec, output: Option<String>, no_headers: bool) -> Result<OutputArgs> {
    let declared = command.flags.iter().find(|f| f.long == "output");
    if let (Some(text), None) = (&output, declared) {
        return Err(not_applicable(spec, command, &format!("-o {text}")));
    }
    if no_headers && !command.flags.iter().any(|f| f.long == "no-headers") {
        return Err(not_applicable(spec, command, "--no-headers"));
    }
    let format = match (output, declared.and_then(|f| f.value)) {
        (None, _) => Format::Table,
        (Some(text), Some(Values::Words(allowed))) if allowed.contains(&text.as_str()) => text.parse()?,
        (Some(text), Some(Values::Words(allowed))) => {
            return Err(Error::usage(
                format!("unknown output format {text:?} for `kubectl {} {}`", spec.plugin, command.name),
                format!("valid formats: {}", allowed.join(", ")),
            ));
        }
        (Some(text), _) => text.parse()?,
    };
    Ok(OutputArgs { format, no_headers })
}

/// Every flag a plugin declares, with the global ones (for completion and docs).
pub fn all_flags(spec: &Spec) -> impl Iterator<Item = &FlagSpec> {
    GLOBAL_FLAGS.iter().chain(spec.commands.iter().flat_map(|c| c.flags.iter()))
}

#[cfg(test)]
mod tests;
