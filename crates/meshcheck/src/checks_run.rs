//! `kubectl meshcheck precheck` and `verify`: fetch → decide (the catalogue's checks of the
//! stage, pure) → render, retried with `--wait` until the checks pass or time is up.

use std::time::{Duration, Instant};

use meshkit::args::{KubeArgs, parse_duration};
use meshkit::cli::Matches;
use meshkit::cluster::{Cluster, block_on};
use meshkit::render::{OutputArgs, Renderer};
use meshkit::{Exit, Result};

use crate::checks::report::FailOn;
use crate::checks::{self, Options, Stage};
use crate::flags;
use crate::snapshot::{Needs, Snapshot};
use crate::spec::SPEC;

/// The command line of `precheck` and `verify`.
#[derive(Debug)]
pub struct CheckArgs {
    pub stage: Stage,
    pub options: Options,
    pub fail_on: FailOn,
    pub wait: Option<Duration>,
}

impl CheckArgs {
    pub fn from_matches(m: &Matches, stage: Stage) -> Result<CheckArgs> {
        m.at_most(0, "no arguments")?;
        let wait = match m.value("wait") {
            Some(raw) => parse_duration("--wait", raw)?,
            None => None,
        };
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
