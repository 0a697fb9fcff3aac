//! `cargo xtask cluster up --real` is an interface scripts use: it prints exactly the documented
//! `export` lines, and the cluster it leaves running serves the canary a user installs with them.

use std::process::Command;

#[test]
fn cluster_up_real_prints_the_documented_exports() {
    let xtask = env!("CARGO_BIN_EXE_xtask");
    let out = Command::new(xtask).args(["cluster", "up", "--real", "--revisions", "1"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let down = || Command::new(xtask).args(["cluster", "down"]).output().unwrap();
    if !out.status.success() {
        down();
        panic!("cluster up --real failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let keys: Vec<&str> = stdout
        .lines()
        .map(|l| l.strip_prefix("export ").and_then(|r| r.split_once('=')).map(|(k, _)| k).unwrap_or(l))
        .collect();
    let result = std::panic::catch_unwind(|| {
        assert_eq!(
            keys,
            [
                "KUBECONFIG",
                "PATH",
                "MESHTEST_OLD_VERSION",
                "MESHTEST_NEW_VERSION",
                "MESHTEST_OLD_CHARTS",
                "MESHTEST_NEW_CHARTS",
                "MESHTEST_HELM_VALUES"
            ],
            "{stdout}"
        );
        assert!(
            stdout.contains("export MESHTEST_OLD_VERSION=1.30.3\n")
                && stdout.contains("export MESHTEST_NEW_VERSION=1.31.1\n")
        );
        // The README's command, as a script would run it.
        let script = format!(
            "{stdout}\nhelm install istiod-1-31-1 \"$MESHTEST_NEW_CHARTS/istio-control/istio-discovery\" -n istio-system \
             -f \"$MESHTEST_HELM_VALUES\" --set revision=1-31-1 >/dev/null && kubectl get deployment -n istio-system istiod-1-31-1 -o name"
        );
        let dir = tempfile::tempdir().unwrap();
        let run = Command::new("sh")
            .args(["-c", &script])
            .env("HELM_CACHE_HOME", dir.path())
            .env("HELM_CONFIG_HOME", dir.path())
            .env("HELM_DATA_HOME", dir.path())
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "deployment.apps/istiod-1-31-1");
    });
    down();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
