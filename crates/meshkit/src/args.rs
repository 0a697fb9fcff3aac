//! kubectl-compatible global flags, parsed with lexopt and shared by every plugin.
//!
//! Each plugin's argument loop offers every argument to [`KubeArgs::consume`] (and
//! [`crate::render::OutputArgs::consume`]) first, so the flags behave the same in every plugin.

use std::time::Duration;

use std::ffi::OsString;

use lexopt::{Arg, Parser, ValueExt};

use crate::error::{Error, Result};

pub const DEFAULT_ISTIO_NAMESPACE: &str = "istio-system";

/// The flags that say which cluster to talk to, as whom, and where Istio lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeArgs {
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    pub namespace: Option<String>,
    pub all_namespaces: bool,
    pub as_user: Option<String>,
    pub as_groups: Vec<String>,
    pub request_timeout: Option<Duration>,
    pub istio_namespace: Option<String>,
    /// The plugin sending the requests (`revtag`): its User-Agent, and so the field manager the
    /// apiserver records for every write without an explicit one.
    pub plugin: &'static str,
}

/// Help text for the flags above, appended to every command's help.
pub const GLOBAL_FLAGS_HELP: &str = "\
Global flags (as kubectl):
      --kubeconfig PATH        Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)
      --context NAME           The kubeconfig context to use
      --cluster NAME           The kubeconfig cluster to use
      --user NAME              The kubeconfig user to use
  -n, --namespace NS           Namespace scope of the request
  -A, --all-namespaces         Look in every namespace
      --as USER                Impersonate this user
      --as-group GROUP         Impersonate this group (repeatable)
      --request-timeout D      Give up on a request after D (e.g. 10s, 1m; 0 = no limit)
      --istio-namespace NS     Where the Istio control plane lives (default: istio-system)";

impl KubeArgs {
    /// Takes `arg` if it is one of the global flags; returns false to let the caller handle it.
    pub fn consume(&mut self, arg: &Flag, parser: &mut Parser) -> Result<bool> {
        match arg.as_arg() {
            Arg::Long("kubeconfig") => self.kubeconfig = Some(value(parser, "--kubeconfig")?),
            Arg::Long("context") => self.context = Some(value(parser, "--context")?),
            Arg::Long("cluster") => self.cluster = Some(value(parser, "--cluster")?),
            Arg::Long("user") => self.user = Some(value(parser, "--user")?),
            Arg::Short('n') | Arg::Long("namespace") => self.namespace = Some(value(parser, "--namespace")?),
            Arg::Short('A') | Arg::Long("all-namespaces") => self.all_namespaces = true,
            Arg::Long("as") => self.as_user = Some(value(parser, "--as")?),
            Arg::Long("as-group") => self.as_groups.push(value(parser, "--as-group")?),
            Arg::Long("request-timeout") => {
                let raw = value(parser, "--request-timeout")?;
                self.request_timeout = parse_timeout(&raw)?;
            }
            Arg::Long("istio-namespace") => self.istio_namespace = Some(value(parser, "--istio-namespace")?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn istio_namespace(&self) -> &str {
        self.istio_namespace.as_deref().unwrap_or(DEFAULT_ISTIO_NAMESPACE)
    }
}

/// One command-line argument, owned, so that it can be handed to several parsers in turn while
/// they read values from the same [`Parser`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flag {
    Short(char),
    Long(String),
    Value(OsString),
}

impl Flag {
    pub fn as_arg(&self) -> Arg<'_> {
        match self {
            Flag::Short(c) => Arg::Short(*c),
            Flag::Long(name) => Arg::Long(name),
            Flag::Value(v) => Arg::Value(v.clone()),
        }
    }

    /// The usage error for an argument nobody took.
    pub fn unexpected(&self, command: &str) -> Error {
        let message = match self {
            Flag::Short(c) => format!("unknown flag -{c}"),
            Flag::Long(name) => format!("unknown flag --{name}"),
            Flag::Value(v) => format!("unexpected argument {:?}", v.to_string_lossy()),
        };
        Error::usage(message, format!("see `{command} --help`"))
    }
}

/// The next argument, or a usage error naming what was wrong with it.
pub fn next_arg(parser: &mut Parser, command: &str) -> Result<Option<Flag>> {
    let arg = parser.next().map_err(|e| usage_error(e, command))?;
    Ok(arg.map(|arg| match arg {
        Arg::Short(c) => Flag::Short(c),
        Arg::Long(name) => Flag::Long(name.to_string()),
        Arg::Value(v) => Flag::Value(v),
    }))
}

/// The value of a flag, as a UTF-8 string, with a usage error naming the flag if it is missing.
pub fn value(parser: &mut Parser, flag: &str) -> Result<String> {
    let raw = parser.value().map_err(|_| {
        Error::usage(format!("flag {flag} needs a value"), format!("write {flag} VALUE or {flag}=VALUE"))
    })?;
    let text = raw.string().map_err(|_| Error::usage(format!("the value of {flag} is not valid UTF-8"), ""))?;
    if text.is_empty() {
        return Err(Error::usage(format!("flag {flag} needs a non-empty value"), ""));
    }
    Ok(text)
}

/// Checks, before any work, that `path` can be written: its directory exists and is writable,
/// it is not a directory, and an existing file is only replaced with `force`.
pub fn check_output_path(path: &std::path::Path, force: bool) -> Result<()> {
    let shown = path.display();
    if path.is_dir() {
        return Err(Error::usage(
            format!("output path {shown} is a directory"),
            "name a file in it, e.g. DIR/backup.tar.gz",
        ));
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        return Err(Error::usage(
            format!("cannot write {shown}: directory {} does not exist", dir.display()),
            format!("create it first (mkdir -p {}) or choose another path", dir.display()),
        ));
    }
    if let Err(e) = tempfile::Builder::new().prefix(".meshkit-probe-").tempfile_in(dir) {
        let why = match e.kind() {
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            std::io::ErrorKind::ReadOnlyFilesystem => "read-only file system".to_string(),
            // /proc and /sys: the directory exists but cannot hold new files.
            std::io::ErrorKind::NotFound => "it cannot hold new files".to_string(),
            other => other.to_string(),
        };
        return Err(Error::usage(
            format!("cannot write {shown}: directory {} is not writable ({why})", dir.display()),
            "choose a directory you can write to",
        ));
    }
    if path.exists() && !force {
        return Err(Error::usage(
            format!("{shown} already exists"),
            "pass --force to replace it, or choose another path",
        ));
    }
    Ok(())
}

/// A label selector (`-l`, `--selector`) checked against Kubernetes' grammar, so a malformed one
/// is a usage error and is never sent.
pub fn check_selector(text: &str) -> Result<()> {
    crate::kube::label_selector::validate(text).map_err(|e| {
        Error::usage(
            format!("invalid label selector {text:?} at position {}: {}", e.position, e.reason),
            "a label selector looks like team=shop,env in (prod,staging),!legacy",
        )
    })
}

/// Turns any lexopt error into a usage error with the command's help hint.
pub fn usage_error(err: lexopt::Error, command: &str) -> Error {
    let message = match err {
        lexopt::Error::UnexpectedOption(opt) => format!("unknown flag {opt}"),
        lexopt::Error::UnexpectedArgument(arg) => format!("unexpected argument {}", arg.to_string_lossy()),
        other => other.to_string(),
    };
    Error::usage(message, format!("see `{command} --help`"))
}

/// kubectl's `--request-timeout`: a bare number of seconds or a Go-style duration (`1m30s`, `500ms`);
/// zero means no limit.
pub fn parse_timeout(raw: &str) -> Result<Option<Duration>> {
    parse_duration("--request-timeout", raw)
}

/// A duration flag's value: seconds, or a Go-style duration; zero means none.
pub fn parse_duration(flag: &str, raw: &str) -> Result<Option<Duration>> {
    let bad = || {
        Error::usage(
            format!("invalid {flag} {raw:?}"),
            "use a number of seconds or a duration such as 30s, 2m or 1m30s (0 for none)",
        )
    };
    let duration = if let Ok(seconds) = raw.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        parse_go_duration(raw).ok_or_else(bad)?
    };
    Ok((!duration.is_zero()).then_some(duration))
}

fn parse_go_duration(raw: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = raw;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::from_secs_f64(number * scale);
    }
    Some(total)
}

/// Formats a duration the way users typed it (`30s`, `2m`, `1.5s`).
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs >= 60.0 && secs.fract() == 0.0 && (secs as u64).is_multiple_of(60) {
        format!("{}m", secs as u64 / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_paths_are_checked_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("backup.tar.gz");
        assert!(check_output_path(&fresh, false).is_ok());
        std::fs::write(&fresh, "x").unwrap();
        let exists = check_output_path(&fresh, false).unwrap_err();
        assert_eq!(exists.exit(), crate::error::Exit::Usage);
        assert!(exists.hint().unwrap().contains("--force"));
        assert!(check_output_path(&fresh, true).is_ok());
        let missing = check_output_path(&dir.path().join("no/such/x.tgz"), false).unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
        assert!(check_output_path(dir.path(), true).unwrap_err().to_string().contains("is a directory"));
        let proc = check_output_path(std::path::Path::new("/proc/x.tgz"), false).unwrap_err();
        assert!(proc.to_string().contains("not writable"), "{proc}");
    }

    fn parse(args: &[&str]) -> Result<(KubeArgs, Vec<String>)> {
        let mut kube = KubeArgs::default();
        let mut rest = Vec::new();
        let mut parser = Parser::from_args(args.iter().copied());
        while let Some(arg) = next_arg(&mut parser, "test")? {
            if kube.consume(&arg, &mut parser)? {
                continue;
            }
            match arg {
                Flag::Value(v) => rest.push(v.string().unwrap()),
                other => return Err(other.unexpected("test")),
            }
        }
        Ok((kube, rest))
    }

    #[test]
    fn both_value_spellings_work() {
        let (k, _) = parse(&["--context", "a", "--kubeconfig=/k", "-n", "ns1", "--as=alice"]).unwrap();
        assert_eq!(k.context.as_deref(), Some("a"));
        assert_eq!(k.kubeconfig.as_deref(), Some("/k"));
        assert_eq!(k.namespace.as_deref(), Some("ns1"));
        assert_eq!(k.as_user.as_deref(), Some("alice"));
        let (k, _) = parse(&["--namespace=ns2", "-nns3"]).unwrap();
        assert_eq!(k.namespace.as_deref(), Some("ns3"));
    }

    #[test]
    fn as_group_repeats_and_all_namespaces_is_a_switch() {
        let (k, rest) = parse(&["--as-group", "g1", "list", "--as-group=g2", "-A"]).unwrap();
        assert_eq!(k.as_groups, ["g1", "g2"]);
        assert!(k.all_namespaces);
        assert_eq!(rest, ["list"]);
    }

    #[test]
    fn istio_namespace_defaults_to_istio_system() {
        let (k, _) = parse(&[]).unwrap();
        assert_eq!(k.istio_namespace(), "istio-system");
        let (k, _) = parse(&["--istio-namespace", "mesh"]).unwrap();
        assert_eq!(k.istio_namespace(), "mesh");
    }

    #[test]
    fn missing_value_is_a_usage_error() {
        let err = parse(&["--context"]).unwrap_err();
        assert_eq!(err.exit() as u8, 2);
        assert!(err.to_string().contains("--context"), "{err}");
    }

    #[test]
    fn unknown_flag_names_the_flag() {
        let err = parse(&["--bogus"]).unwrap_err();
        assert_eq!(err.to_string(), "unknown flag --bogus");
    }

    #[test]
    fn request_timeout_accepts_kubectl_forms() {
        assert_eq!(parse_timeout("0").unwrap(), None);
        assert_eq!(parse_timeout("5").unwrap(), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("5s").unwrap(), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("2m").unwrap(), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout("1m30s").unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(parse_timeout("250ms").unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("1h").unwrap(), Some(Duration::from_secs(3600)));
        for bad in ["", "abc", "5x", "s", "-1"] {
            assert!(parse_timeout(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn durations_format_readably() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
    }
}
