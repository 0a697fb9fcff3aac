//! `kubectl meshcheck explain CODE`: one check's documentation, offline.

use meshkit::cli::Matches;
use meshkit::{Error, Exit, Result};

use crate::checks::catalogue;

pub fn run(m: &Matches) -> Result<Exit> {
    let code = m.one_arg("a check CODE")?.to_ascii_uppercase();
    let Some(check) = catalogue::find(&code) else {
        return Err(Error::usage(
            format!("unknown check {code:?}"),
            "check codes look like MC0401; `kubectl meshcheck precheck` and `verify` print them",
        ));
    };
    meshkit::render::print_text(&crate::checks::docs::explain(check));
    Ok(Exit::Ok)
}
