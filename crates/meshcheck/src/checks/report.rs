//! Findings, the report they make, its exit code, and how it is shown.

use meshkit::Exit;
use meshkit::render::{Tone, paint};
use serde::Serialize;

use super::catalogue::CHECKS;
use super::check::{Check, Level};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warning,
    Error,
    /// The check could not run (say why in the message).
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static Check,
    pub outcome: Outcome,
    /// What was found, on one line.
    pub message: Option<String>,
    /// The objects the finding concerns (`namespace/shop-both`, `pod/ns/name`).
    pub objects: Vec<String>,
}

impl Finding {
    pub fn pass(check: &'static Check) -> Self {
        Finding { check, outcome: Outcome::Pass, message: None, objects: Vec::new() }
    }

    pub fn pass_with(check: &'static Check, message: impl Into<String>) -> Self {
        Finding { message: Some(message.into()), ..Self::pass(check) }
    }

    /// A failure at the check's own level.
    pub fn fail(check: &'static Check, message: impl Into<String>, objects: Vec<String>) -> Self {
        let outcome = match check.level {
            Level::Error => Outcome::Error,
            Level::Warning => Outcome::Warning,
        };
        Finding { check, outcome, message: Some(message.into()), objects }
    }

    /// A milder finding than the check's level (e.g. "tested but not supported").
    pub fn warn(check: &'static Check, message: impl Into<String>, objects: Vec<String>) -> Self {
        Finding { outcome: Outcome::Warning, ..Self::fail(check, message, objects) }
    }

    pub fn skipped(check: &'static Check, why: impl Into<String>) -> Self {
        Finding { outcome: Outcome::Skipped, message: Some(why.into()), ..Self::pass(check) }
    }

    /// Passes when `objects` is empty, else fails with `message`.
    pub fn none_of(check: &'static Check, objects: Vec<String>, message: impl FnOnce(usize) -> String) -> Self {
        if objects.is_empty() { Self::pass(check) } else { Self::fail(check, message(objects.len()), objects) }
    }
}

/// `--fail-on`: the least severe finding that fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailOn {
    #[default]
    Error,
    Warning,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub installation: Option<Installation>,
}

/// What is installed, shown above the checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Installation {
    pub revisions: Vec<String>,
    pub tags: Vec<String>,
    pub helm_releases: Vec<String>,
    pub istio_operators: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Document {
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installation: Option<Installation>,
    pub categories: Vec<CategoryDoc>,
}

#[derive(Debug, Serialize)]
pub struct CategoryDoc {
    pub name: &'static str,
    pub checks: Vec<CheckDoc>,
}

#[derive(Debug, Serialize)]
pub struct CheckDoc {
    pub code: &'static str,
    pub description: &'static str,
    pub result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub objects: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<&'static str>,
}

impl Report {
    pub fn failed(&self, fail_on: FailOn) -> bool {
        self.findings.iter().any(|f| match fail_on {
            FailOn::Error => f.outcome == Outcome::Error,
            FailOn::Warning => matches!(f.outcome, Outcome::Error | Outcome::Warning),
        })
    }

    pub fn exit(&self, fail_on: FailOn) -> Exit {
        if self.failed(fail_on) { Exit::Failed } else { Exit::Ok }
    }

    /// In catalogue order, grouped by category in order of first appearance.
    fn grouped(&self) -> Vec<(&'static str, Vec<&Finding>)> {
        let mut groups: Vec<(&'static str, Vec<&Finding>)> = Vec::new();
        for check in CHECKS {
            for finding in self.findings.iter().filter(|f| f.check.code == check.code) {
                match groups.iter_mut().find(|(name, _)| *name == check.category) {
                    Some((_, list)) => list.push(finding),
                    None => groups.push((check.category, vec![finding])),
                }
            }
        }
        groups
    }

    pub fn document(&self, fail_on: FailOn) -> Document {
        Document {
            success: !self.failed(fail_on),
            installation: self.installation.clone(),
            categories: self
                .grouped()
                .into_iter()
                .map(|(name, findings)| CategoryDoc {
                    name,
                    checks: findings
                        .into_iter()
                        .map(|f| CheckDoc {
                            code: f.check.code,
                            description: f.check.description,
                            result: f.outcome,
                            message: f.message.clone(),
                            objects: f.objects.clone(),
                            hint: matches!(f.outcome, Outcome::Error | Outcome::Warning).then_some(f.check.hint),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// linkerd-style: categories, then `√`, `‼`, `×` or `-` per check, with objects and hints.
    pub fn text(&self, fail_on: FailOn, color: bool) -> String {
        const MAX_OBJECTS: usize = 10;
        let mut out = String::new();
        if let Some(i) = &self.installation {
            let list = |items: &[String]| if items.is_empty() { "none".to_string() } else { items.join(", ") };
            out.push_str(&format!(
                "Installation\n------------\nrevisions:      {}\ntags:           {}\nHelm releases:  {}\nIstioOperators: {}\n\n",
                list(&i.revisions),
                list(&i.tags),
                list(&i.helm_releases),
                list(&i.istio_operators)
            ));
        }
        for (name, findings) in self.grouped() {
            out.push_str(&format!("{}\n{}\n", paint(name, Tone::Plain, color), "-".repeat(name.len())));
            for f in findings {
                let (mark, tone) = match f.outcome {
                    Outcome::Pass => ("√", Tone::Good),
                    Outcome::Warning => ("‼", Tone::Warn),
                    Outcome::Error => ("×", Tone::Bad),
                    Outcome::Skipped => ("-", Tone::Dim),
                };
                out.push_str(&format!("{} [{}] {}\n", paint(mark, tone, color), f.check.code, f.check.description));
                if let Some(message) = &f.message {
                    out.push_str(&format!("    {message}\n"));
                }
                for object in f.objects.iter().take(MAX_OBJECTS) {
                    out.push_str(&format!("    * {object}\n"));
                }
                if f.objects.len() > MAX_OBJECTS {
                    out.push_str(&format!(
                        "    * … and {} more (-o json lists them all)\n",
                        f.objects.len() - MAX_OBJECTS
                    ));
                }
                if matches!(f.outcome, Outcome::Error | Outcome::Warning) {
                    out.push_str(&format!("    hint: {}\n", f.check.hint));
                    out.push_str(&format!("    see: kubectl meshcheck explain {}\n", f.check.code));
                }
            }
            out.push('\n');
        }
        let verdict = if self.failed(fail_on) {
            paint("Status check results are ×", Tone::Bad, color)
        } else {
            paint("Status check results are √", Tone::Good, color)
        };
        out.push_str(&verdict);
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::catalogue;

    fn report() -> Report {
        Report {
            findings: vec![
                Finding::pass(&catalogue::MC0101),
                Finding::fail(
                    &catalogue::MC0401,
                    "2 namespaces carry both labels",
                    vec!["namespace/a".into(), "namespace/b".into()],
                ),
                Finding::skipped(&catalogue::MC0201, "no access review API"),
            ],
            installation: None,
        }
    }

    #[test]
    fn fail_on_threshold() {
        let r = report();
        assert!(!r.failed(FailOn::Error), "only a warning");
        assert!(r.failed(FailOn::Warning));
        assert_eq!(r.exit(FailOn::Warning), Exit::Failed);
        let with_error =
            Report { findings: vec![Finding::fail(&catalogue::MC0402, "overlap", vec![])], installation: None };
        assert!(with_error.failed(FailOn::Error));
    }

    #[test]
    fn document_groups_by_category_and_hints_only_findings() {
        let doc = report().document(FailOn::Error);
        assert!(doc.success);
        let names: Vec<_> = doc.categories.iter().map(|c| c.name).collect();
        assert_eq!(names, ["kubernetes", "permissions", "injection"]);
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["categories"][2]["checks"][0]["result"], "warning");
        assert_eq!(json["categories"][2]["checks"][0]["objects"][1], "namespace/b");
        assert!(json["categories"][0]["checks"][0].get("hint").is_none());
    }

    #[test]
    fn text_marks_each_result() {
        let text = report().text(FailOn::Error, false);
        assert!(text.contains("√ [MC0101] Kubernetes version is within"), "{text}");
        assert!(
            text.contains("‼ [MC0401]")
                && text.contains("    * namespace/a\n")
                && text.contains("    hint: remove one of the two labels"),
            "{text}"
        );
        assert!(text.contains("- [MC0201]") && text.contains("no access review API"), "{text}");
        assert!(text.ends_with("Status check results are √\n"), "{text}");
    }
}
