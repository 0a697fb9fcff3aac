//! `plugins.yaml`, the plugin catalogue: one entry per plugin, the single source of its krew
//! manifest and of the one-line "about" at the top of its help.

use serde::Deserialize;

/// The catalogue as shipped in this build.
pub const SOURCE: &str = include_str!("../../../plugins.yaml");

/// krew's `kubectl krew search` cuts short descriptions here.
pub const SHORT_DESCRIPTION_LIMIT: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    pub plugins: Vec<Plugin>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plugin {
    /// What users type after `kubectl` and what krew installs it as.
    pub name: String,
    /// The Cargo package under `crates/`.
    #[serde(rename = "crate")]
    pub crate_name: String,
    pub binary: String,
    pub homepage: String,
    pub short_description: String,
    pub description: String,
    #[serde(default)]
    pub caveats: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CatalogueError {
    #[error("plugins.yaml is not a valid catalogue: {0}")]
    Parse(String),
    #[error("plugins.yaml, plugin {plugin:?}: {problem}")]
    Invalid { plugin: String, problem: String },
}

impl Catalogue {
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let catalogue: Catalogue = serde_saphyr::from_str(text).map_err(|e| CatalogueError::Parse(e.to_string()))?;
        catalogue.validate()?;
        Ok(catalogue)
    }

    /// The catalogue compiled into this binary.
    pub fn shipped() -> Catalogue {
        Catalogue::parse(SOURCE).expect("plugins.yaml is validated by meshkit's tests")
    }

    pub fn plugin(&self, name: &str) -> Option<&Plugin> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// The rules krew and kubectl enforce, checked before anything is built from the catalogue.
    fn validate(&self) -> Result<(), CatalogueError> {
        let mut seen = std::collections::BTreeSet::new();
        for plugin in &self.plugins {
            let invalid = |problem: String| CatalogueError::Invalid { plugin: plugin.name.clone(), problem };
            let kebab = |s: &str| {
                !s.is_empty()
                    && s.split('-')
                        .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
            };
            if !kebab(&plugin.name) {
                return Err(invalid("the name must be lowercase kebab-case".into()));
            }
            if !seen.insert(&plugin.name) {
                return Err(invalid("listed twice".into()));
            }
            // kubectl finds `kubectl foo-bar` as `kubectl-foo_bar`; krew links it under that name.
            let expected = format!("kubectl-{}", plugin.name.replace('-', "_"));
            if plugin.binary != expected {
                return Err(invalid(format!("the binary must be called {expected} for kubectl to find it")));
            }
            let short = &plugin.short_description;
            if short.trim().is_empty() || short.contains(['\n', '\r']) {
                return Err(invalid("shortDescription must be one non-empty line".into()));
            }
            if short.chars().count() > SHORT_DESCRIPTION_LIMIT {
                return Err(invalid(format!("shortDescription is longer than {SHORT_DESCRIPTION_LIMIT} characters")));
            }
            if plugin.description.trim().is_empty() {
                return Err(invalid("description is empty".into()));
            }
            if !plugin.homepage.starts_with("https://") {
                return Err(invalid("homepage must be an https:// URL".into()));
            }
        }
        Ok(())
    }
}

/// The one-line description of `name` for the top of its help.
pub fn about(name: &str) -> String {
    Catalogue::shipped().plugin(name).map(|p| p.short_description.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalogue_is_valid_and_names_real_crates() {
        let catalogue = Catalogue::shipped();
        assert!(catalogue.plugins.len() >= 3);
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for plugin in &catalogue.plugins {
            let manifest = std::fs::read_to_string(crates.join(&plugin.crate_name).join("Cargo.toml"))
                .unwrap_or_else(|e| panic!("{}: no crate {}: {e}", plugin.name, plugin.crate_name));
            assert!(
                manifest.contains(&format!("name = \"{}\"", plugin.binary)),
                "{} does not build {}",
                plugin.crate_name,
                plugin.binary
            );
        }
        assert_eq!(about("revtag"), "Manage Istio revisions and revision tags");
        assert_eq!(about("nope"), "");
    }

    fn one(entry: &str) -> Result<Catalogue, CatalogueError> {
        Catalogue::parse(&format!("plugins:\n  - {}", entry.replace('\n', "\n    ")))
    }

    const GOOD: &str = "name: foo-bar\ncrate: foo\nbinary: kubectl-foo_bar\nhomepage: https://example.com\n\
                        shortDescription: Do foo\ndescription: Does foo.";

    #[test]
    fn rejects_what_krew_or_kubectl_would() {
        assert!(one(GOOD).is_ok());
        let bad = |from: &str, to: &str| match one(&GOOD.replace(from, to)) {
            Err(CatalogueError::Invalid { problem, .. }) => problem,
            other => panic!("{from} → {to}: {other:?}"),
        };
        assert!(bad("name: foo-bar", "name: Foo").contains("kebab-case"));
        assert!(bad("kubectl-foo_bar", "kubectl-foo-bar").contains("kubectl-foo_bar"));
        assert!(bad("Do foo", &"x".repeat(51)).contains("50 characters"));
        assert!(bad("https://example.com", "http://example.com").contains("https"));
        assert!(matches!(one(&format!("{GOOD}\nextra: 1")), Err(CatalogueError::Parse(_))));
        let twice = Catalogue::parse(&format!("plugins:\n  - {g}\n  - {g}", g = GOOD.replace('\n', "\n    ")));
        assert!(matches!(twice, Err(CatalogueError::Invalid { problem, .. }) if problem == "listed twice"));
    }
}
