//! [`ConnectionEnd`]: what [`TcpServer::on_connection_end`]'s hook is
//! told when a connection is over.
//!
//! [`TcpServer::on_connection_end`]: super::TcpServer::on_connection_end

use std::time::Duration;

use strata_service::ConnectionInfo;

use crate::pipeline::ConnectionError;

/// How one connection ended: who it was, how long it lasted, and why it
/// ended. Given to the hook set with
/// [`TcpServer::on_connection_end`](super::TcpServer::on_connection_end).
#[derive(Debug)]
#[non_exhaustive]
pub struct ConnectionEnd<'a> {
    /// The connection's two ends.
    pub info: &'a ConnectionInfo,
    /// From the accept until the connection was done (after a close by
    /// the server, that includes the brief linger that drains the
    /// socket so the last answers are not reset away).
    pub duration: Duration,
    /// `Ok` for a clean end: the peer closed, or the protocol did (a
    /// last request, a graceful stop). Otherwise why it ended: a timeout,
    /// bad input, a failing service, the peer gone
    /// ([`is_disconnect`](ConnectionError::is_disconnect)), a panic.
    pub outcome: Result<(), &'a ConnectionError>,
}

/// The hook: shared by every worker.
pub(crate) type EndHook = dyn Fn(&ConnectionEnd<'_>) + Send + Sync;
