//! `kubectl-meshbackup` against a real kube-apiserver holding Istio's own CRDs and control planes
//! (rendered from Istio's charts), plus custom resources written here.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use meshtest::{ControlPlane, Fixture, Options, run};
use serde_json::Value;

fn meshbackup(kubeconfig: &Path) -> Command {
    meshtest::plugin(env!("CARGO_BIN_EXE_kubectl-meshbackup"), kubeconfig)
}

/// Istio configuration users write, across namespaces, and the plugged-in CA.
const CUSTOM_RESOURCES: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: routes-only}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop-canary}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop-canary}
spec:
  host: reviews
  subsets: [{name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-ingress}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: shop-legacy, labels: {team: shop}}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: routes-only}
spec: {egress: [{hosts: ["./*"]}]}
---
apiVersion: v1
kind: Secret
metadata: {name: cacerts, namespace: istio-system}
stringData: {ca-cert.pem: cert, ca-key.pem: key, root-cert.pem: root, cert-chain.pem: chain}
"#;

struct Mesh {
    plane: ControlPlane,
    dir: tempfile::TempDir,
}

impl Mesh {
    fn start() -> Mesh {
        let plane = ControlPlane::start(&Options::default()).unwrap();
        Fixture::install(&plane, true).unwrap();
        plane.apply(CUSTOM_RESOURCES).unwrap();
        Mesh { plane, dir: tempfile::tempdir().unwrap() }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        run(meshbackup(&self.plane.kubeconfig).args(args).current_dir(self.dir.path()))
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {err}\n{out}");
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.plane.kubectl_ok(args).unwrap()
    }

    /// Name and resourceVersion of every object of the kinds a restore writes (except namespaces,
    /// which the apiserver does not touch by itself either): equal before and after means nothing
    /// was written.
    fn versions(&self) -> String {
        self.kubectl(&[
            "get",
            "crd,virtualservices,destinationrules,gateways.networking.istio.io,sidecars,peerauthentications,\
             authorizationpolicies,mutatingwebhookconfigurations,validatingwebhookconfigurations,deployments,\
             services,configmaps,secrets,clusterroles,namespaces",
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion} {end}",
        ])
    }
}

impl Mesh {
    /// Deletes every custom resource, then the CRDs. The apiserver's CRD finalizer retries with a
    /// growing backoff while a new CRD's watch cache is still initialising, which on a loaded
    /// machine can take minutes; with the custom resources already gone its finalizer has nothing
    /// left to clean up, so after a while it is removed by hand.
    fn delete_istio_crds(&self) {
        let crds = self.kubectl(&["get", "crd", "-o", "jsonpath={range .items[*]}{.metadata.name},{end}"]);
        let crds = crds.trim_end_matches(',');
        self.kubectl(&["delete", crds, "--all", "-A", "--wait=true"]);
        self.kubectl(&["delete", "crd", "--all", "--wait=false"]);
        let wait =
            self.plane.kubectl().args(["wait", "--for=delete", "crd", "--all", "--timeout=20s"]).output().unwrap();
        if !wait.status.success() {
            for crd in self.kubectl(&["get", "crd", "-o", "name"]).lines() {
                self.kubectl(&["patch", crd, "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]);
            }
        }
        assert_eq!(self.kubectl(&["get", "crd", "-o", "name"]), "", "every CRD is gone");
    }
}

fn path(s: &Path) -> &str {
    s.to_str().unwrap()
}

fn rows_with<'a>(rows: &'a [Value], result: &str) -> Vec<&'a str> {
    rows.iter().filter(|r| r["result"] == result).map(|r| r["object"].as_str().unwrap()).collect()
}

/// Fixture → create → delete the Istio objects (CRDs and every custom resource with them) →
/// restore → diff finds nothing; a rerun changes nothing.
#[test]
fn round_trip_restores_everything_and_reruns_converge() {
    let mesh = Mesh::start();
    let archive = mesh.file("before.tar.gz");
    let (code, out, err) = mesh.run(&["create", "-f", path(&archive), "--include-secrets"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("virtualservices.networking.istio.io") && err.contains("wrote "), "progress on stderr: {err}");
    assert!(out.contains("CA: istio-system/cacerts"), "{out}");
    assert_eq!(std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777, 0o600);

    let summary = mesh.json(&["inspect", path(&archive)]);
    assert_eq!(summary["formatVersion"], 1);
    assert_eq!(summary["cluster"]["kubernetesVersion"], "v1.35.4");
    let revisions: Vec<&str> =
        summary["revisions"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(revisions, ["1-30-3", "1-31-1"]);
    let count = |kind: &str, namespace: &str| -> u64 {
        summary["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["kind"] == kind && (namespace == "*" || g["namespace"] == namespace))
            .map(|g| g["objects"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(count("CustomResourceDefinition.apiextensions.k8s.io", "*"), 15, "every Istio CRD");
    assert_eq!(count("VirtualService.networking.istio.io", "shop-canary"), 1);
    assert_eq!(count("Gateway.networking.istio.io", "istio-ingress"), 1);
    assert_eq!(count("Sidecar.networking.istio.io", "routes-only"), 1);
    assert_eq!(count("MutatingWebhookConfiguration.admissionregistration.k8s.io", "*"), 5);
    assert_eq!(count("ValidatingWebhookConfiguration.admissionregistration.k8s.io", "*"), 3);
    assert_eq!(count("ClusterRole.rbac.authorization.k8s.io", "*"), 6);
    assert_eq!(count("Deployment.apps", "istio-system"), 2);
    assert_eq!(count("ConfigMap", "istio-system"), 6, "istio-ca-root-cert and kube-root-ca.crt are derived");
    assert_eq!(count("Secret", "istio-system"), 1);
    assert_eq!(count("Deployment.apps", "shop-canary"), 0, "applications are not Istio's");
    assert_eq!(count("Namespace", "*"), 10, "7 labelled, istio-system, and the two holding custom resources");
    assert_eq!(summary["caSecrets"], serde_json::json!(["istio-system/cacerts"]));

    // Never over an existing file without --force.
    let (code, _, err) = mesh.run(&["create", "-f", path(&archive)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("already exists") && err.contains("--force"), "{err}");
    assert!(!mesh.ok(&["create", "-f", path(&mesh.file("again.tar.gz"))]).contains("cacerts"), "no secrets unasked");

    let (code, out, err) = mesh.run(&["diff", path(&archive)]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");

    // Lose the Istio installation: the CRDs (and with them every custom resource), webhooks,
    // control plane and configuration, and an injection label.
    mesh.delete_istio_crds();
    mesh.kubectl(&[
        "delete",
        "mutatingwebhookconfigurations,validatingwebhookconfigurations,clusterroles,clusterrolebindings",
        "-l",
        "app.kubernetes.io/part-of=istio",
    ]);
    mesh.kubectl(&[
        "delete",
        "-n",
        "istio-system",
        "deployments,services,configmaps,secrets,serviceaccounts,roles,rolebindings,horizontalpodautoscalers",
        "--all",
    ]);
    mesh.kubectl(&["label", "namespace", "shop-stable", "istio.io/rev-"]);

    let (code, out, err) = mesh.run(&["diff", path(&archive), "-o", "json"]);
    assert_eq!(code, 1, "{err}");
    let differences: Vec<Value> = serde_json::from_str(&out).unwrap();
    let of = |change: &str| differences.iter().filter(|d| d["change"] == change).count();
    assert!(of("removed") > 40, "{differences:#?}");
    let namespace = differences.iter().find(|d| d["object"] == "namespace/shop-stable").unwrap();
    assert_eq!(namespace["change"], "changed");
    assert!(namespace["diff"].as_str().unwrap().contains("-    istio.io/rev: 1-30-3"), "{namespace}");

    let (code, out, err) = mesh.run(&["restore", path(&archive), "--yes", "-o", "json"]);
    assert_eq!(code, 0, "{err}\n{out}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let phases: Vec<&str> = rows.iter().map(|r| r["phase"].as_str().unwrap()).collect();
    assert_eq!(phases.first(), Some(&"crds"));
    assert_eq!(phases.last(), Some(&"validatingWebhooks"));
    assert!(rows_with(&rows, "failed").is_empty(), "{rows:#?}");
    assert!(rows_with(&rows, "created").contains(&"virtualservice.networking.istio.io/shop-canary/reviews"));
    assert!(rows_with(&rows, "updated").contains(&"namespace/shop-stable"), "the label came back");
    assert!(rows_with(&rows, "unchanged").contains(&"namespace/shop-canary"));
    let vs = mesh.plane.get_json(&["virtualservice", "-n", "shop-canary", "reviews", "--show-managed-fields"]).unwrap();
    assert_eq!(vs["spec"]["http"][0]["route"][0]["destination"]["subset"], "v2");
    let secret = mesh.plane.get_json(&["secret", "-n", "istio-system", "cacerts"]).unwrap();
    assert_eq!(secret["data"]["ca-key.pem"], "a2V5", "the CA key, exactly");
    let managers: Vec<&str> =
        vs["metadata"]["managedFields"].as_array().unwrap().iter().map(|m| m["manager"].as_str().unwrap()).collect();
    assert_eq!(managers, ["meshbackup"]);

    let (code, out, err) = mesh.run(&["diff", path(&archive)]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");

    let before = mesh.versions();
    let rows: Vec<Value> = serde_json::from_str(&mesh.ok(&["restore", path(&archive), "--yes", "-o", "json"])).unwrap();
    assert_eq!(rows_with(&rows, "unchanged").len(), rows.len(), "a rerun changes nothing");
    assert_eq!(mesh.versions(), before);
}

/// Rewrites an archive file by file, as someone who edits or forges one would.
fn rewrite(from: &Path, to: &Path, edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) {
    let mut input = Vec::new();
    std::fs::File::open(from).unwrap().read_to_end(&mut input).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(input.as_slice()));
    let mut out = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if let Some(bytes) = edit(&name, bytes) {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            out.append_data(&mut header, &name, bytes.as_slice()).unwrap();
        }
    }
    std::fs::write(to, out.into_inner().unwrap().finish().unwrap()).unwrap();
}

/// Corrupt, truncated, forged, foreign and newer archives, missing files, directories and unknown
/// kinds: a clear error, the documented exit code, and nothing applied.
#[test]
fn bad_input_is_refused_and_nothing_is_applied() {
    let mesh = Mesh::start();
    let good = mesh.file("good.tar.gz");
    mesh.ok(&["create", "-f", path(&good)]);
    // Something a restore would bring back, to prove that it did not.
    mesh.kubectl(&["delete", "virtualservice", "-n", "shop-canary", "reviews"]);
    let bytes = std::fs::read(&good).unwrap();

    let corrupt = mesh.file("corrupt.tar.gz");
    let mut flipped = bytes.clone();
    for b in &mut flipped[bytes.len() / 2..bytes.len() / 2 + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&corrupt, flipped).unwrap();
    let truncated = mesh.file("truncated.tar.gz");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let forged = mesh.file("forged.tar.gz");
    rewrite(&good, &forged, |name, bytes| {
        Some(if name.ends_with("shop-canary/reviews.yaml") {
            String::from_utf8(bytes).unwrap().replace("subset: v2", "subset: evil").into_bytes()
        } else {
            bytes
        })
    });
    let newer = mesh.file("newer.tar.gz");
    rewrite(&good, &newer, |name, bytes| {
        Some(if name == "meshbackup/FORMAT" { b"kubectl-meshbackup archive\nformat: 2\n".to_vec() } else { bytes })
    });
    let manifest_missing = mesh.file("no-manifest.tar.gz");
    rewrite(&good, &manifest_missing, |name, bytes| (name != "meshbackup/manifest.json").then_some(bytes));
    let foreign = mesh.file("foreign.yaml");
    std::fs::File::create(&foreign).unwrap().write_all(CUSTOM_RESOURCES.as_bytes()).unwrap();
    let unreadable = mesh.file("unreadable.tar.gz");
    std::fs::write(&unreadable, &bytes).unwrap();
    std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
    let as_root = std::fs::File::open(&unreadable).is_ok();

    let before = mesh.versions();
    let mut cases: Vec<(Vec<String>, i32, &str)> = vec![
        (vec![path(&corrupt).into()], 8, "corrupt or truncated"),
        (vec![path(&truncated).into()], 8, "corrupt or truncated"),
        (
            vec![path(&forged).into()],
            8,
            "checksum mismatch for objects/networking.istio.io/VirtualService/shop-canary/reviews.yaml",
        ),
        (vec![path(&newer).into()], 8, "format version 2; this kubectl-meshbackup reads versions up to 1"),
        (vec![path(&manifest_missing).into()], 8, "it ends before the manifest"),
        (vec![path(&foreign).into()], 8, "not a kubectl-meshbackup archive"),
        (vec![path(&mesh.file("missing.tar.gz")).into()], 2, "cannot read"),
        (vec![path(mesh.dir.path()).into()], 2, "is a directory, not a backup archive"),
        (vec![path(&good).into(), "--only".into(), "Telemetry".into()], 2, "unknown kind \"Telemetry\" for --only"),
        (vec![path(&good).into(), "--dry-run=client".into()], 2, "--dry-run=client is not supported"),
        (vec![path(&good).into(), "-n".into(), "nowhere".into()], 5, "nothing to restore"),
        (vec![path(&good).into()], 6, "not confirmed"),
    ];
    if !as_root {
        cases.push((vec![path(&unreadable).into()], 2, "cannot read"));
    }
    for (args, code, message) in &cases {
        let mut all = vec!["restore"];
        all.extend(args.iter().map(String::as_str));
        if *code != 6 {
            all.push("--yes");
        }
        let (got, out, err) = mesh.run(&all);
        assert_eq!(got, *code, "{all:?}: {err}");
        assert!(err.contains(message) && err.contains("hint:"), "{all:?}: {err}");
        assert!(out.is_empty(), "{all:?}: nothing reported as restored: {out}");
    }
    for (command, code) in [("inspect", 8), ("diff", 8)] {
        let (got, _, err) = mesh.run(&[command, path(&forged)]);
        assert_eq!(got, code, "{command}: {err}");
    }
    let (code, _, err) = mesh.run(&["inspect", path(&newer)]);
    assert_eq!(code, 8, "{err}");
    assert_eq!(mesh.versions(), before, "nothing was written");
    assert!(mesh.plane.get_json(&["virtualservice", "-n", "shop-canary", "reviews"]).is_none());
}

/// Objects changed since the backup: the diff shows how, a restore reports the conflict and
/// leaves them alone, a server dry run with --force-conflicts shows what would change, and
/// --force-conflicts takes them over.
#[test]
fn conflicts_are_reported_and_force_conflicts_takes_over() {
    let mesh = Mesh::start();
    let archive = mesh.file("backup.tar.gz");
    mesh.ok(&["create", "-f", path(&archive)]);
    let edited = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: shop-canary}\n\
                  spec:\n  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews, subset: v3}}]}]\n";
    let mut apply = mesh.plane.kubectl();
    apply.args(["apply", "--server-side", "--field-manager=someone-else", "--force-conflicts", "-f", "-"]);
    let mut child = apply.stdin(std::process::Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(edited.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    let subset = || {
        mesh.plane.get_json(&["virtualservice", "-n", "shop-canary", "reviews"]).unwrap()["spec"]["http"][0]["route"][0]
            ["destination"]["subset"]
            .clone()
    };

    let (code, out, err) = mesh.run(&["diff", path(&archive)]);
    assert_eq!(code, 1, "{err}");
    assert!(out.starts_with("changed virtualservice.networking.istio.io/shop-canary/reviews\n--- archive/"), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with('-') && l.trim_start_matches('-').trim() == "subset: v2"), "{out}");
    assert!(lines.iter().any(|l| l.starts_with('+') && l.trim_start_matches('+').trim() == "subset: v3"), "{out}");

    let only = ["--only", "virtualservices", "-n", "shop-canary", "-o", "json"];
    let restore = |extra: &[&str]| {
        let (code, out, err) = mesh.run(&[&["restore", path(&archive)][..], extra, &only].concat());
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
        assert_eq!(rows.len(), 1, "{rows:#?}");
        (code, rows[0].clone(), err)
    };
    let (code, row, err) = restore(&["--yes"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        (row["object"].as_str(), row["result"].as_str()),
        (Some("virtualservice.networking.istio.io/shop-canary/reviews"), Some("failed"))
    );
    assert_eq!(row["conflict"], true);
    assert!(row["message"].as_str().unwrap().contains("someone-else"), "the conflict names the other manager: {row}");
    assert!(err.contains("--force-conflicts"), "{err}");
    assert_eq!(subset(), "v3", "left alone");

    let (code, row, err) = restore(&["--dry-run=server", "--force-conflicts"]);
    assert_eq!((code, row["result"].as_str()), (0, Some("updated")), "{err}");
    assert_eq!(subset(), "v3", "a dry run persists nothing");

    let (code, row, err) = restore(&["--yes", "--force-conflicts"]);
    assert_eq!((code, row["result"].as_str()), (0, Some("updated")), "{err}");
    assert_eq!(subset(), "v2");
    let (code, row, _) = restore(&["--yes"]);
    assert_eq!((code, row["result"].as_str()), (0, Some("unchanged")), "meshbackup owns it now");
    let (code, _, err) = mesh.run(&["diff", path(&archive)]);
    assert_eq!(code, 0, "{err}");
}

/// The apiserver stops in the middle of a restore: the run stops with exit 3 (unreachable), and a
/// rerun once it is back converges.
#[test]
fn a_restore_interrupted_by_the_apiserver_converges_on_rerun() {
    const SERVICES: usize = 1500;
    let mut mesh = Mesh::start();
    let mut manifest = String::from("apiVersion: v1\nkind: Namespace\nmetadata: {name: drill}\n---\n");
    for i in 0..SERVICES {
        manifest.push_str(&format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs-{i:04}, namespace: drill}}\n\
             spec: {{hosts: [svc-{i:04}], http: [{{route: [{{destination: {{host: svc-{i:04}}}}}]}}]}}\n---\n"
        ));
    }
    mesh.plane.apply(&manifest).unwrap();
    let archive = mesh.file("drill.tar.gz");
    mesh.ok(&["create", "-f", path(&archive)]);
    mesh.kubectl(&["delete", "virtualservices", "-n", "drill", "--all", "--wait=false"]);
    let count = |mesh: &Mesh| mesh.kubectl(&["get", "virtualservices", "-n", "drill", "-o", "name"]).lines().count();
    while count(&mesh) > 0 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let first = meshbackup(&mesh.plane.kubeconfig)
        .args(["restore", path(&archive), "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let limit = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while count(&mesh) < 50 {
        assert!(std::time::Instant::now() < limit, "the restore never got to the custom resources");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    mesh.plane.stop_apiserver().unwrap();
    let out = first.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "the interrupted run fails as unreachable: {err}");
    assert!(err.contains("cannot reach the cluster"), "{err}");
    mesh.plane.start_apiserver().unwrap();
    let restored = count(&mesh);
    assert!(restored < SERVICES, "the apiserver stopped before the end ({restored} restored)");

    let rows: Vec<Value> = serde_json::from_str(&mesh.ok(&["restore", path(&archive), "--yes", "-o", "json"])).unwrap();
    let created = rows_with(&rows, "created").len();
    assert_eq!(created, SERVICES - restored, "the rerun creates exactly what was missing");
    assert_eq!(rows_with(&rows, "unchanged").len(), rows.len() - created);
    assert_eq!(count(&mesh), SERVICES);
    let (code, out, err) = mesh.run(&["diff", path(&archive)]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
}
