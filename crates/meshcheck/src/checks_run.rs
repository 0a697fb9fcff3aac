//! `kubectl meshcheck precheck` and `verify`: fetch → decide (the catalogue's checks of the
//! stage, pure) → render, retried with `--wait` until the checks pass or time is up.

use std::time::{Duration, Instant};

use meshkit::args::{KubeArgs, parse_duration};
use meshkit::cli::Matches;
use meshkit::cluster::{Cluster, block_on};
use meshkit::render::{OutputArgs, Renderer};
use meshkit::{Error, Exit, Result};

use crate::checks::report::FailOn;
use crate::checks::{self, Options, Stage};
use crate::flags;
use crate::snapshot::{Needs, Snapshot};
use crate::spec::SPEC;

/// How long `--wait` retries without `--timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// `--timeout 0`: no limit (a century).
const NO_LIMIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The command line of `precheck` and `verify`.
#[derive(Debug)]
pub struct CheckArgs {
    pub stage: Stage,
    pub options: Options,
    pub fail_on: FailOn,
    /// `--wait`: retry failing checks for this long at most (`--timeout`).
    pub wait: Option<Duration>,
}

impl CheckArgs {
    pub fn from_matches(m: &Matches, stage: Stage) -> Result<CheckArgs> {
        if let Some(duration) = m.args.first().filter(|a| m.has("wait") && parse_duration("", a).is_ok()) {
            // `--wait 2m` was the form before --wait became a switch, as in meshmigrate and kubectl.
            return Err(Error::usage(
                format!("`--wait` takes no value; unexpected argument {duration:?}"),
                format!("write `--wait --timeout {duration}`"),
            ));
        }
        m.at_most(0, "no arguments")?;
        let timeout = match m.value("timeout") {
            Some(_) if !m.has("wait") => {
                return Err(m.usage("takes --timeout only with --wait".to_string()));
            }
            Some(raw) => parse_duration("--timeout", raw)?.unwrap_or(NO_LIMIT),
            None => DEFAULT_TIMEOUT,
        };
        let wait = m.has("wait").then_some(timeout);
        Ok(CheckArgs { stage, options: flags::options(m)?, fail_on: flags::fail_on(m)?, wait })
    }
}

pub fn run(kube: &KubeArgs, output: OutputArgs, args: &CheckArgs) -> Result<Exit> {
    let renderer = Renderer::new(output);
    block_on(async {
        let cluster = Cluster::connect(kube).await?;
        let started = Instant::now();
        loop {
            let snapshot = Snapshot::fetch(&cluster, needs(args.stage)).await?;
            let report = match args.stage {
                Stage::Precheck => checks::precheck(&snapshot, &args.options),
                _ => checks::verify(&snapshot, &args.options),
            };
            let retry = args.wait.is_some_and(|limit| started.elapsed() < limit);
            if report.failed(args.fail_on) && retry {
                let waited = started.elapsed().as_secs();
                SPEC.note(format_args!("checks are failing; retrying (waited {waited}s so far)"));
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            let fail_on = args.fail_on;
            renderer.print_human(&report.document(fail_on), |color| report.text(fail_on, color))?;
            return Ok(report.exit(fail_on));
        }
    })
}

/// precheck asks about permissions; verify reads the live proxy status.
fn needs(stage: Stage) -> Needs {
    Needs { permissions: stage == Stage::Precheck, all_pods: true, inventory: true, live: stage == Stage::Verify }
}
