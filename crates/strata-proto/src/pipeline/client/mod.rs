//! The client side of a pipelined protocol: one connection as a
//! [`Service`], many calls in flight on it, responses matched to calls
//! by their order.

mod error;
mod queue;
mod reply;
mod task;

use std::sync::Arc;

use futures_io::{AsyncRead, AsyncWrite};
use strata_codec::{Decoder, Encoder};
use strata_service::Service;

pub use error::{ClientError, ClientErrorKind};
pub use task::ClientTask;

use queue::{Call, CallQueue};

/// The client side of a pipelined protocol: its frames and its codec.
///
/// One value serves every connection a [`TcpClient`](crate::TcpClient)
/// makes, so it must be `Send + Sync`; it is asked for a fresh codec per
/// connection. The codec encodes requests and decodes responses (a
/// server's codec does the reverse).
///
/// ```
/// use strata_codec::LinesCodec;
/// use strata_proto::pipeline::ClientProto;
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
/// ```
pub trait ClientProto: Send + Sync + 'static {
    /// A request to encode.
    type Request: 'static;
    /// A decoded response.
    type Response: 'static;
    /// The codec for one connection.
    type Codec: Decoder<Item = Self::Response, Error: std::error::Error + Send + Sync + 'static>
        + Encoder<Self::Request, Error: std::error::Error + Send + Sync + 'static>
        + 'static;

    /// A fresh codec for a new connection.
    fn codec(&self) -> Self::Codec;
}

/// One pipelined connection, as a [`Service`]: each `call` sends its
/// request and resolves with the response the server gives it.
///
/// Calls may overlap, from one task or many (the handle is `Clone`,
/// `Send` and `Sync`): their requests are written in the order the calls
/// reached the connection, coalesced into as few writes as the socket
/// allows, and responses are matched to calls by that order, as a
/// pipelined protocol requires. At most `max_in_flight` calls are queued
/// or unanswered at once; more wait in `call` for a slot.
///
/// A call dropped before its request was written takes the request back;
/// one dropped later leaves its response to be read and discarded, so the
/// calls after it still get their own. When the connection fails or the
/// server closes it, every waiting call fails with the reason (see
/// [`ClientError`]) and later calls fail at once: a `Client` does not
/// reconnect. When the last handle is dropped, the connection closes once
/// the calls already made are answered.
///
/// Time limits are middleware's job: wrap the client in
/// `strata_service::timeout::Timeout` to bound each call. A connection
/// is made by [`TcpClient::connect`](crate::TcpClient::connect), or over
/// any I/O object by [`Client::new`].
pub struct Client<Req, Resp> {
    handle: Arc<Handle<Req, Resp>>,
}

/// What the clones of a `Client` share; the last one's drop tells the
/// task that no call will come.
struct Handle<Req, Resp> {
    queue: Arc<CallQueue<Req, Resp>>,
}

impl<Req, Resp> Drop for Handle<Req, Resp> {
    fn drop(&mut self) {
        self.queue.abandon();
    }
}

impl<Req, Resp> Client<Req, Resp> {
    /// A client over `io` (connected already) with `codec`, allowing
    /// `max_in_flight` calls at once (at least 1). Returns the handle and
    /// the task that runs the connection: spawn it, or nothing is sent.
    ///
    /// ```
    /// use futures_util::io::{AsyncReadExt, AsyncWriteExt};
    /// use strata_codec::LinesCodec;
    /// use strata_proto::pipeline::Client;
    /// use strata_rt::net::UnixStream;
    /// use strata_service::Service;
    ///
    /// strata_rt::run(async {
    ///     let (ours, mut server) = UnixStream::pair().unwrap();
    ///     let (client, task) = Client::<String, String>::new(ours, LinesCodec::new(), 16);
    ///     strata_rt::spawn(task);
    ///     strata_rt::spawn(async move {
    ///         let mut hello = [0; 6];
    ///         server.read_exact(&mut hello).await.unwrap();
    ///         server.write_all(b"world\n").await.unwrap();
    ///     });
    ///     assert_eq!(client.call("hello".to_string()).await.unwrap(), "world");
    /// });
    /// ```
    pub fn new<T, C>(io: T, codec: C, max_in_flight: usize) -> (Self, ClientTask<T, C, Req>)
    where
        T: AsyncRead + AsyncWrite + Unpin,
        C: Decoder<Item = Resp> + Encoder<Req>,
        <C as Decoder>::Error: std::error::Error + Send + Sync + 'static,
        <C as Encoder<Req>>::Error: std::error::Error + Send + Sync + 'static,
    {
        let queue = Arc::new(CallQueue::new(max_in_flight.max(1)));
        let task = ClientTask::new(io, codec, queue.clone());
        let client = Client {
            handle: Arc::new(Handle { queue }),
        };
        (client, task)
    }

    /// Whether the connection has ended: calls made now fail at once.
    pub fn is_closed(&self) -> bool {
        self.handle.queue.end().is_some()
    }

    /// How many calls are queued or waiting for their answers on this
    /// connection now (at most its `max_in_flight`); `None` once it has
    /// ended. What a pool balances by.
    pub fn in_flight(&self) -> Option<usize> {
        self.handle.queue.load()
    }

    /// How the connection ended, if it has: the error the calls waiting on
    /// it got (with [`request_sent`](ClientError::request_sent) `false`).
    pub fn end(&self) -> Option<ClientError> {
        self.handle.queue.end().map(|e| e.with_sent(false))
    }

    /// The error for a call that could not be queued or whose reply was
    /// dropped.
    fn ended(&self, sent: bool) -> ClientError {
        self.handle
            .queue
            .end()
            .unwrap_or_else(ClientError::closed)
            .with_sent(sent)
    }
}

impl<Req, Resp> Clone for Client<Req, Resp> {
    fn clone(&self) -> Self {
        Client {
            handle: self.handle.clone(),
        }
    }
}

impl<Req, Resp> std::fmt::Debug for Client<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl<Req, Resp> Service<Req> for Client<Req, Resp> {
    type Response = Resp;
    type Error = ClientError;

    async fn call(&self, request: Req) -> Result<Resp, ClientError> {
        let (reply, answer) = reply::reply();
        if self
            .handle
            .queue
            .push(Call { request, reply })
            .await
            .is_err()
        {
            return Err(self.ended(false));
        }
        match answer.await {
            Some(result) => result,
            // The task sends every call an answer, also when it is
            // dropped; this is a task that was leaked mid-call.
            None => Err(self.ended(true)),
        }
    }
}
