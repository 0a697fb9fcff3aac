//! One rollout follower for every restart (`restart`, `namespace --restart`, `rollback
//! --restart`) and every rollout we only watch (`gateway`, `restart --wait`): restarts start in
//! waves of at most `--max-concurrent`; one is held back while a PodDisruptionBudget of its pods
//! allows no disruption (or another restart under the same budget is still rolling); once a
//! rollout fails or passes its progress deadline no new wave starts, so one broken template does
//! not roll through every workload. A rerun continues from the journal as before.
//!
//! This file decides (plain data, unit-tested); `waves_run` fetches and restarts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use meshkit::istio::LabelSelector;
use serde::Serialize;

use crate::restart::{Restart, RestartOutcome, RestartResult};
use crate::rollout::{Rollout, WorkloadView, rollout};

/// A PodDisruptionBudget as the waves need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub namespace: String,
    pub name: String,
    /// `None`: the budget selects no pod (policy/v1: a null selector selects nothing).
    pub selector: Option<LabelSelector>,
    /// `status.disruptionsAllowed`; 0 until the disruption controller has looked at it.
    pub allowed: i32,
}

impl From<&PodDisruptionBudget> for Budget {
    fn from(p: &PodDisruptionBudget) -> Self {
        let spec = p.spec.as_ref();
        let status = p.status.as_ref();
        let seen = status.and_then(|s| s.observed_generation) >= p.metadata.generation;
        Budget {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            selector: spec.and_then(|s| s.selector.as_ref()).map(|s| LabelSelector::from_api(Some(s))),
            allowed: if seen { status.map_or(0, |s| s.disruptions_allowed) } else { 0 },
        }
    }
}

impl Budget {
    fn covers(&self, workload: &WorkloadView) -> bool {
        self.namespace == workload.namespace && self.selector.as_ref().is_some_and(|s| s.matches(&workload.pod_labels))
    }
}

/// What happened during one step, for the progress lines on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Held { workload: String, why: String },
    Started { workload: String },
    RolledOut { workload: String },
    Failed { workload: String, reason: String },
}

/// The restarts of one run and where each stands.
#[derive(Debug, Clone, Serialize)]
pub struct Waves {
    pub outcomes: Vec<RestartOutcome>,
    #[serde(skip)]
    queue: VecDeque<usize>,
    #[serde(skip)]
    in_flight: BTreeSet<usize>,
    /// Why the last check held each queued restart back (stderr says it once per change).
    #[serde(skip)]
    held: BTreeMap<usize, String>,
    /// The generation each restart started from: a watch may still show the workload as it was
    /// before the patch (events of other workloads can come first), and that view says nothing
    /// about the new rollout.
    #[serde(skip)]
    started_from: BTreeMap<usize, i64>,
    /// The failed rollout that stopped new waves.
    pub stopped_by: Option<String>,
}

fn label(r: &Restart) -> String {
    format!("{}/{}", r.namespace, r.workload)
}

impl Waves {
    /// `AlreadyRestarted` outcomes are only followed; `WouldRestart` ones are queued in order.
    pub fn new(outcomes: Vec<RestartOutcome>) -> Waves {
        let mut waves = Waves {
            outcomes,
            queue: VecDeque::new(),
            in_flight: BTreeSet::new(),
            held: BTreeMap::new(),
            started_from: BTreeMap::new(),
            stopped_by: None,
        };
        for (i, o) in waves.outcomes.iter().enumerate() {
            match o.result {
                RestartResult::AlreadyRestarted | RestartResult::Restarted => {
                    waves.in_flight.insert(i);
                }
                RestartResult::WouldRestart => waves.queue.push_back(i),
                RestartResult::NotStarted => {}
            }
        }
        waves
    }

    /// Only follow these rollouts (already started elsewhere, e.g. a gateway's relabel).
    pub fn following(workloads: &[(String, String)]) -> Waves {
        let outcomes = workloads
            .iter()
            .map(|(namespace, workload)| RestartOutcome {
                restart: Restart { namespace: namespace.clone(), workload: workload.clone(), stale_pods: 0 },
                result: RestartResult::AlreadyRestarted,
                reason: None,
                rollout: None,
            })
            .collect();
        Waves::new(outcomes)
    }

    /// Records how the rollouts in flight stand; a finished one frees its slot, a failed one
    /// stops new waves.
    pub fn observe(&mut self, workloads: &[WorkloadView]) -> Vec<Event> {
        let mut events = Vec::new();
        for i in self.in_flight.clone() {
            let r = &self.outcomes[i].restart;
            let view = workloads.iter().find(|w| w.namespace == r.namespace && w.workload == r.workload);
            if let (Some(w), Some(from)) = (view, self.started_from.get(&i))
                && w.generation <= *from
            {
                continue;
            }
            let state = view.map_or(Rollout::Complete, rollout);
            match &state {
                Rollout::Complete => {
                    self.in_flight.remove(&i);
                    events.push(Event::RolledOut { workload: label(r) });
                }
                Rollout::Stuck { reason } => {
                    self.in_flight.remove(&i);
                    self.stopped_by.get_or_insert_with(|| format!("{} {reason}", label(r)));
                    events.push(Event::Failed { workload: label(r), reason: reason.clone() });
                }
                Rollout::Progressing { .. } => {}
            }
            self.outcomes[i].rollout = Some(state);
        }
        events
    }

    /// The restarts to start now: queued ones, in order, while slots are free, skipping those a
    /// budget holds back. Nothing once a rollout failed.
    pub fn next_wave(&mut self, max_concurrent: usize, workloads: &[WorkloadView], budgets: &[Budget]) -> Vec<Event> {
        if self.stopped_by.is_some() {
            return Vec::new();
        }
        let view = |r: &Restart| workloads.iter().find(|w| w.namespace == r.namespace && w.workload == r.workload);
        // A budget an in-flight restart falls under is busy until that rollout ends: its status
        // lags the disruption the rollout is causing.
        let mut busy: BTreeSet<(String, String)> = BTreeSet::new();
        for &i in &self.in_flight {
            if let Some(w) = view(&self.outcomes[i].restart) {
                busy.extend(budgets.iter().filter(|b| b.covers(w)).map(|b| (b.namespace.clone(), b.name.clone())));
            }
        }
        let mut events = Vec::new();
        let mut free = max_concurrent.saturating_sub(self.in_flight.len());
        let mut kept = VecDeque::new();
        while let Some(i) = self.queue.pop_front() {
            if free == 0 {
                kept.push_back(i);
                continue;
            }
            let r = &self.outcomes[i].restart;
            let covering: Vec<&Budget> =
                view(r).map(|w| budgets.iter().filter(|b| b.covers(w)).collect()).unwrap_or_default();
            let hold = covering.iter().find_map(|b| {
                let key = (b.namespace.clone(), b.name.clone());
                if busy.contains(&key) {
                    Some(format!("PodDisruptionBudget {}/{} covers a rollout still in progress", b.namespace, b.name))
                } else if b.allowed <= 0 {
                    Some(format!("PodDisruptionBudget {}/{} allows no disruption now", b.namespace, b.name))
                } else {
                    None
                }
            });
            match hold {
                Some(why) => {
                    if self.held.get(&i) != Some(&why) {
                        events.push(Event::Held { workload: label(r), why: why.clone() });
                    }
                    self.held.insert(i, why);
                    kept.push_back(i);
                }
                None => {
                    self.held.remove(&i);
                    busy.extend(covering.iter().map(|b| (b.namespace.clone(), b.name.clone())));
                    events.push(Event::Started { workload: label(r) });
                    self.outcomes[i].result = RestartResult::Restarted;
                    if let Some(generation) = view(&self.outcomes[i].restart).map(|w| w.generation) {
                        self.started_from.insert(i, generation);
                    }
                    self.in_flight.insert(i);
                    free -= 1;
                }
            }
        }
        self.queue = kept;
        events
    }

    /// The restarts `next_wave` just marked started and not yet sent.
    pub fn started(&self, events: &[Event]) -> Vec<Restart> {
        let names: BTreeSet<&str> = events
            .iter()
            .filter_map(|e| match e {
                Event::Started { workload } => Some(workload.as_str()),
                _ => None,
            })
            .collect();
        self.outcomes.iter().map(|o| &o.restart).filter(|r| names.contains(label(r).as_str())).cloned().collect()
    }

    /// Nothing left to start, and (when following to the end) nothing rolling.
    pub fn is_done(&self, follow_to_the_end: bool) -> bool {
        let nothing_to_start = self.queue.is_empty() || self.stopped_by.is_some();
        nothing_to_start && (self.in_flight.is_empty() || !follow_to_the_end)
    }

    /// Ends the run: what is still queued is reported as not started, with why.
    pub fn close(&mut self) {
        for i in std::mem::take(&mut self.queue) {
            let reason = match (&self.stopped_by, self.held.get(&i)) {
                (Some(failed), _) => format!("stopped: {failed}"),
                (None, Some(why)) => format!("held until the timeout: {why}"),
                (None, None) => "the timeout came before its turn".to_string(),
            };
            self.outcomes[i].result = RestartResult::NotStarted;
            self.outcomes[i].reason = Some(reason);
        }
    }

    /// Every restart started and no rollout failed; with `followed_to_the_end`, every rollout
    /// also finished.
    pub fn complete(&self, followed_to_the_end: bool) -> bool {
        self.outcomes.iter().all(|o| {
            o.result != RestartResult::NotStarted
                && match &o.rollout {
                    None | Some(Rollout::Complete) => true,
                    Some(Rollout::Stuck { .. }) => false,
                    Some(Rollout::Progressing { .. }) => !followed_to_the_end,
                }
        })
    }

    /// The namespaces the restarts are in, once each.
    pub fn namespaces(&self) -> Vec<String> {
        let names: BTreeSet<&String> = self.outcomes.iter().map(|o| &o.restart.namespace).collect();
        names.into_iter().cloned().collect()
    }

    /// `namespace/workload` → how its rollout stands (what the verify step is told).
    pub fn rollouts(&self) -> BTreeMap<(String, String), Rollout> {
        self.outcomes
            .iter()
            .filter_map(|o| Some(((o.restart.namespace.clone(), o.restart.workload.clone()), o.rollout.clone()?)))
            .collect()
    }
}

#[cfg(test)]
#[path = "waves_tests.rs"]
mod tests;
