//! `UdpSocket`: datagrams.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use mio::Interest;

use crate::context;
use crate::net::ToSocketAddrs;
use crate::net::addr::{describe, each_addr, no_address, resolve};
use crate::reactor::{Direction, PollEvented, Ready};

/// A UDP socket.
///
/// Unconnected use: [`send_to`](Self::send_to) / [`recv_from`](Self::recv_from).
/// After [`connect`](Self::connect): [`send`](Self::send) / [`recv`](Self::recv),
/// and the OS drops datagrams that arrive from other peers from then on
/// (those already queued before `connect` are still received).
///
/// All methods take `&self`, so an `Arc<UdpSocket>` can be shared by tasks.
///
/// # Examples
///
/// ```
/// use strata_rt::net::UdpSocket;
///
/// strata_rt::run(async {
///     let a = UdpSocket::bind("127.0.0.1:0")?;
///     let b = UdpSocket::bind("127.0.0.1:0")?;
///     a.send_to(b"ping", b.local_addr()?).await?;
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).await?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr()?));
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap();
/// ```
pub struct UdpSocket {
    io: PollEvented<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr`, trying each resolved address in turn.
    ///
    /// # Panics
    ///
    /// Panics outside a strata runtime.
    #[track_caller]
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        context::require("UdpSocket::bind");
        each_addr(addr, |a| {
            let sock = mio::net::UdpSocket::bind(a)?;
            Self::wrap(sock, "UdpSocket::bind")
        })
    }

    /// Wraps a std socket (switched to non-blocking mode).
    ///
    /// # Panics
    ///
    /// Panics outside a strata runtime.
    #[track_caller]
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        context::require("UdpSocket::from_std");
        socket.set_nonblocking(true)?;
        Self::wrap(mio::net::UdpSocket::from_std(socket), "UdpSocket::from_std")
    }

    #[track_caller]
    fn wrap(sock: mio::net::UdpSocket, api: &str) -> io::Result<UdpSocket> {
        let io = PollEvented::new(
            sock,
            Interest::READABLE | Interest::WRITABLE,
            // Sending is almost always possible right away.
            Ready::READ_WRITE,
            api,
        )?;
        Ok(UdpSocket { io })
    }

    /// Sets the default peer: `send`/`recv` then talk to it only.
    ///
    /// Each address `addr` resolves to is tried in turn (a name is looked
    /// up on the calling thread); the first one the OS accepts becomes the
    /// peer. A UDP connect sends nothing, so any error moves on to the
    /// next address: a v4 socket given `[v6, v4]` connects to the v4 one.
    ///
    /// # Errors
    ///
    /// The last address's error if none is accepted (`InvalidInput` if
    /// `addr` resolves to no address).
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(addr, |a| self.io.get_ref().connect(a))
    }

    /// Sends one datagram to `target`; returns the bytes sent.
    ///
    /// A host name is looked up on every call, on a worker on the
    /// blocking pool (see [`ToSocketAddrs`]). The datagram goes to one
    /// address: the first, in the order given or resolved, of a family
    /// this socket can send to. A v4 socket sends to v4 addresses; a v6
    /// socket to v6 ones, and to v4 ones (plain or v4-mapped) too unless
    /// `IPV6_V6ONLY` is set (binding a specific v6 address such as `[::1]`
    /// sets it on Linux); one bound to a v4-mapped address, to v4 ones
    /// only. So a v4 socket sending to `"localhost:PORT"` reaches
    /// `127.0.0.1` even when the resolver lists `::1` first.
    /// Whatever that one send gives, the bytes sent or an error, is the
    /// outcome: no other address is tried.
    ///
    /// # Errors
    ///
    /// * `InvalidInput` if `target` resolves to no address, or to none of
    ///   a family this socket can send to (a lone such address is still
    ///   tried, and the OS's refusal becomes this error); the message
    ///   names the target and the socket's family.
    /// * Otherwise the OS error of the send.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: either the whole datagram was sent, to one address, or
    /// none of it.
    pub async fn send_to(&self, buf: &[u8], target: impl ToSocketAddrs) -> io::Result<usize> {
        let mut addrs = resolve(&target, "UdpSocket::send_to").await?;
        let first = addrs.next().ok_or_else(no_address)?;
        // One address (the common case: a `SocketAddr`): no question to
        // ask of the socket, and no allocation.
        let to = match addrs.next() {
            None => first,
            Some(second) => {
                let all: Vec<SocketAddr> = [first, second].into_iter().chain(addrs).collect();
                let reach = Reach::of(self);
                match all.iter().copied().find(|&to| reach.fits(to)) {
                    Some(to) => to,
                    None => return Err(self.no_fit(reach, &describe(&target, &all), None)),
                }
            }
        };
        let sent = self
            .io
            .wait(Direction::Write, |cx| self.poll_send_to(cx, buf, to))
            .await;
        match sent {
            // A lone address of a family the socket cannot send to: the
            // OS's words for it vary (`EAFNOSUPPORT`, `ENETUNREACH`).
            Err(e) => match Reach::of(self) {
                reach if !reach.fits(to) => {
                    Err(self.no_fit(reach, &describe(&target, &[to]), Some(&e)))
                }
                _ => Err(e),
            },
            sent => sent,
        }
    }

    /// The error of a `send_to` with no address this socket (reaching
    /// `reach`) can send to; `refused`: the OS's error for a lone one.
    #[cold]
    fn no_fit(&self, reach: Reach, target: &str, refused: Option<&io::Error>) -> io::Error {
        let local = self
            .local_addr()
            .map_or_else(|e| format!("local address: {e}"), |a| a.to_string());
        let refused = refused.map_or(String::new(), |e| format!(" ({e})"));
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "UdpSocket::send_to {target}: no address of a family this \
                 {} socket ({local}) can send to{refused}",
                reach.name()
            ),
        )
    }

    /// Polls to send one datagram to `target`.
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.io
            .poll_io(cx, Direction::Write, |s| s.send_to(buf, target))
    }

    /// Receives one datagram; returns its length and sender. A datagram
    /// longer than `buf` is truncated.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: no datagram is lost if the future is dropped.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.wait_io(Direction::Read, |s| s.recv_from(buf)).await
    }

    /// Polls to receive one datagram.
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.io.poll_io(cx, Direction::Read, |s| s.recv_from(buf))
    }

    /// Sends one datagram to the connected peer.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.wait_io(Direction::Write, |s| s.send(buf)).await
    }

    /// Receives one datagram from the connected peer.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.wait_io(Direction::Read, |s| s.recv(buf)).await
    }

    /// Waits for a datagram and copies it into `buf` without taking it
    /// (`MSG_PEEK`): its length (cut to `buf`'s) and sender. The next
    /// receive returns the same datagram. A pending error (an ICMP
    /// "unreachable" for an earlier send) is reported to the peek and, as
    /// the OS reports it once, not to the receive after it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: no datagram is taken from the socket.
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.wait_io(Direction::Read, |s| s.peek_from(buf)).await
    }

    /// [`peek_from`](Self::peek_from) on a connected socket: the length
    /// only.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.wait_io(Direction::Read, |s| s.peek(buf)).await
    }

    /// Polls to [`peek_from`](Self::peek_from).
    pub fn poll_peek_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.io.poll_io(cx, Direction::Read, |s| s.peek_from(buf))
    }

    /// Waits until a datagram may be waiting: then take it with
    /// [`try_recv_from`](Self::try_recv_from) or
    /// [`try_recv`](Self::try_recv), which may still say `WouldBlock`
    /// (wait again then).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.ready(Direction::Read).await
    }

    /// Waits until the socket may take a datagram.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.ready(Direction::Write).await
    }

    /// Takes one datagram if one is waiting, without waiting: its length
    /// and sender, or `WouldBlock`. It neither yields nor spends the
    /// task's cooperative budget.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.try_io(Direction::Read, |s| s.recv_from(buf))
    }

    /// [`try_recv_from`](Self::try_recv_from) from the connected peer.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Read, |s| s.recv(buf))
    }

    /// Sends one datagram to `target` if the socket takes it now, without
    /// waiting: the bytes sent, or `WouldBlock`. No name lookup: `target`
    /// is an address.
    pub fn try_send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |s| s.send_to(buf, target))
    }

    /// [`try_send_to`](Self::try_send_to) to the connected peer.
    pub fn try_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.try_io(Direction::Write, |s| s.send(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Enables or disables sending to broadcast addresses.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_broadcast(on)
    }
}

/// The addresses a UDP socket can send to, by family (see
/// [`UdpSocket::send_to`]), from its local address and `IPV6_V6ONLY`.
#[derive(Debug, Clone, Copy)]
enum Reach {
    /// A v6 socket that is not v6-only, or one that cannot tell: any.
    Any,
    /// A v4 socket: v4 socket addresses only, not v4-mapped v6 ones.
    V4,
    /// A v6 socket bound to a v4-mapped address: v4 ones, plain or mapped.
    Mapped,
    /// A v6-only socket (`IPV6_V6ONLY`, which binding a specific v6
    /// address sets on Linux; connecting does not): real v6 ones.
    V6Only,
}

impl Reach {
    fn of(socket: &UdpSocket) -> Reach {
        match socket.local_addr() {
            Err(_) => Reach::Any,
            Ok(SocketAddr::V4(_)) => Reach::V4,
            Ok(SocketAddr::V6(local)) if local.ip().to_ipv4_mapped().is_some() => Reach::Mapped,
            Ok(SocketAddr::V6(_)) => {
                let only_v6 = socket2::SockRef::from(socket.io.get_ref()).only_v6();
                if only_v6.unwrap_or(false) {
                    Reach::V6Only
                } else {
                    Reach::Any
                }
            }
        }
    }

    fn fits(self, to: SocketAddr) -> bool {
        let v4ish = match to {
            SocketAddr::V4(_) => true,
            SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
        };
        match self {
            Reach::Any => true,
            Reach::V4 => matches!(to, SocketAddr::V4(_)),
            Reach::Mapped => v4ish,
            Reach::V6Only => !v4ish,
        }
    }

    /// The socket's family, as an error message names it.
    fn name(self) -> &'static str {
        match self {
            Reach::V4 | Reach::Mapped => "IPv4",
            Reach::V6Only => "IPv6-only",
            Reach::Any => "IPv6",
        }
    }
}

impl_as_fd!(UdpSocket);

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}
