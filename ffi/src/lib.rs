//! libopenbits: the C ABI of openbits, and nothing else. Each export checks its arguments, calls
//! `openbits-core`, and returns an HRESULT through the one guard in `boundary`.
//!
//! The header `include/openbits.h` is generated from these doc comments by `cargo xtask header`.
#![allow(clippy::missing_safety_doc)] // The safety contract of each export is in its doc comment.

mod boundary;
pub mod callbacks;
pub mod files;
pub mod http_options;
pub mod job;
pub mod job_properties;
pub mod manager;
pub mod policy;
pub mod reply;
pub mod tls;
pub mod types;
pub mod util;
