//! strata-rt's I/O types against the futures-io contracts and what a tokio
//! user expects (each of these failed before its fix); loopback only,
//! bounded, hang-guarded.

mod support;

use std::io::{IoSlice, IoSliceMut};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use futures_util::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use strata_rt::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use support::{deadline, plain_block_on, rt};

/// A socket "can then be used from any task on any thread": `accept` too,
/// from a thread outside any runtime. It used to take the connection off
/// the kernel's queue, then panic registering the new stream (no runtime
/// context), losing the connection; now the stream joins the listener's
/// reactor.
#[test]
fn accept_from_a_thread_outside_any_runtime_does_not_panic_or_lose_the_connection() {
    deadline(30, || {
        let rt = rt(1);
        let dir = std::env::temp_dir().join(format!("strata-io-contracts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sock");
        let _ = std::fs::remove_file(&path);
        let (tcp, unix) = rt.block_on(async {
            (
                TcpListener::bind("127.0.0.1:0").unwrap(),
                UnixListener::bind(&path).unwrap(),
            )
        });
        let _c1 = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
        let _c2 = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let tcp_res = std::thread::spawn(move || plain_block_on(tcp.accept()).map(|_| ())).join();
        let unix_res = std::thread::spawn(move || plain_block_on(unix.accept()).map(|_| ())).join();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            matches!(tcp_res, Ok(Ok(()))),
            "TcpListener::accept off-runtime panicked (connection dropped)"
        );
        assert!(
            matches!(unix_res, Ok(Ok(()))),
            "UnixListener::accept off-runtime panicked (connection dropped)"
        );
        drop(rt);
    });
}

/// `poll_write` to a closed peer fails with `BrokenPipe` quietly (std's
/// TCP `send` uses MSG_NOSIGNAL), and so must `poll_write_vectored`, which
/// used to go through `writev(2)` and raise SIGPIPE: fatal in any process
/// that has not ignored it (a library in a C or Python host, a binary
/// built with `-Zon-broken-pipe=kill`). SIGPIPE is blocked on this thread
/// and checked as pending, so a failure does not kill the harness.
#[test]
fn vectored_writes_to_a_closed_peer_do_not_raise_sigpipe() {
    fn block_sigpipe() {
        // SAFETY: plain libc calls on a local, initialised signal set.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
    }
    /// Whether SIGPIPE is pending on this thread; consumes it if so.
    fn take_sigpipe() -> bool {
        // SAFETY: as above; `sigtimedwait` with a zero timeout only
        // dequeues the signal that `sigpending` reported.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut set);
            if libc::sigismember(&set, libc::SIGPIPE) != 1 {
                return false;
            }
            let mut one: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut one);
            libc::sigaddset(&mut one, libc::SIGPIPE);
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&one, std::ptr::null_mut(), &zero);
            true
        }
    }
    deadline(30, || {
        // `block_on` polls on this thread, so the syscalls happen here.
        block_sigpipe();
        let rt = rt(1);
        let (tcp_plain, tcp_vectored, unix_vectored) = rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            // Close the peer with unread data so that it resets.
            c.write_all(b"unread").await.unwrap();
            drop(s);
            strata_rt::time::sleep(Duration::from_millis(50)).await;
            let e = c.write(b"x").await.unwrap_err();
            assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ),
                "{e:?}"
            );
            let _ = c.write(b"x").await; // the reset may take one write
            let tcp_plain = take_sigpipe();
            let e = c
                .write_vectored(&[IoSlice::new(b"a"), IoSlice::new(b"b")])
                .await;
            assert!(e.is_err(), "{e:?}");
            let tcp_vectored = take_sigpipe();

            let (mut x, y) = UnixStream::pair().unwrap();
            drop(y);
            let e = x
                .write_vectored(&[IoSlice::new(b"a"), IoSlice::new(b"b")])
                .await;
            assert_eq!(e.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
            (tcp_plain, tcp_vectored, take_sigpipe())
        });
        assert!(!tcp_plain, "plain TCP write raised SIGPIPE");
        assert!(
            !tcp_vectored,
            "TcpStream::poll_write_vectored raised SIGPIPE"
        );
        assert!(
            !unix_vectored,
            "UnixStream::poll_write_vectored raised SIGPIPE"
        );
    });
}

struct Nop;
impl Wake for Nop {
    fn wake(self: Arc<Self>) {}
}

/// Cancelled `async fn` waits withdraw their wakers; the `poll_*` entry
/// points (`AsyncRead::poll_read` on `&TcpStream`,
/// `UdpSocket::poll_recv_from`, `poll_send_to`, `poll_accept`) have nothing
/// to withdraw, so they keep only the latest waker per direction, as in
/// tokio. Before, every distinct waker that polled an idle shared socket
/// once and gave up stayed queued (with its task allocation) until the
/// next readiness event, which on an idle socket may never come.
#[test]
fn poll_star_waiters_that_gave_up_do_not_pile_up_on_an_idle_shared_socket() {
    deadline(30, || {
        let rt = rt(1);
        let (client, _server, udp) = rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let s = l.accept().await.unwrap().0;
            (c, s, UdpSocket::bind("127.0.0.1:0").unwrap())
        });
        let mut buf = [0u8; 8];
        // 1,000 short-lived tasks (distinct wakers) each poll once.
        let mut wakers = Vec::new();
        for _ in 0..1_000 {
            let w = Arc::new(Nop);
            let waker = Waker::from(w.clone());
            let mut cx = Context::from_waker(&waker);
            assert!(udp.poll_recv_from(&mut cx, &mut buf).is_pending());
            assert!(
                Pin::new(&mut &client)
                    .poll_read(&mut cx, &mut buf)
                    .is_pending()
            );
            wakers.push(w);
        }
        let held = wakers.iter().filter(|w| Arc::strong_count(w) > 1).count();
        assert!(held <= 1, "{held} wakers of abandoned polls are still held");
    });
}

/// Every socket type lends its descriptor, so options strata does not wrap
/// can be set and read through `socket2`.
#[test]
fn sockets_lend_their_descriptor_for_other_options() {
    use std::os::fd::AsRawFd;
    deadline(30, || {
        let rt = rt(1);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let linger = Some(Duration::from_secs(3));
            socket2::SockRef::from(&c).set_linger(linger).unwrap();
            assert_eq!(socket2::SockRef::from(&c).linger().unwrap(), linger);
            socket2::SockRef::from(&l).set_ttl_v4(17).unwrap();
            assert_eq!(
                l.local_addr().unwrap(),
                socket2::SockRef::from(&l)
                    .local_addr()
                    .unwrap()
                    .as_socket()
                    .unwrap()
            );
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket2::SockRef::from(&u).set_broadcast(true).unwrap();
            assert!(socket2::SockRef::from(&u).broadcast().unwrap());
            let (a, _b) = UnixStream::pair().unwrap();
            assert!(a.as_raw_fd() >= 0 && a.as_raw_fd() != c.as_raw_fd());
        });
    });
}

/// `readv` takes at most 1,024 slices, as `writev` does: a vectored read
/// whose first 1,024 buffers are empty must skip them, not read nothing
/// and return `Ok(0)`, which every reader takes for end of stream
/// (futures-io's default `poll_read_vectored` reads into the first
/// non-empty buffer).
#[test]
fn vectored_read_with_many_leading_empty_buffers_is_not_a_false_eof() {
    deadline(10, || {
        let rt = rt(1);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (mut s, _) = l.accept().await.unwrap();
            c.write_all(b"hello").await.unwrap();
            while s.unread_bytes().unwrap() < 5 {
                strata_rt::yield_now().await;
            }

            assert_eq!(read_behind_empty_buffers(&mut s).await, b"hello");
        });
    });
}

/// The same false end of stream through a `UnixStream`, whose vectored
/// read goes through `readv(2)` with the same 1,024-buffer cap.
#[test]
fn unix_vectored_read_with_many_leading_empty_buffers_is_not_a_false_eof() {
    deadline(10, || {
        let rt = rt(1);
        rt.block_on(async {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            a.write_all(b"world").await.unwrap();
            while b.unread_bytes().unwrap() < 5 {
                strata_rt::yield_now().await;
            }
            assert_eq!(read_behind_empty_buffers(&mut b).await, b"world");
        });
    });
}

/// One `read_vectored` into 1,024 empty buffers and then a 16-byte one,
/// with 5 bytes waiting: what it read (a false end of stream reads none).
async fn read_behind_empty_buffers(r: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut empties: Vec<[u8; 0]> = vec![[]; 1024];
    let mut data = [0u8; 16];
    let mut bufs: Vec<IoSliceMut<'_>> = empties.iter_mut().map(|e| IoSliceMut::new(e)).collect();
    bufs.push(IoSliceMut::new(&mut data));
    let n = r.read_vectored(&mut bufs).await.unwrap();
    assert_eq!(n, 5, "read {n} bytes with 5 waiting: a false end of stream");
    data[..n].to_vec()
}
