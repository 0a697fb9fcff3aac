//! Tier C's kubelet for istiod pods, and the apiserver's egress proxy (see `meshtest::kubelet`).
//!
//! `meshtest-kubelet --dir DIR --kubectl PATH --kubeconfig PATH --istiod VERSION=BINARY…
//! [--kubelet-server NODE_IP:PORT=LOCAL_PORT] [--xds-proxy BINARY]`

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut config = meshtest::kubelet::Config {
        dir: PathBuf::new(),
        kubectl: PathBuf::new(),
        kubeconfig: PathBuf::new(),
        builds: Vec::new(),
        kubelet_server: None,
        xds_proxy: None,
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
            "--kubelet-server" => {
                // IP:PORT=LOCAL_PORT
                let parse = || -> Option<((String, u16), u16)> {
                    let (address, local) = value.split_once('=')?;
                    let (ip, port) = address.rsplit_once(':')?;
                    Some(((ip.to_string(), port.parse().ok()?), local.parse().ok()?))
                };
                config.kubelet_server =
                    Some(parse().ok_or_else(|| anyhow::anyhow!("--kubelet-server takes IP:PORT=LOCAL_PORT"))?);
            }
            "--xds-proxy" => config.xds_proxy = Some(value.into()),
            _ => anyhow::bail!("unknown flag {flag}"),
        }
    }
    meshtest::kubelet::run(config)
}
