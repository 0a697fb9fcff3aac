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
