//! Shell completion through kubectl (1.26+): kubectl runs `kubectl_complete-<plugin>` with the words
//! typed after the plugin name plus the word being completed, and reads one candidate per line
//! (`value<TAB>description`) and a last line `:<directive>` (Cobra's protocol). krew installs one
//! binary per plugin, so each plugin answers `__complete` itself and writes its own shim with
//! `completion --install`.
//!
//! Planning what to complete is pure ([`plan`]); only live values (namespaces, revisions, tags) read
//! the cluster.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;

use crate::args::KubeArgs;
use crate::cluster::{Cluster, block_on};
use crate::error::{Error, Exit, Result};
use crate::spec::{CommandSpec, FlagSpec, GLOBAL_FLAGS, Spec, Values};

/// kubectl's reading of the directive line (Cobra's `ShellCompDirective`).
pub mod directive {
    pub const DEFAULT: u32 = 0;
    pub const ERROR: u32 = 1;
    pub const NO_FILE_COMP: u32 = 4;
}

/// What the word under the cursor should become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Fixed candidates (commands, flags, words) with descriptions.
    Fixed(Vec<(String, String)>),
    /// Values that need the cluster or the kubeconfig. `prefix` is put back in front of each
    /// (`--to=`); `exclude` are positionals already typed.
    Live { values: Values, prefix: String, exclude: Vec<String> },
}

/// Decides what to offer for the last of `words` (the word being completed; empty for a new one).
pub fn plan(spec: &Spec, words: &[String]) -> Plan {
    let (current, before) = words.split_last().map(|(c, b)| (c.as_str(), b)).unwrap_or(("", &[]));
    let mut command: Option<&CommandSpec> = None;
    let mut command_typed = false;
    let mut positionals = Vec::new();
    let mut pending_value: Option<Values> = None;
    for word in before {
        if pending_value.take().is_some() {
            continue;
        }
        if word.starts_with('-') && word.len() > 1 {
            if !word.contains('=') {
                pending_value = find_flag(spec, command, word).and_then(|f| f.value);
            }
            continue;
        }
        if command_typed {
            positionals.push(word.clone());
        } else {
            command_typed = true;
            command = find_command(spec, word);
        }
    }
    if let Some(values) = pending_value {
        return values_plan(values, current, String::new(), Vec::new());
    }
    if let Some((name, typed)) = current.split_once('=').filter(|_| current.starts_with("--")) {
        return match find_flag(spec, command, name).and_then(|f| f.value) {
            Some(values) => values_plan(values, typed, format!("{name}="), Vec::new()),
            None => Plan::Fixed(Vec::new()),
        };
    }
    if current.starts_with('-') {
        let flags = GLOBAL_FLAGS.iter().chain(command.map(|c| c.flags).unwrap_or_default());
        let mut offered: Vec<(String, String)> = flags
            .flat_map(|f| {
                let short = f.short.map(|s| (format!("-{s}"), f.about.to_string()));
                std::iter::once((format!("--{}", f.long), f.about.to_string())).chain(short)
            })
            .filter(|(name, _)| name.starts_with(current))
            .collect();
        offered.sort();
        offered.dedup();
        return Plan::Fixed(offered);
    }
    match command {
        None if command_typed => Plan::Fixed(Vec::new()),
        None => Plan::Fixed(
            spec.commands
                .iter()
                .filter(|c| c.name.starts_with(current))
                .map(|c| (c.name.to_string(), c.about.to_string()))
                .collect(),
        ),
        Some(c) => values_plan(c.args, current, String::new(), positionals),
    }
}

fn find_command<'a>(spec: &'a Spec, word: &str) -> Option<&'a CommandSpec> {
    spec.commands.iter().find(|c| c.name == word || c.aliases.contains(&word))
}

fn find_flag<'a>(spec: &'a Spec, command: Option<&'a CommandSpec>, word: &str) -> Option<&'a FlagSpec> {
    let all = || GLOBAL_FLAGS.iter().chain(command.map(|c| c.flags).unwrap_or_default());
    if let Some(long) = word.strip_prefix("--") {
        let long = long.split('=').next().unwrap_or(long);
        // Before the command is known, any command's flag may appear (`--to x namespace …`).
        return all()
            .find(|f| f.long == long)
            .or_else(|| spec.commands.iter().flat_map(|c| c.flags).find(|f| f.long == long));
    }
    let short = word.strip_prefix('-')?.chars().next()?;
    all().find(|f| f.short == Some(short))
}

fn values_plan(values: Values, typed: &str, prefix: String, exclude: Vec<String>) -> Plan {
    match values {
        Values::Nothing | Values::Files => Plan::Fixed(Vec::new()),
        Values::Words(words) => Plan::Fixed(
            words.iter().filter(|w| w.starts_with(typed)).map(|w| (format!("{prefix}{w}"), String::new())).collect(),
        ),
        live => Plan::Live { values: live, prefix, exclude },
    }
}

/// The directive for a plan: file names only where a file is wanted.
fn directive_for(spec: &Spec, words: &[String], plan: &Plan) -> u32 {
    let wants_files = matches!(plan, Plan::Fixed(c) if c.is_empty()) && files_wanted(spec, words);
    if wants_files { directive::DEFAULT } else { directive::NO_FILE_COMP }
}

fn files_wanted(spec: &Spec, words: &[String]) -> bool {
    let (current, before) = match words.split_last() {
        Some((c, b)) => (c, b),
        None => return false,
    };
    if let Some(previous) = before.last().filter(|w| w.starts_with('-') && !w.contains('=')) {
        let command = before.iter().find_map(|w| find_command(spec, w));
        if let Some(f) = find_flag(spec, command, previous) {
            return f.value == Some(Values::Files);
        }
    }
    if current.starts_with('-') {
        return false;
    }
    before.iter().find_map(|w| find_command(spec, w)).is_some_and(|c| c.args == Values::Files)
}

/// Reads the global flags out of the words typed so far, so that live values come from the
/// cluster the command would talk to.
fn kube_args(plugin: &'static str, words: &[String]) -> KubeArgs {
    let mut kube = KubeArgs { plugin, ..KubeArgs::default() };
    let mut iter = words.iter().peekable();
    while let Some(word) = iter.next() {
        let (name, inline) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (word.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| iter.next().cloned());
        match name {
            "--kubeconfig" => kube.kubeconfig = value(),
            "--context" => kube.context = value(),
            "--cluster" => kube.cluster = value(),
            "--user" => kube.user = value(),
            "--as" => kube.as_user = value(),
            "--as-group" => kube.as_groups.extend(value()),
            "--istio-namespace" => kube.istio_namespace = value(),
            "--request-timeout" => {
                kube.request_timeout = value().and_then(|v| crate::args::parse_timeout(&v).ok()).flatten()
            }
            _ => {}
        }
    }
    // A completion that hangs is worse than none.
    kube.request_timeout.get_or_insert(Duration::from_secs(5));
    kube
}

async fn live_values(plugin: &'static str, values: Values, words: &[String]) -> Result<Vec<(String, String)>> {
    let kube = kube_args(plugin, words);
    if values == Values::Contexts {
        return Ok(crate::cluster::context_names(&kube)?.into_iter().map(|c| (c, String::new())).collect());
    }
    let cluster = Cluster::connect(&kube).await?;
    if values == Values::Namespaces {
        let api: Api<Namespace> = Api::all(cluster.client());
        let names = cluster
            .list_map(&api, None, "list namespaces", |n: &Namespace| n.metadata.name.clone().unwrap_or_default())
            .await?;
        return Ok(names.into_iter().map(|n| (n, String::new())).collect());
    }
    let mesh = crate::fetch::control_plane(&cluster).await?.mesh();
    let mut out = Vec::new();
    if matches!(values, Values::Revisions | Values::RevisionsOrTags) {
        for revision in mesh.installed_revisions() {
            let version = revision.version.as_ref().map(|v| format!("Istio {v}")).unwrap_or_default();
            out.push((revision.name.clone(), format!("revision {version}").trim().to_string()));
        }
    }
    if matches!(values, Values::Tags | Values::RevisionsOrTags) {
        for tag in mesh.tags.values() {
            out.push((tag.name.clone(), format!("tag → {}", tag.revision)));
        }
    }
    Ok(out)
}

/// Answers `__complete WORD…`: candidates on stdout, then the directive line.
pub fn answer(spec: &Spec, words: &[String]) -> Exit {
    let plan = plan(spec, words);
    let typed = words.last().map(String::as_str).unwrap_or("");
    let (candidates, directive) = match &plan {
        Plan::Fixed(c) => (c.clone(), directive_for(spec, words, &plan)),
        Plan::Live { values, prefix, exclude } => {
            let typed = typed.strip_prefix(prefix.as_str()).unwrap_or(typed);
            match block_on(live_values(spec.plugin, *values, words)) {
                Ok(found) => (
                    found
                        .into_iter()
                        .filter(|(v, _)| v.starts_with(typed) && !exclude.contains(v))
                        .map(|(v, d)| (format!("{prefix}{v}"), d))
                        .collect(),
                    directive::NO_FILE_COMP,
                ),
                Err(_) => (Vec::new(), directive::ERROR),
            }
        }
    };
    let mut out = String::new();
    for (value, about) in candidates {
        out.push_str(&value);
        if !about.is_empty() {
            out.push('\t');
            out.push_str(&about);
        }
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    let _ = std::io::stdout().write_all(out.as_bytes());
    Exit::Ok
}

/// The executable kubectl looks for: `kubectl_complete-revtag`.
pub fn shim_name(plugin: &str) -> String {
    format!("kubectl_complete-{}", plugin.replace('-', "_"))
}

pub fn shim(plugin: &str) -> String {
    let binary = format!("kubectl-{}", plugin.replace('-', "_"));
    format!(
        "#!/bin/sh\n# kubectl (1.26+) runs this to complete `kubectl {plugin} …`; written by `kubectl {plugin} completion`.\n\
         exec {binary} __complete \"$@\"\n"
    )
}

/// Where krew links plugins, so the shim lands next to the plugin on PATH.
fn default_shim_dir() -> Option<PathBuf> {
    if let Some(root) = std::env::var_os("KREW_ROOT").filter(|r| !r.is_empty()) {
        return Some(PathBuf::from(root).join("bin"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".krew/bin"))
}

pub const COMPLETION_HELP: &str = "\
Shell completion for this plugin through kubectl's own completion (kubectl 1.26 or newer).
kubectl runs an executable named kubectl_complete-<plugin> found on PATH; krew cannot install it,
so this command prints it or writes it.

Usage:
  kubectl PLUGIN completion [--install [--dir DIR]]

Flags:
      --install               Write the shim, executable, into DIR
      --dir DIR               Where to write it (default: $KREW_ROOT/bin, else ~/.krew/bin)";

/// `completion [--install] [--dir DIR]`: prints the shim, or writes it executable (atomically).
pub fn completion_command(plugin: &str, args: &[OsString]) -> Result<Exit> {
    let mut install = false;
    let mut dir: Option<PathBuf> = None;
    let mut iter = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--install" => install = true,
            "--dir" => dir = Some(iter.next().map(PathBuf::from).ok_or_else(|| dir_needed(plugin))?),
            other if other.starts_with("--dir=") => dir = Some(PathBuf::from(&other["--dir=".len()..])),
            "-h" | "--help" => {
                println!("{}", COMPLETION_HELP.replace("PLUGIN", plugin));
                return Ok(Exit::Ok);
            }
            other => {
                return Err(Error::usage(
                    format!("unexpected argument {other:?}"),
                    format!("see `kubectl {plugin} completion --help`"),
                ));
            }
        }
    }
    if !install {
        print!("{}", shim(plugin));
        return Ok(Exit::Ok);
    }
    let dir = dir.or_else(default_shim_dir).ok_or_else(|| dir_needed(plugin))?;
    let path = write_shim(&dir, plugin)?;
    eprintln!("wrote {}", path.display());
    let on_path = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d == dir));
    if !on_path {
        eprintln!("hint: {} is not on PATH; kubectl finds the shim only there", dir.display());
    }
    Ok(Exit::Ok)
}

fn dir_needed(plugin: &str) -> Error {
    Error::usage(
        "no directory for the completion shim",
        format!("pass `kubectl {plugin} completion --install --dir DIR`"),
    )
}

fn write_shim(dir: &Path, plugin: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(shim_name(plugin));
    let failed = |e: std::io::Error| {
        Error::refused(format!("cannot write {}: {e}", path.display()), "choose a writable directory with --dir DIR")
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    let staging = dir.join(format!(".{}.tmp", shim_name(plugin)));
    std::fs::write(&staging, shim(plugin)).map_err(failed)?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755)).map_err(failed)?;
    std::fs::rename(&staging, &path).map_err(failed)?;
    Ok(path)
}

/// Handles `__complete …` and `completion …` before normal parsing (partial command lines must not
/// be usage errors); `None` for every other command line.
pub fn dispatch(spec: &Spec, args: &[OsString]) -> Option<Result<Exit>> {
    let first = args.first()?.to_str()?;
    match first {
        "__complete" | "__completeNoDesc" => {
            let words: Vec<String> = args[1..].iter().map(|a| a.to_string_lossy().into_owned()).collect();
            Some(Ok(answer(spec, &words)))
        }
        "completion" => Some(completion_command(spec.plugin, &args[1..])),
        _ => None,
    }
}

/// Flags a plugin's help text mentions that the completion spec does not know, and the reverse —
/// for each plugin's test that keeps the two in step. The shared flag texts are added here.
pub fn unlisted_flags(spec: &Spec, help: &str) -> (Vec<String>, Vec<String>) {
    let help =
        format!("{help}\n{}\n{}\n{COMPLETION_HELP}", crate::render::OUTPUT_FLAGS_HELP, crate::args::GLOBAL_FLAGS_HELP);
    let known: std::collections::BTreeSet<String> =
        GLOBAL_FLAGS.iter().chain(spec.commands.iter().flat_map(|c| c.flags)).map(|f| f.long.to_string()).collect();
    let mentioned: std::collections::BTreeSet<String> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter_map(|w| w.strip_prefix("--"))
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_end_matches('-').to_string())
        .collect();
    (
        mentioned.iter().filter(|m| !known.contains(*m)).cloned().collect(),
        known.iter().filter(|k| !mentioned.contains(*k)).cloned().collect(),
    )
}

#[cfg(test)]
mod tests;
