//! `docs/<plugin>.md` is what the binaries print: regenerate with `cargo xtask docs`.

mod common;

#[test]
fn reference_pages_match_the_plugins_help() {
    for plugin in xtask::docs::PLUGINS {
        let binary = common::built_binary(&format!("kubectl-{plugin}"));
        let fresh = xtask::docs::reference(plugin, &binary).unwrap();
        let path = meshtest::repo_root().join("docs").join(format!("{plugin}.md"));
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == fresh, "{} is stale: run `cargo xtask docs`", path.display());
    }
}

/// Every homepage in plugins.yaml (and so in the krew manifests) names a page that exists here.
#[test]
fn every_homepage_resolves() {
    let root = meshtest::repo_root();
    for plugin in &meshkit::catalogue::Catalogue::shipped().plugins {
        let (_, path) = plugin.homepage.split_once("/blob/main/").unwrap_or_else(|| {
            panic!("{}: homepage {} is not a page of this repository", plugin.name, plugin.homepage)
        });
        assert!(root.join(path).is_file(), "{}: {} does not exist", plugin.name, path);
    }
}

/// Relative links in the README, CONTRIBUTING.md and docs/ point at files that exist.
#[test]
fn relative_links_resolve() {
    let root = meshtest::repo_root();
    let mut pages = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    for dir in ["docs", "docs/details"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "md") {
                pages.push(entry.path());
            }
        }
    }
    let link = regex::Regex::new(r"\]\(([^)#:\s]+)(#[^)]*)?\)").unwrap();
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for found in link.captures_iter(&text) {
            // docs/details/ pages are rendered into docs/<plugin>.md: their links are relative to docs/.
            let base = page.parent().unwrap();
            let base = if base.ends_with("details") { base.parent().unwrap() } else { base };
            let target = base.join(&found[1]);
            if !target.exists() {
                broken.push(format!("{}: {}", page.display(), &found[1]));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The README's walkthrough is what the commands print on Tier C today.
#[test]
fn the_readme_walkthrough_is_real_output() {
    let plugins = common::built_binary("kubectl-revtag").parent().unwrap().to_path_buf();
    let readme = std::fs::read_to_string(meshtest::repo_root().join("README.md")).unwrap();
    let record = || xtask::docs::splice(&readme, &xtask::docs::record_walkthrough(&plugins).unwrap()).unwrap();
    // Column padding follows the widest cell, and a restarted pod's template hash is 8 to 10
    // characters: tables are compared without their padding.
    let padding = regex::Regex::new(" {2,}").unwrap();
    let same = |a: &str, b: &str| padding.replace_all(a, "  ") == padding.replace_all(b, "  ");
    let mut expected = record();
    if !same(&readme, &expected) {
        // Two recordings must both differ: a change in what the plugins print does, a race in
        // the cluster (a pod not yet gone) rarely twice.
        eprintln!("the walkthrough differed from README.md once; recording it again");
        expected = record();
    }
    if !same(&readme, &expected) {
        let diff = similar::TextDiff::from_lines(&readme, &expected);
        panic!("README.md's walkthrough is stale: run `cargo xtask docs`\n{}", diff.unified_diff().context_radius(2));
    }
}

/// A flag name means one thing across the four plugins: the same short form (or none) and the
/// same kind of value, wherever it appears; and a short form names one flag.
#[test]
fn a_flag_means_one_thing_in_every_plugin() {
    use std::collections::{BTreeMap, BTreeSet};
    let mut by_long: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut by_short: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for plugin in xtask::docs::PLUGINS {
        let page = std::fs::read_to_string(meshtest::repo_root().join("docs").join(format!("{plugin}.md"))).unwrap();
        for line in page.lines().filter(|l| l.starts_with("  ") && l.trim_start().starts_with('-')) {
            // `  -f, --filename FILE   about`: the declaration ends at the first run of two spaces.
            let declaration = line.trim_start().split("  ").next().unwrap();
            let (short, rest) = match declaration.split_once(", ") {
                Some((short, rest)) if short.len() == 2 => (Some(short), rest),
                _ => (None, declaration),
            };
            let Some(long) = rest.strip_prefix("--") else { continue };
            let (name, value) = long.split_once([' ', '[']).unwrap_or((long, ""));
            by_long.entry(name.to_string()).or_default().insert(format!("{short:?} {value}"));
            if let Some(short) = short {
                by_short.entry(short.to_string()).or_default().insert(name.to_string());
            }
        }
    }
    assert!(by_long.len() > 20, "the help pages list the flags: {by_long:?}");
    let two_meanings: Vec<_> = by_long.iter().filter(|(_, forms)| forms.len() > 1).collect();
    assert!(two_meanings.is_empty(), "declared differently in different places: {two_meanings:?}");
    let shared_short: Vec<_> = by_short.iter().filter(|(_, longs)| longs.len() > 1).collect();
    assert!(shared_short.is_empty(), "one short form for several flags: {shared_short:?}");
}
