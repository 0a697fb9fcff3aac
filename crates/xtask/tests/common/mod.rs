//! Shared by the workspace-level end-to-end tests.

use std::path::{Path, PathBuf};

/// A plugin binary in `target/debug`, where cargo put it next to this test's `deps/` directory
/// (`cargo test --workspace`, as `cargo xtask test` runs it, builds every plugin first).
pub fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(path.exists(), "{} is missing: build the plugins first (`cargo xtask test` does)", path.display());
    path
}
