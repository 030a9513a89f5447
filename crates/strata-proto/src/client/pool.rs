//! [`ClientPool`]: a fixed number of connections to one server, each
//! call sent on the less loaded of two, and made again when they end.

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

/// Connections to one server, as one [`Service`]: each call goes to the
/// less loaded of two slots (the one with fewer calls in flight; the
/// pair changes from call to call), and a connection that has ended (the
/// server closed it, it failed) is made again by the next call that
/// picks it. Made by [`TcpClient::pool`].
///
/// Why by load: a pipelined connection answers in order, so a call
/// queued behind a slow one waits for it. A connection held up that way
/// has calls in flight and takes no more while another has fewer.
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
    /// The slot's connection and its failed connects: a call reads them
    /// under this lock, held only for that.
    current: StdMutex<Current<Req, Resp>>,
    /// Held while the slot connects, so that callers who find it without
    /// a connection make one between them, not one each.
    connecting: Mutex<()>,
}

struct Current<Req, Resp> {
    conn: Option<Client<Req, Resp>>,
    /// Failed connects in a row.
    failures: u32,
    /// No connect before this, after a failed one; calls fail with
    /// `last_error` meanwhile.
    retry_at: Option<Instant>,
    last_error: Option<ClientError>,
}

impl<Req, Resp> Default for Current<Req, Resp> {
    fn default() -> Self {
        Current {
            conn: None,
            failures: 0,
            retry_at: None,
            last_error: None,
        }
    }
}

impl<Req, Resp> Slot<Req, Resp> {
    fn current(&self) -> std::sync::MutexGuard<'_, Current<Req, Resp>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Its connection, if it has one that has not ended.
    fn live(&self) -> Option<Client<Req, Resp>> {
        self.current()
            .conn
            .as_ref()
            .filter(|c| !c.is_closed())
            .cloned()
    }

    /// Calls in flight on its connection; with none, 0 (a call connects
    /// it), or the most (after a failed connect, until it may try again).
    fn load(&self) -> usize {
        let current = self.current();
        match current.conn.as_ref().and_then(Client::in_flight) {
            Some(n) => n,
            None if current.retry_at.is_some_and(|at| Instant::now() < at) => usize::MAX,
            None => 0,
        }
    }
}

impl<P: ClientProto> TcpClient<P> {
    /// A pool of `size` connections (at least 1) to `addr`, made as
    /// calls need them; see [`ClientPool`].
    pub fn pool(self, addr: SocketAddr, size: usize) -> ClientPool<P> {
        let slots = (0..size.max(1))
            .map(|_| Slot {
                current: StdMutex::new(Current::default()),
                connecting: Mutex::new(()),
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
        let _connecting = slot.connecting.lock().await;
        // Another caller may have connected it while this one waited.
        if let Some(conn) = slot.live() {
            return Ok(conn);
        }
        {
            let current = slot.current();
            if let Some(at) = current.retry_at
                && Instant::now() < at
                && let Some(e) = &current.last_error
            {
                return Err(e.clone());
            }
        }
        let connected = self.inner.client.connect(self.inner.addr).await;
        let mut current = slot.current();
        match connected {
            Ok(conn) => {
                *current = Current {
                    conn: Some(conn.clone()),
                    ..Current::default()
                };
                Ok(conn)
            }
            Err(e) => {
                let e = connect_failed(e);
                let wait = MIN_BACKOFF
                    .saturating_mul(1 << current.failures.min(10))
                    .min(MAX_BACKOFF);
                current.failures = current.failures.saturating_add(1);
                current.retry_at = Some(Instant::now() + wait);
                current.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// The less loaded of two slots, a different pair each call (with
    /// two slots, always both).
    fn pick(&self) -> usize {
        let slots = &self.inner.slots;
        let n = slots.len();
        if n == 1 {
            return 0;
        }
        let r = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let a = r % n;
        let b = (a + 1 + (r / n) % (n - 1)) % n;
        if slots[b].load() < slots[a].load() {
            b
        } else {
            a
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
        let conn = self.connection(self.pick()).await?;
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
