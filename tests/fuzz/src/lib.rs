//! The fuzz targets' bodies. Each `pub fn NAME(&[u8])` is one target: `fuzz/fuzz_targets/NAME.rs`
//! hands it libFuzzer's inputs, and `tests/replay.rs` runs it over `fuzz/corpus/NAME/*` on stable,
//! so the inputs fuzzing found keep being checked by `cargo test`.
//!
//! A body decodes the bytes into a call of the library, makes it, and asserts what must hold of
//! the answer; a panic anywhere (the library or an assertion) is a finding.

mod decision;
mod input;
mod names;
mod protocol;
mod server;
mod state_db;
mod values;

pub use decision::http_decision;
pub use names::urls_and_headers;
pub use protocol::upload_protocol;
pub use server::upload_server;
pub use state_db::state_db;
pub use values::header_values;

/// A target's body: one input, a panic for a finding.
pub type Target = fn(&[u8]);

/// Every target, by the name of its fuzz target and corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("http_decision", http_decision),
    ("header_values", header_values),
    ("urls_and_headers", urls_and_headers),
    ("upload_protocol", upload_protocol),
    ("upload_server", upload_server),
    ("state_db", state_db),
];
