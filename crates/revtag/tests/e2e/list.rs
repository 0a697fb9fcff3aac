//! `kubectl revtag list` end to end.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use meshtest::{CANARY, STABLE};
use serde_json::Value;

use crate::common::*;

#[test]
fn lists_tags_revisions_versions_and_namespaces_of_the_fixture() {
    let plane = fixture();
    let rows = list_json(plane);
    let default = row(&rows, Some("default"), STABLE.name);
    assert_eq!(default["version"], STABLE.version);
    assert_eq!(default["revisionInstalled"], true);
    assert_eq!(strings(&default["injectionLabelNamespaces"]), ["shop-both", "shop-legacy"]);
    assert_eq!(strings(&row(&rows, Some("prod-stable"), STABLE.name)["namespaces"]), ["shop-tagged"]);
    let canary = row(&rows, Some("prod-canary"), CANARY.name);
    assert_eq!(canary["version"], CANARY.version);
    assert_eq!(strings(&canary["namespaces"]), ["shop-canary", "shop-optout"]);
    assert_eq!(strings(&row(&rows, None, STABLE.name)["namespaces"]), ["shop-stable"]);
    assert_eq!(rows.len(), 4, "{rows:#?}");
}

#[test]
fn table_output_and_warnings_go_to_the_right_streams() {
    let plane = fixture();
    let (code, out, err) = run(revtag(&plane.kubeconfig).arg("list"));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["TAG", "REVISION", "VERSION", "MANAGED-BY", "NAMESPACES"]
    );
    assert!(out.contains("shop-both (istio-injection),shop-legacy (istio-injection)"), "{out}");
    assert!(!out.contains('\u{1b}'), "no colour when stdout is not a terminal");
    assert!(
        err.contains("warning: namespace shop-both: istio-injection=enabled overrides istio.io/rev=1-31-1"),
        "{err}"
    );
    assert!(!out.contains("warning"), "diagnostics stay off stdout");

    let (_, no_headers, _) = run(revtag(&plane.kubeconfig).args(["list", "--no-headers"]));
    assert_eq!(no_headers.lines().count(), lines.len() - 1);
    let (code, yaml, _) = run(revtag(&plane.kubeconfig).args(["list", "--output=yaml"]));
    assert_eq!(code, 0);
    assert!(yaml.contains("revision: 1-31-1") && yaml.contains("tag: prod-canary"), "{yaml}");
}

#[test]
fn istio_namespace_flag_points_elsewhere() {
    let plane = fixture();
    let (code, out, err) = run(revtag(&plane.kubeconfig).args(["list", "--istio-namespace", "kube-system"]));
    assert_eq!(code, 5, "{out}{err}");
    assert!(err.contains("no Istio control plane found") && err.contains("kube-system"), "{err}");
}

/// The apiserver's audit log says which requests the command made: a fixed number of
/// label-selected lists, never a request per namespace.
#[test]
fn makes_five_label_selected_list_requests() {
    let plane = fixture();
    let user = "request-counter";
    plane
        .kubectl_ok(&["create", "clusterrolebinding", user, "--clusterrole=cluster-admin", &format!("--user={user}")])
        .unwrap();
    let kubeconfig = plane.user_kubeconfig(user, &[]).unwrap();
    let (code, _, err) = run(revtag(&kubeconfig).arg("list"));
    assert_eq!(code, 0, "{err}");
    // The audit backend writes asynchronously.
    let deadline = Instant::now() + Duration::from_secs(10);
    let requests = loop {
        let log = std::fs::read_to_string(plane.dir.join("logs/audit.log")).unwrap();
        let requests: Vec<Value> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["user"]["username"] == user && e["stage"] == "ResponseComplete")
            .collect();
        if requests.len() >= 5 || Instant::now() > deadline {
            break requests;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let uris: Vec<&str> = requests.iter().map(|e| e["requestURI"].as_str().unwrap()).collect();
    assert_eq!(requests.len(), 5, "{uris:#?}");
    assert!(requests.iter().all(|e| e["verb"] == "list"), "{uris:#?}");
    assert!(uris.iter().all(|u| u.contains("labelSelector=") && u.contains("limit=500")), "{uris:#?}");
}

#[test]
fn works_as_a_kubectl_plugin() {
    let plane = fixture();
    // Installed as a user would: the binary alone in a directory on PATH.
    let bin_dir = tempfile::tempdir().unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_kubectl-revtag"), bin_dir.path().join("kubectl-revtag")).unwrap();
    let path = std::env::join_paths([
        bin_dir.path().to_path_buf(),
        plane.tools.k8s_bin.clone(),
        "/usr/bin".into(),
        "/bin".into(),
    ])
    .unwrap();
    let kubectl = |args: &[&str]| {
        run(Command::new(plane.tools.kubectl())
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", &plane.kubeconfig)
            .env("HOME", std::env::temp_dir()))
    };
    let (code, out, err) = kubectl(&["plugin", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kubectl-revtag"), "{out}");
    assert!(!err.contains("warning"), "{err}");
    let (code, out, err) = kubectl(&["revtag", "list", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    assert!(rows.as_array().unwrap().iter().any(|r| r["tag"] == "prod-canary"), "{out}");
}

#[test]
fn forbidden_names_the_user_and_the_denied_request() {
    let plane = fixture();
    let kubeconfig = plane.user_kubeconfig("nobody", &[]).unwrap();
    let (code, out, err) = run(revtag(&kubeconfig).arg("list"));
    assert_eq!(code, 4, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("User \"nobody\" cannot list resource"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(err.lines().count(), 2, "one error line and one hint: {err}");
}

#[test]
fn impersonation_flags_are_sent() {
    let plane = fixture();
    let (code, _, err) = run(revtag(&plane.kubeconfig).args(["list", "--as", "someone", "--as-group", "nobodies"]));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("User \"someone\""), "{err}");
}

#[test]
fn exec_credential_plugins_authenticate() {
    let plane = fixture();
    let dir = tempfile::tempdir().unwrap();
    // An exec plugin that hands out a client certificate, as cloud login helpers hand out tokens.
    let (cert, key, ca) = plane.client_credentials("exec-user", &["system:masters"]).unwrap();
    let credential = serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"clientCertificateData": cert, "clientKeyData": key}
    });
    std::fs::write(dir.path().join("cred.json"), credential.to_string()).unwrap();
    let script = dir.path().join("login.sh");
    std::fs::write(&script, format!("#!/bin/sh\ncat {}\n", dir.path().join("cred.json").display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, ca).unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: exec\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\ncontexts:\n- name: exec\n  context: {{cluster: c, user: u}}\n",
            plane.server,
            ca_file.display(),
            script.display()
        ),
    )
    .unwrap();
    let (code, out, err) = run(revtag(&kubeconfig).args(["list", "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("prod-canary"));
}

#[test]
fn kubeconfig_paths_merge_like_kubectl() {
    let plane = fixture();
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read_to_string(&plane.kubeconfig).unwrap();
    // The first file holds only the context and points at it; the second holds cluster and user.
    let first = dir.path().join("contexts");
    std::fs::write(
        &first,
        "apiVersion: v1\nkind: Config\ncurrent-context: merged\ncontexts:\n- name: merged\n  context: {cluster: meshtest, user: admin}\n",
    )
    .unwrap();
    let second = dir.path().join("credentials");
    std::fs::write(&second, full.replace("current-context: meshtest\n", "")).unwrap();
    // kubectl skips listed files that do not exist.
    let joined = std::env::join_paths([&dir.path().join("missing"), &first, &second]).unwrap();
    let (code, out, err) = run(revtag(&first).env("KUBECONFIG", joined).args(["list", "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("prod-canary"));
    // --kubeconfig replaces KUBECONFIG, as in kubectl.
    let (code, _, err) = run(revtag(&first).args(["list", "--kubeconfig"]).arg(&plane.kubeconfig));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn unreachable_server_names_context_and_server_and_returns_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: gone\nclusters:\n- name: c\n  cluster: {{server: 'https://127.0.0.1:{port}'}}\nusers:\n- name: u\n  user: {{token: x}}\ncontexts:\n- name: gone\n  context: {{cluster: c, user: u}}\n"
        ),
    )
    .unwrap();
    let started = Instant::now();
    let (code, out, err) = run(revtag(&kubeconfig).args(["list", "--request-timeout=5s"]));
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty());
    let first = err.lines().next().unwrap();
    assert!(first.contains("context \"gone\"") && first.contains(&format!("https://127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("panicked") && !err.contains("Backtrace"), "{err}");
}

#[test]
fn a_hung_server_is_given_up_on_after_the_request_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = meshtest::hanging_kubeconfig(dir.path());
    let (code, out, err) = run(revtag(&kubeconfig).args(["list", "--request-timeout=1s"]));
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty());
    let first = err.lines().next().unwrap();
    assert!(first.contains("context \"hung\"") && first.contains("1s"), "{err}");
    assert!(err.contains("hint: raise --request-timeout"), "{err}");
}

#[test]
fn missing_kubeconfig_and_unknown_context_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(revtag(&dir.path().join("absent")).arg("list"));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot use the kubeconfig") && err.contains("hint:"), "{err}");

    let plane = fixture();
    let (code, _, err) = run(revtag(&plane.kubeconfig).args(["list", "--context", "nope"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("context \"nope\" is not in the kubeconfig") && err.contains("known contexts: meshtest"),
        "{err}"
    );
}

#[test]
fn usage_errors_are_one_line_with_a_hint_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (vec!["list", "-o", "xml"], "unknown output format \"xml\""),
        (vec!["list", "--frobnicate"], "unknown flag --frobnicate"),
        (vec!["frobnicate"], "unknown command \"frobnicate\""),
        (vec!["list", "--request-timeout", "soon"], "invalid --request-timeout \"soon\""),
        (vec!["list", "--context"], "flag --context needs a value"),
    ] {
        let (code, out, err) = run(revtag(&dir.path().join("absent")).args(&args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{args:?}: {err}");
        assert!(lines[0].starts_with(&format!("kubectl-revtag: error: {expected}")), "{err}");
        assert!(lines[1].starts_with("kubectl-revtag: hint: "), "{err}");
    }
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(revtag(Path::new("/nonexistent")).arg("--help"));
    assert_eq!(code, 0);
    assert!(out.contains("kubectl revtag <command>") && out.contains("--istio-namespace"));
    let (code, out, _) = run(revtag(Path::new("/nonexistent")).arg("--version"));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("kubectl-revtag {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn no_istio_installed_is_said_plainly() {
    let plane = bare();
    let (code, out, err) = run(revtag(&plane.kubeconfig).arg("list"));
    assert_eq!(code, 5, "{err}");
    assert!(out.is_empty());
    assert!(err.starts_with("kubectl-revtag: error: no Istio control plane found"), "{err}");
}

#[test]
fn a_tag_whose_revision_is_gone_is_marked() {
    let plane = bare();
    plane.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: orphans\n  labels: {istio.io/rev: old}\n").unwrap();
    plane
        .apply(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata:\n  name: istio-revision-tag-old\n  labels: {istio.io/rev: 1-29-0, istio.io/tag: old, app: sidecar-injector}\nwebhooks:\n- name: rev.namespace.sidecar-injector.istio.io\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  clientConfig:\n    service: {name: istiod-1-29-0, namespace: istio-system, path: /inject, port: 443}\n  rules:\n  - operations: [CREATE]\n    apiGroups: ['']\n    apiVersions: [v1]\n    resources: [pods]\n  namespaceSelector:\n    matchExpressions:\n    - {key: istio.io/rev, operator: In, values: [old]}\n",
        )
        .unwrap();
    let (code, out, err) = run(revtag(&plane.kubeconfig).arg("list"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("old   1-29-0 (missing)   -         -            orphans"), "{out}");
    assert!(err.contains("tag old points at revision 1-29-0, which is not installed"), "{err}");
}
