//! Developer tasks shared between `cargo xtask` and its tests.

pub mod benchmark;
pub mod canary;
pub mod dist;
pub mod docs;
