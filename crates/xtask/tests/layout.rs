//! The code's shape, checked: Istio's rules live in `meshkit::istio`, so no plugin spells an
//! Istio label, annotation or selector itself; and no plugin's modules import each other in a
//! circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use meshtest::repo_root;

const PLUGINS: &[&str] = &["revtag", "meshcheck", "meshmigrate", "meshbackup"];

/// Keys and selectors whose meaning is Istio's: they are constants in `meshkit::istio::keys`.
const ISTIO_LITERALS: &[&str] = &[
    "\"istio.io/rev",
    "\"istio.io/tag",
    "\"istio-injection",
    "\"sidecar.istio.io/inject",
    "\"sidecar.istio.io/status",
    "\"app=istiod",
    "\"security.istio.io/tlsMode",
    "\"service.istio.io/canonical-name",
    "\"istio.io/dataplane-mode",
    "\"inject.istio.io/templates",
    "\"proxy.istio.io/config",
    "\"istio.io/deactivated",
];

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The file without its test module and test-only files.
fn non_test(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy();
    if name == "tests.rs" || name.ends_with("_tests.rs") {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    Some(match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    })
}

#[test]
fn no_plugin_spells_an_istio_label_of_its_own() {
    let mut found = Vec::new();
    for plugin in PLUGINS {
        for path in sources(&repo_root().join("crates").join(plugin).join("src")) {
            let Some(text) = non_test(&path) else { continue };
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if let Some(literal) = ISTIO_LITERALS.iter().find(|l| code.contains(*l)) {
                    found.push(format!("{}:{}: {literal}…", path.display(), n + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "use meshkit::istio::keys instead:\n{}", found.join("\n"));
}

/// `crate::a::…` references of each module of a plugin: module → modules it uses.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = sources(src);
    let module_of = |path: &Path| -> String {
        let relative = path.strip_prefix(src).unwrap().with_extension("");
        relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned()
    };
    let modules: BTreeSet<String> = files.iter().map(|p| module_of(p)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let Some(text) = non_test(path) else { continue };
        let from = module_of(path);
        for piece in text.split("crate::").skip(1) {
            let target: String = piece.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if target != from && modules.contains(&target) {
                graph.entry(from.clone()).or_default().insert(target);
            }
        }
        // `use crate::{a, b::c}`
        for group in text.split("crate::{").skip(1) {
            let inner = group.split('}').next().unwrap_or("");
            for item in inner.split(',') {
                let target: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if target != from && modules.contains(&target) {
                    graph.entry(from.clone()).or_default().insert(target);
                }
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(node) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn no_plugin_module_imports_itself_through_others() {
    let mut circles = Vec::new();
    for plugin in PLUGINS {
        let graph = module_graph(&repo_root().join("crates").join(plugin).join("src"));
        for (module, uses) in &graph {
            for used in uses {
                if module < used && reaches(&graph, used, module) {
                    circles.push(format!("{plugin}: {module} ↔ {used}"));
                }
            }
        }
    }
    assert!(circles.is_empty(), "import circles:\n{}", circles.join("\n"));
}

/// Files stay small enough to read at once: about 450 lines (code and tests of every crate, and
/// the test harness).
#[test]
fn no_file_is_over_about_450_lines() {
    const LIMIT: usize = 460;
    let mut long = Vec::new();
    let crates = std::fs::read_dir(repo_root().join("crates")).unwrap().flatten().map(|e| e.path());
    for root in crates.chain([repo_root().join("tests/harness")]) {
        for path in sources(&root) {
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            if lines > LIMIT {
                long.push(format!("{}: {lines} lines", path.display()));
            }
        }
    }
    assert!(long.is_empty(), "split these by concern:\n{}", long.join("\n"));
}
