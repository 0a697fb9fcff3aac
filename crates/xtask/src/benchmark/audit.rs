//! The apiserver's audit log, read per measured run: how many requests a user made, and which
//! lists (so that the floor can make the same ones).

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use meshtest::ControlPlane;

/// The audit log from a remembered offset: each measured run reads only what it caused.
pub struct Audit {
    path: PathBuf,
    offset: u64,
}

/// One list the command made: what kubectl needs to make the same one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListCall {
    pub resource: String,
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub selector: Option<String>,
}

impl Audit {
    pub fn new(plane: &ControlPlane) -> Audit {
        let path = plane.dir.join("logs/audit.log");
        let offset = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Audit { path, offset }
    }

    pub fn mark(&mut self) {
        self.offset = fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
    }

    /// Events of `user` since the mark: `(request count, the lists among them)`.
    pub fn since_mark(&self, user: &str) -> Result<(usize, BTreeSet<ListCall>)> {
        // The log backend writes as requests complete; give the last ones a moment.
        std::thread::sleep(Duration::from_millis(800));
        let mut file = fs::File::open(&self.path)?;
        let length = file.metadata()?.len();
        // A rotation restarts the file: then everything in it is new.
        file.seek(SeekFrom::Start(if length < self.offset { 0 } else { self.offset }))?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let (mut count, mut lists) = (0, BTreeSet::new());
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if event["user"]["username"] != user || event["stage"] != "ResponseComplete" {
                continue;
            }
            count += 1;
            // Lists that failed (a kind that is not installed) are not part of the floor.
            if event["verb"] == "list" && event["responseStatus"]["code"] == 200 {
                let object = &event["objectRef"];
                let uri = event["requestURI"].as_str().unwrap_or_default();
                let selector = uri.split(['?', '&']).find_map(|p| p.strip_prefix("labelSelector=")).map(decode);
                lists.insert(ListCall {
                    resource: object["resource"].as_str().unwrap_or_default().into(),
                    group: object["apiGroup"].as_str().unwrap_or_default().into(),
                    version: object["apiVersion"].as_str().unwrap_or_default().into(),
                    namespace: object["namespace"].as_str().map(String::from),
                    selector,
                });
            }
        }
        Ok((count, lists))
    }
}

/// Percent-decoding of a query value (selectors carry `=`, `,` and `!`).
pub fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
