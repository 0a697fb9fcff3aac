//! Kubernetes label selectors, evaluated locally (webhook namespace/object selectors).

use serde::Serialize;

use super::Labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SelectorOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    pub key: String,
    pub op: SelectorOp,
    pub values: Vec<String>,
}

/// A selector as the API defines it: every `match_labels` pair and every requirement must hold.
/// An empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn with(mut self, key: &str, op: SelectorOp, values: &[&str]) -> Self {
        self.requirements.push(Requirement {
            key: key.to_string(),
            op,
            values: values.iter().map(|v| v.to_string()).collect(),
        });
        self
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels.get(&r.key);
            match r.op {
                SelectorOp::In => value.is_some_and(|v| r.values.contains(v)),
                SelectorOp::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                SelectorOp::Exists => value.is_some(),
                SelectorOp::DoesNotExist => value.is_none(),
            }
        })
    }

    /// Converts the API's selector; an unknown operator matches nothing, as the API server would reject it.
    pub fn from_api(selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>) -> Self {
        let Some(selector) = selector else { return Self::everything() };
        let mut out = Self::everything();
        for (k, v) in selector.match_labels.iter().flatten() {
            out = out.with(k, SelectorOp::In, &[v]);
        }
        for expr in selector.match_expressions.iter().flatten() {
            let op = match expr.operator.as_str() {
                "In" => SelectorOp::In,
                "NotIn" => SelectorOp::NotIn,
                "Exists" => SelectorOp::Exists,
                "DoesNotExist" => SelectorOp::DoesNotExist,
                _ => {
                    // Nothing can satisfy "In []".
                    out = out.with(&expr.key, SelectorOp::In, &[]);
                    continue;
                }
            };
            let values: Vec<&str> = expr.values.iter().flatten().map(String::as_str).collect();
            out = out.with(&expr.key, op, &values);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn operators() {
        let l = labels(&[("a", "1")]);
        assert!(LabelSelector::everything().matches(&l));
        assert!(LabelSelector::everything().with("a", SelectorOp::In, &["1", "2"]).matches(&l));
        assert!(!LabelSelector::everything().with("a", SelectorOp::In, &["2"]).matches(&l));
        assert!(!LabelSelector::everything().with("b", SelectorOp::In, &["1"]).matches(&l));
        assert!(LabelSelector::everything().with("a", SelectorOp::NotIn, &["2"]).matches(&l));
        assert!(LabelSelector::everything().with("b", SelectorOp::NotIn, &["2"]).matches(&l));
        assert!(!LabelSelector::everything().with("a", SelectorOp::NotIn, &["1"]).matches(&l));
        assert!(LabelSelector::everything().with("a", SelectorOp::Exists, &[]).matches(&l));
        assert!(!LabelSelector::everything().with("b", SelectorOp::Exists, &[]).matches(&l));
        assert!(LabelSelector::everything().with("b", SelectorOp::DoesNotExist, &[]).matches(&l));
        assert!(!LabelSelector::everything().with("a", SelectorOp::DoesNotExist, &[]).matches(&l));
    }

    #[test]
    fn converts_api_selectors() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
        let api = meta::LabelSelector {
            match_labels: Some([("x".to_string(), "y".to_string())].into()),
            match_expressions: Some(vec![meta::LabelSelectorRequirement {
                key: "z".into(),
                operator: "DoesNotExist".into(),
                values: None,
            }]),
        };
        let sel = LabelSelector::from_api(Some(&api));
        assert!(sel.matches(&labels(&[("x", "y")])));
        assert!(!sel.matches(&labels(&[("x", "y"), ("z", "")])));
        assert!(LabelSelector::from_api(None).matches(&labels(&[])));
        let weird = meta::LabelSelector {
            match_expressions: Some(vec![meta::LabelSelectorRequirement {
                key: "z".into(),
                operator: "Gt".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert!(!LabelSelector::from_api(Some(&weird)).matches(&labels(&[("z", "1")])));
    }
}
