//! strata-proto: from frames to requests and responses, and the servers
//! that run them.
//!
//! * [`pipeline`]: pipelined dispatch — many requests in flight per
//!   connection, responses in request order, bounded at every step.
//! * [`TcpClient`]: connections to a server, each a
//!   [`Service`](strata_service::Service) that pipelines its calls;
//!   [`ClientPool`] spreads calls over several and remakes those that end.
//! * [`TcpServer`]: the classic shape — a protocol, an address,
//!   `threads(n)`, `serve(|| Ok(service))` — with connection limits,
//!   timeouts, per-connection isolation and graceful shutdown. Its docs
//!   hold the design notes: one listener per worker, the limits and their
//!   defaults, and what a graceful shutdown promises.

mod client;
mod config;
mod deadline;
pub mod pipeline;
mod server;

pub use client::{ClientPool, TcpClient};
pub use config::ConnectionConfig;
pub use server::{ConnectionEnd, ServerHandle, TcpServer};
