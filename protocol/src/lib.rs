//! The BITS upload protocol ([MC-BUP]) without I/O.
//!
//! Everything here is pure: it parses and produces header maps and tells its caller what to do,
//! so the same rules serve the openbits client (driven by its HTTP engine) and openbits-server
//! (driven by hyper), and a client session can be tested against a server session in memory.
//!
//! Where the specification and Windows disagree this crate accepts both and sends what Windows
//! sends (packet-type spelling, `BITS-Error-Code`, lower-case protocol GUID, space-separated lists).

pub mod client;
pub mod error;
pub mod headers;
pub mod memory;
pub mod range;
pub mod server;

pub use error::{ErrorContext, Hresult, ProtocolError};
pub use headers::{PacketType, BITS_POST, PROTOCOL_GUID};
pub use range::ContentRange;
