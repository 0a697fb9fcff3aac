//! What a check is: its stable code, where it runs, its category, level, description and hint,
//! and the function that runs it. Every check is declared once, in [`super::catalogue`].

use serde::Serialize;

use super::Context;
use super::report::Finding;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Warning,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Precheck,
    Verify,
    Manifest,
}

/// A check on the cluster: decides from the context, reporting as `check`.
pub type Decide = fn(&'static Check, &Context) -> Finding;

/// How a check runs.
#[derive(Clone, Copy)]
pub enum Run {
    /// On the cluster's snapshot, by each of these stages (its documented stage first).
    Cluster(&'static [Stage], Decide),
    /// On rendered manifests, by `kubectl meshcheck manifest` (which reads files, not a snapshot).
    Manifest,
}

#[derive(Clone, Copy)]
pub struct Check {
    pub code: &'static str,
    pub stage: Stage,
    pub category: &'static str,
    /// How bad a failure is; some checks also report milder findings as warnings.
    pub level: Level,
    pub description: &'static str,
    pub hint: &'static str,
    pub run: Run,
}

impl Check {
    /// The anchor of this check in `docs/checks.md`.
    pub fn anchor(&self) -> String {
        self.code.to_ascii_lowercase()
    }

    /// Its finding, when `stage` runs it.
    pub fn run_in(&'static self, stage: Stage, cx: &Context) -> Option<Finding> {
        match self.run {
            Run::Cluster(stages, decide) if stages.contains(&stage) => Some(decide(self, cx)),
            _ => None,
        }
    }
}

// Checks are the same check when their codes are (a code is unique: a test says so).
impl PartialEq for Check {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
    }
}

impl Eq for Check {}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("code", &self.code).field("stage", &self.stage).finish_non_exhaustive()
    }
}
