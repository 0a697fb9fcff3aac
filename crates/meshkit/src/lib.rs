//! Shared pieces of the Istio canary-upgrade kubectl plugins.
//!
//! - [`archive`]: the backup archive format (meshbackup, meshmigrate retire);
//! - [`args`]: kubectl-compatible global flags;
//! - [`cluster`]: building a client from them and turning API failures into [`Error`]s;
//! - [`istio`]: the Istio revision model, pure and cluster-free;
//! - [`render`]: table / json / yaml output;
//! - [`error`]: the shared error type and exit codes.

pub mod archive;
pub mod args;
pub mod backup;
pub mod catalogue;
pub mod cli;
pub mod cluster;
pub mod complete;
pub mod confirm;
pub mod error;
pub mod fetch;
pub mod install;
pub mod istio;
pub mod kube;
pub mod quantity;
pub mod render;
pub mod spec;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{Error, Exit, Result};
