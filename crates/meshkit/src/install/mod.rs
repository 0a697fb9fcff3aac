//! Who manages what: the marks Helm, istioctl, Sail Operator, Argo CD and Flux leave on the
//! objects they own ([`owner`]), and Helm's release records ([`helm`]), so that no plugin changes
//! an object behind its owner's back.

pub mod handover;
pub mod helm;
pub mod owner;

pub use owner::{Manager, detect, detect_meta};
