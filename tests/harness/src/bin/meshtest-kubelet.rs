//! Tier C's kubelet for istiod pods, and the apiserver's egress proxy (see `meshtest::kubelet`).
//!
//! `meshtest-kubelet --dir DIR --kubectl PATH --kubeconfig PATH --istiod VERSION=BINARY…`

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut config = meshtest::kubelet::Config {
        dir: PathBuf::new(),
        kubectl: PathBuf::new(),
        kubeconfig: PathBuf::new(),
        builds: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => config.dir = value.into(),
            "--kubectl" => config.kubectl = value.into(),
            "--kubeconfig" => config.kubeconfig = value.into(),
            "--istiod" => {
                let (version, binary) =
                    value.split_once('=').ok_or_else(|| anyhow::anyhow!("--istiod takes VERSION=BINARY"))?;
                config.builds.push((version.to_string(), binary.into()));
            }
            _ => anyhow::bail!("unknown flag {flag}"),
        }
    }
    meshtest::kubelet::run(config)
}
