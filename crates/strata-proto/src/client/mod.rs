//! [`TcpClient`]: connections to a pipelined server, each a [`Client`];
//! [`ClientPool`]: several of them, remade when they end.

mod pool;

use std::io;
use std::time::Duration;

use strata_rt::net::{TcpStream, ToSocketAddrs};

use crate::pipeline::{Client, ClientProto};

pub use pool::ClientPool;

/// Makes connections to a server of a pipelined protocol; each one is a
/// [`Client`], a [`Service`](strata_service::Service) that sends requests
/// and resolves with their responses, many in flight at once. A
/// [`Client`] does not reconnect; a [`pool`](Self::pool) of them does.
///
/// The protocol gives each connection its codec; the settings here bound
/// what a connection may cost. Each connection runs in a task of its own
/// on the worker that made it.
///
/// ```
/// use strata_codec::LinesCodec;
/// use strata_proto::TcpClient;
/// use strata_proto::pipeline::ClientProto;
/// use strata_service::Service;
///
/// struct LineClient;
///
/// impl ClientProto for LineClient {
///     type Request = String;
///     type Response = String;
///     type Codec = LinesCodec;
///
///     fn codec(&self) -> LinesCodec {
///         LinesCodec::new()
///     }
/// }
///
/// strata_rt::run(async {
///     // A server of one answer, to call.
///     let listener = strata_rt::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     strata_rt::spawn(async move {
///         use futures_util::io::{AsyncReadExt, AsyncWriteExt};
///         let (mut peer, _) = listener.accept().await.unwrap();
///         let mut hello = [0; 6];
///         peer.read_exact(&mut hello).await.unwrap();
///         peer.write_all(b"world\n").await.unwrap();
///     });
///
///     let client = TcpClient::new(LineClient).connect(addr).await.unwrap();
///     assert_eq!(client.call("hello".to_string()).await.unwrap(), "world");
/// });
/// ```
#[derive(Debug, Clone)]
pub struct TcpClient<P> {
    proto: P,
    max_in_flight: usize,
    connect_timeout: Option<Duration>,
    nodelay: bool,
}

impl<P: ClientProto> TcpClient<P> {
    /// A client of `proto`, with the defaults: 64 calls in flight per
    /// connection, a 10 s connect timeout, `TCP_NODELAY` on.
    pub fn new(proto: P) -> Self {
        TcpClient {
            proto,
            max_in_flight: 64,
            connect_timeout: Some(Duration::from_secs(10)),
            nodelay: true,
        }
    }

    /// How many calls a connection holds at once, queued or waiting for
    /// their responses (at least 1; default 64). More calls wait in
    /// `call` for a slot. With 1, calls take turns: plain
    /// request/response.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// How long [`connect`](Self::connect) may take (default 10 s);
    /// `None` waits as long as the OS does.
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether connections set `TCP_NODELAY` (default: yes). A client
    /// writes its pipelined requests in batches already, so Nagle's
    /// algorithm would only delay a lone request.
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// The protocol.
    pub fn proto(&self) -> &P {
        &self.proto
    }

    /// Connects to `addr` (each of its addresses in turn) and starts the
    /// connection's task on the current worker.
    ///
    /// # Errors
    ///
    /// The OS's error when no address accepts the connection (refused,
    /// unreachable), `TimedOut` when the connect timeout passes first.
    ///
    /// # Panics
    ///
    /// Outside a strata runtime.
    pub async fn connect(
        &self,
        addr: impl ToSocketAddrs,
    ) -> io::Result<Client<P::Request, P::Response>>
    where
        P::Request: Send,
        P::Response: Send,
        P::Codec: Send,
    {
        let connecting = TcpStream::connect(addr);
        let stream = match self.connect_timeout {
            None => connecting.await?,
            Some(limit) => match strata_rt::time::timeout(limit, connecting).await {
                Ok(stream) => stream?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connect timed out after {limit:?}"),
                    ));
                }
            },
        };
        if self.nodelay {
            stream.set_nodelay(true)?;
        }
        let (client, task) = Client::new(stream, self.proto.codec(), self.max_in_flight);
        strata_rt::spawn(async move {
            if let Err(e) = task.await {
                tracing::debug!(
                    error = &e as &dyn std::error::Error,
                    "client connection ended"
                );
            }
        });
        Ok(client)
    }
}
