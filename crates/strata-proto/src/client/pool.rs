//! [`ClientPool`]: a fixed number of connections to one server, spread
//! over round-robin and made again when they end.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::{Duration, Instant};

use strata_rt::sync::Mutex;
use strata_service::Service;

use super::TcpClient;
use crate::pipeline::{Client, ClientError, ClientErrorKind, ClientProto};

/// The first wait after a failed connect; it doubles with each failure in
/// a row, up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between connects of one slot.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Connections to one server, as one [`Service`]: calls go to the
/// connections in turn, and a connection that has ended (the server
/// closed it, it failed) is made again by the next call that picks it.
/// Made by [`TcpClient::pool`].
///
/// A slot whose connect fails fails its calls at once
/// ([`ClientErrorKind::Connect`], not sent) until it may try again: 50 ms
/// after the first failure, doubling to 2 s, so a server that is down is
/// not flooded with connects. Calls on other slots go on meanwhile.
///
/// A connection found ended is replaced before the call is sent on it,
/// but one can end between that check and the call: the call then fails
/// with [`request_sent`](ClientError::request_sent) `false`, and is safe
/// to retry (`strata_service::retry` with a policy that asks
/// `request_sent`).
///
/// Each connection's task runs on the worker of the call that made it.
/// When the last clone of the pool is dropped, its connections close
/// once the calls made on them are answered.
///
/// ```
/// use strata_codec::LinesCodec;
/// use strata_proto::TcpClient;
/// use strata_proto::pipeline::ClientProto;
/// use strata_service::Service;
///
/// struct Lines;
///
/// impl ClientProto for Lines {
///     type Request = String;
///     type Response = String;
///     type Codec = LinesCodec;
///     fn codec(&self) -> LinesCodec {
///         LinesCodec::new()
///     }
/// }
///
/// strata_rt::run(async {
///     // A server that answers each line with itself.
///     let listener = strata_rt::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     strata_rt::spawn(async move {
///         loop {
///             let (conn, _) = listener.accept().await.unwrap();
///             strata_rt::spawn(async move {
///                 let (r, w) = (&conn, &conn);
///                 futures_util::io::copy(r, &mut &*w).await.ok();
///             });
///         }
///     });
///
///     let pool = TcpClient::new(Lines).pool(addr, 2);
///     assert_eq!(pool.call("one".to_string()).await.unwrap(), "one");
///     assert_eq!(pool.call("two".to_string()).await.unwrap(), "two");
/// });
/// ```
pub struct ClientPool<P: ClientProto> {
    inner: Arc<Inner<P>>,
}

struct Inner<P: ClientProto> {
    client: TcpClient<P>,
    addr: SocketAddr,
    slots: Box<[SlotOf<P>]>,
    next: AtomicUsize,
}

type SlotOf<P> = Slot<<P as ClientProto>::Request, <P as ClientProto>::Response>;

struct Slot<Req, Resp> {
    /// The slot's connection, if it has one: a call takes a clone of it
    /// under this lock, held only for that.
    current: StdMutex<Option<Client<Req, Resp>>>,
    /// Held while the slot connects, so that callers who find it without
    /// a connection make one between them, not one each.
    connecting: Mutex<Backoff>,
}

/// A slot's failed connects.
#[derive(Default)]
struct Backoff {
    /// Failed connects in a row.
    failures: u32,
    /// No connect before this, after a failed one; calls fail with
    /// `last_error` meanwhile.
    retry_at: Option<Instant>,
    last_error: Option<ClientError>,
}

impl<Req, Resp> Slot<Req, Resp> {
    /// Its connection, if it has one that has not ended.
    fn live(&self) -> Option<Client<Req, Resp>> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        current.as_ref().filter(|c| !c.is_closed()).cloned()
    }
}

impl<P: ClientProto> TcpClient<P> {
    /// A pool of `size` connections (at least 1) to `addr`, made as
    /// calls need them; see [`ClientPool`].
    pub fn pool(self, addr: SocketAddr, size: usize) -> ClientPool<P> {
        let slots = (0..size.max(1))
            .map(|_| Slot {
                current: StdMutex::new(None),
                connecting: Mutex::new(Backoff::default()),
            })
            .collect();
        ClientPool {
            inner: Arc::new(Inner {
                client: self,
                addr,
                slots,
                next: AtomicUsize::new(0),
            }),
        }
    }
}

impl<P: ClientProto> ClientPool<P>
where
    P::Request: Send,
    P::Response: Send,
    P::Codec: Send,
{
    /// A live connection of slot `i`: its current one, or a new one.
    async fn connection(&self, i: usize) -> Result<Client<P::Request, P::Response>, ClientError> {
        let slot = &self.inner.slots[i];
        if let Some(conn) = slot.live() {
            return Ok(conn);
        }
        let mut backoff = slot.connecting.lock().await;
        // Another caller may have connected it while this one waited.
        if let Some(conn) = slot.live() {
            return Ok(conn);
        }
        if let Some(at) = backoff.retry_at
            && Instant::now() < at
            && let Some(e) = &backoff.last_error
        {
            return Err(e.clone());
        }
        match self.inner.client.connect(self.inner.addr).await {
            Ok(conn) => {
                *backoff = Backoff::default();
                *slot.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                let e = connect_failed(e);
                let wait = MIN_BACKOFF
                    .saturating_mul(1 << backoff.failures.min(10))
                    .min(MAX_BACKOFF);
                backoff.failures = backoff.failures.saturating_add(1);
                backoff.retry_at = Some(Instant::now() + wait);
                backoff.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// How many of the pool's connections are open now.
    pub fn open_connections(&self) -> usize {
        self.inner
            .slots
            .iter()
            .filter(|s| s.live().is_some())
            .count()
    }
}

fn connect_failed(e: io::Error) -> ClientError {
    ClientError::new(ClientErrorKind::Connect, Some(Arc::new(e)))
}

impl<P: ClientProto> Service<P::Request> for ClientPool<P>
where
    P::Request: Send,
    P::Response: Send,
    P::Codec: Send,
{
    type Response = P::Response;
    type Error = ClientError;

    async fn call(&self, request: P::Request) -> Result<P::Response, ClientError> {
        let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.slots.len();
        let conn = self.connection(i).await?;
        conn.call(request).await
    }
}

impl<P: ClientProto> Clone for ClientPool<P> {
    fn clone(&self) -> Self {
        ClientPool {
            inner: self.inner.clone(),
        }
    }
}

impl<P: ClientProto> fmt::Debug for ClientPool<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientPool")
            .field("addr", &self.inner.addr)
            .field("size", &self.inner.slots.len())
            .finish_non_exhaustive()
    }
}
