//! The checks' documentation, generated from the catalogue: `kubectl meshcheck explain CODE` and
//! `docs/checks.md`.

use super::catalogue::CHECKS;
use super::check::{Check, Stage::*};

/// `kubectl meshcheck explain CODE`: the check's documentation, as in `docs/checks.md`.
pub fn explain(c: &Check) -> String {
    let stage = match c.stage {
        Precheck => "precheck",
        Verify => "verify",
        Manifest => "manifest",
    };
    let level = serde_json::to_value(c.level).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    format!(
        "{} ({stage}, {}, {level})\n\n{}.\n\nWhat to do: {}.\n",
        c.code,
        c.category,
        capitalise(c.description),
        c.hint
    )
}

/// `docs/checks.md`, generated.
pub fn markdown() -> String {
    let mut out = String::from(
        "# meshcheck checks\n\n<!-- Generated from crates/meshcheck/src/catalogue.rs by `kubectl-meshcheck catalogue`; do not edit. -->\n\n",
    );
    for stage in [Precheck, Verify, Manifest] {
        out.push_str(&format!(
            "## {}\n\n| code | category | level | check |\n|---|---|---|---|\n",
            match stage {
                Precheck => "precheck",
                Verify => "verify",
                Manifest => "manifest",
            }
        ));
        for c in CHECKS.iter().filter(|c| c.stage == stage) {
            out.push_str(&format!(
                "| [{}](#{}) | {} | {} | {} |\n",
                c.code,
                c.anchor(),
                c.category,
                serde_json::to_value(c.level).unwrap().as_str().unwrap(),
                c.description
            ));
        }
        out.push('\n');
    }
    for c in CHECKS {
        out.push_str(&format!("### {}\n\n{}.\n\nWhat to do: {}.\n\n", c.code, capitalise(c.description), c.hint));
    }
    out
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut codes: Vec<&str> = CHECKS.iter().map(|c| c.code).collect();
        codes.sort();
        let before = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), before, "duplicate codes");
        assert!(
            CHECKS.iter().all(|c| c.code.len() == 6
                && c.code.starts_with("MC")
                && c.code[2..].bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(CHECKS.iter().all(|c| !c.description.ends_with('.') && !c.hint.ends_with('.')));
        let declared = include_str!("catalogue.rs").matches("pub static MC").count();
        assert_eq!(declared, CHECKS.len(), "every check declared in the catalogue is in CHECKS");
    }

    /// Each check runs where it is documented: cluster checks in their stage (and maybe verify
    /// too), manifest checks only in `manifest`.
    #[test]
    fn every_check_runs_in_its_documented_stage() {
        use crate::checks::check::{Run, Stage};
        for check in CHECKS {
            match (check.stage, check.run) {
                (Stage::Manifest, Run::Manifest) => {}
                (stage, Run::Cluster(stages, _)) => {
                    assert_eq!(stages.first(), Some(&stage), "{}", check.code);
                    assert!(!stages.contains(&Stage::Manifest), "{}", check.code);
                }
                (stage, run) => {
                    panic!("{}: documented in {stage:?}, runs {}", check.code, matches!(run, Run::Manifest))
                }
            }
        }
    }

    #[test]
    fn docs_are_generated_from_the_catalogue() {
        let committed = include_str!("../../../../docs/checks.md");
        assert_eq!(
            committed,
            markdown(),
            "docs/checks.md is stale: run `cargo run -p meshcheck -- catalogue > docs/checks.md`"
        );
    }
}
