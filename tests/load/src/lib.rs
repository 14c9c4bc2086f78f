//! The load tool of switchboard's benchmark, and the peers it is measured
//! against.
//!
//! The tool opens many WebSocket sessions to one server process at a time
//! and reads that process's CPU time and resident memory from `/proc`, so
//! that the headline figures are **server CPU µs per call, per delivery, per
//! server→client call and per target of a backend's multicast call**, and
//! **KiB per idle session**: figures that stay put on a shared machine,
//! unlike wall-clock throughput. It runs the same scenarios against
//! switchboard and its peers in one run and reports the ratios (see
//! `BENCHMARKS.md` at the repository root; `tests/load/run` is the one
//! command). Given a baseline build of switchboard (`--baseline-bin`),
//! it measures that build alternately with the current one and reports the
//! ratio current / baseline of each figure.
//!
//! A scenario runs against any listening server:
//!
//! ```no_run
//! use switchboard_load::flavor::Flavor;
//! use switchboard_load::scenario::{self, CallKind, CallsParams, Target};
//!
//! # async fn run() -> Result<(), switchboard_load::LoadError> {
//! let target = Target {
//!     addr: "127.0.0.1:8080".parse().unwrap(),
//!     pid: 4242, // the server's process id, for its CPU time
//!     flavor: Flavor::Switchboard,
//!     sources: 4,
//! };
//! let params = CallsParams {
//!     kind: CallKind::Echo,
//!     connections: 16,
//!     in_flight: 4,
//!     warmup: std::time::Duration::from_secs(1),
//!     measure: std::time::Duration::from_secs(3),
//!     calls_per_connection: None,
//!     params: r#"["hi"]"#.to_owned(),
//!     verify: false,
//! };
//! let result = scenario::calls(&target, &params).await?;
//! println!("{:.2} µs of server CPU per call", result.cpu_us_per_call());
//! # Ok(()) }
//! ```

mod error;

pub mod bench;
pub mod client;
pub mod flavor;
pub mod peers;
pub mod procfs;
pub mod redis;
pub mod report;
pub mod scenario;
pub mod server;

pub use error::LoadError;
