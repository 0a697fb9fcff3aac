//! The one error type every plugin returns, and the exit codes it maps to.
//!
//! Exit codes are part of the interface (scripts branch on them) and are documented in the README.

use std::fmt;
use std::process::ExitCode;

/// Exit codes shared by every plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Everything worked; nothing to report.
    Ok = 0,
    /// The command ran and has findings, or an operation on the cluster failed.
    Failed = 1,
    /// The command line was wrong; nothing was sent to the cluster.
    Usage = 2,
    /// The kubeconfig could not be used, the cluster could not be reached, or it rejected our credentials.
    Unreachable = 3,
    /// The cluster denied a request (RBAC).
    Forbidden = 4,
    /// What the command needs is not there: no Istio control plane, an unknown revision or tag.
    NotFound = 5,
    /// The change needs confirmation that was not given (no terminal to ask on and no `--yes`,
    /// or the answer was no); nothing was changed.
    NotConfirmed = 6,
    /// Long work stopped before it finished (a `--wait` deadline passed, a rollout is stuck); what
    /// was done is reported and a rerun continues from there.
    Incomplete = 7,
    /// An input file is not what it must be: a corrupt, truncated or foreign backup archive, a
    /// checksum that does not match, or a format version newer than this build reads; nothing
    /// was changed.
    Invalid = 8,
}

impl Exit {
    /// What the code means, as every help page and the README say it.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "success",
            Exit::Failed => "findings, a refused unsafe change, or a failed operation on the cluster",
            Exit::Usage => "usage error (unknown command or flag, malformed value); nothing was sent",
            Exit::Unreachable => "the kubeconfig cannot be used or the cluster cannot be reached",
            Exit::Forbidden => "the cluster forbade a request (RBAC)",
            Exit::NotFound => "what the command needs is not there (no control plane, unknown revision or tag)",
            Exit::NotConfirmed => "confirmation needed and not given; nothing was changed",
            Exit::Incomplete => "stopped before the work finished; rerunning continues",
            Exit::Invalid => "an input file is invalid (corrupt, forged, foreign or newer archive)",
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(code: Exit) -> Self {
        ExitCode::from(code as u8)
    }
}

/// Where a request went: used to make every cluster error say which cluster it was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub context: String,
    pub server: String,
    /// The user as the kubeconfig names it, or the impersonated one.
    pub user: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "context \"{}\", server {}", self.context, self.server)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    Usage { message: String, hint: String },

    #[error("cannot use the kubeconfig: {reason}")]
    Kubeconfig { reason: String, hint: String },

    #[error("cannot reach the cluster ({target}): {reason}")]
    Unreachable { target: Target, reason: String },

    #[error("no answer from the cluster ({target}) within the request timeout of {timeout}")]
    Timeout { target: Target, timeout: String },

    #[error("the cluster ({target}) rejected the credentials of user \"{}\": {reason}", target.user)]
    Unauthorized { target: Target, reason: String },

    #[error("forbidden while trying to {action}: {message}")]
    Forbidden { action: String, message: String },

    #[error("{message}")]
    NotFound { message: String, hint: String },

    /// The request is understood but would do harm or contradicts the cluster's state.
    #[error("{message}")]
    Refused { message: String, hint: String },

    #[error("not confirmed: {what}; nothing was changed")]
    NotConfirmed { what: String, hint: String },

    /// An input file failed verification (see [`Exit::Invalid`]).
    #[error("{message}")]
    Invalid { message: String, hint: String },

    #[error("failed to {action}: {message}")]
    Api { action: String, code: u16, message: String },

    #[error("failed to write output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage { message: message.into(), hint: hint.into() }
    }

    pub fn not_found(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::NotFound { message: message.into(), hint: hint.into() }
    }

    pub fn refused(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Refused { message: message.into(), hint: hint.into() }
    }

    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage { .. } => Exit::Usage,
            Error::Kubeconfig { .. }
            | Error::Unreachable { .. }
            | Error::Timeout { .. }
            | Error::Unauthorized { .. } => Exit::Unreachable,
            Error::Forbidden { .. } => Exit::Forbidden,
            Error::NotFound { .. } => Exit::NotFound,
            Error::NotConfirmed { .. } => Exit::NotConfirmed,
            Error::Invalid { .. } => Exit::Invalid,
            Error::Refused { .. } | Error::Api { .. } | Error::Output(_) => Exit::Failed,
        }
    }

    /// What the user can do about it, on one line.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. }
            | Error::Kubeconfig { hint, .. }
            | Error::NotFound { hint, .. }
            | Error::Refused { hint, .. }
            | Error::NotConfirmed { hint, .. }
            | Error::Invalid { hint, .. } => (!hint.is_empty()).then(|| hint.clone()),
            Error::Unreachable { .. } => Some(
                "check that the cluster is running and the server address is right (kubectl cluster-info), \
                 or pick another --context"
                    .into(),
            ),
            Error::Timeout { .. } => Some("raise --request-timeout, or check the cluster's health".into()),
            Error::Unauthorized { .. } => {
                Some("refresh your credentials (log in again) or pick another --context / --user".into())
            }
            Error::Forbidden { .. } => Some(
                "ask a cluster admin for this permission, or use a context with more rights; \
                 `kubectl auth can-i --list` shows what you may do"
                    .into(),
            ),
            Error::Api { .. } | Error::Output(_) => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Prints an error the way every plugin does: `error: …` then `hint: …`, on stderr.
pub fn report(program: &str, err: &Error) -> ExitCode {
    // A closed pipe (`| head`) is not an error worth a message.
    if let Error::Output(io) = err
        && io.kind() == std::io::ErrorKind::BrokenPipe
    {
        return Exit::Ok.into();
    }
    let mut text = format!("{program}: error: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("{text}");
    if let Some(hint) = err.hint() {
        eprintln!("{program}: hint: {hint}");
    }
    err.exit().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_stable() {
        assert_eq!(Error::usage("x", "").exit() as u8, 2);
        let target = Target::default();
        assert_eq!(Error::Unreachable { target: target.clone(), reason: "r".into() }.exit() as u8, 3);
        assert_eq!(Error::Timeout { target, timeout: "1s".into() }.exit() as u8, 3);
        assert_eq!(Error::Forbidden { action: "a".into(), message: "m".into() }.exit() as u8, 4);
        assert_eq!(Error::not_found("x", "").exit() as u8, 5);
        assert_eq!(Error::Api { action: "a".into(), code: 500, message: "m".into() }.exit() as u8, 1);
        assert_eq!(Error::refused("x", "").exit() as u8, 1);
        assert_eq!(Error::NotConfirmed { what: "x".into(), hint: String::new() }.exit() as u8, 6);
        assert_eq!(Exit::Incomplete as u8, 7);
        assert_eq!(Error::Invalid { message: "x".into(), hint: String::new() }.exit() as u8, 8);
    }

    #[test]
    fn empty_hint_is_no_hint() {
        assert_eq!(Error::usage("bad", "").hint(), None);
        assert_eq!(Error::usage("bad", "try this").hint().as_deref(), Some("try this"));
    }
}
