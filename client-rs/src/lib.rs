//! Rust client for switchboard.
//!
//! The client is not written yet: this crate currently re-exports the wire
//! types of [`switchboard_protocol`] so that programs can already build and
//! parse frames with the same types the server uses.

pub use switchboard_protocol as protocol;
