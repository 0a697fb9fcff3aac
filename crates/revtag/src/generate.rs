//! `kubectl revtag generate TAG --revision REV`: the objects `set` would apply, printed for GitOps
//! (fetch → decide → render; nothing is sent).

use meshkit::args::KubeArgs;
use meshkit::cluster::{Cluster, block_on};
use meshkit::render::{OutputArgs, Renderer};
use meshkit::{Exit, Result};

use crate::common::warn;
use crate::set::{SetRequest, manifests, plan_set};
use crate::snapshot::{Needs, Snapshot};

pub fn run(kube: &KubeArgs, output: OutputArgs, request: &SetRequest) -> Result<Exit> {
    block_on(async {
        let cluster = Cluster::connect(kube).await?;
        let snapshot = Snapshot::fetch(&cluster, Needs { validating: true, pods: false }).await?;
        let plan = plan_set(&snapshot, request, true)?;
        warn(&plan.warnings);
        Renderer::new(output).print_manifests(&manifests(&plan.objects)?)?;
        Ok(Exit::Ok)
    })
}
