//! Developer tasks shared between `cargo xtask` and its tests.

pub mod dist;
