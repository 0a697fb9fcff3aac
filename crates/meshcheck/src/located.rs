//! One object of a manifest under review, and where it starts: what `manifest` parses and the
//! settings checks read.

use serde_json::Value;

/// One object of the manifest and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub object: Value,
}

impl Located {
    /// `file:line kind/namespace/name`
    pub fn describe(&self) -> String {
        let meta = &self.object["metadata"];
        let kind = self.object["kind"].as_str().unwrap_or("?").to_ascii_lowercase();
        let name = meta["name"].as_str().unwrap_or("?");
        match meta["namespace"].as_str() {
            Some(ns) => format!("{}:{} {kind}/{ns}/{name}", self.file, self.line),
            None => format!("{}:{} {kind}/{name}", self.file, self.line),
        }
    }
}
