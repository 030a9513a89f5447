//! The coop budget, `shutdown_timeout`, `unread_bytes` and abstract Unix
//! names at their edges, against tokio and the docs (the first four
//! tests are a review's findings). A
//! hung worker cannot be joined, so the hang tests `mem::forget` their
//! runtime and report instead of hanging.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_rt::Runtime;
use strata_rt::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};

fn one_worker() -> Runtime {
    Runtime::builder().worker_threads(1).build().unwrap()
}

/// Waits up to `limit` for `flag`.
fn wait_flag(flag: &AtomicBool, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if flag.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    flag.load(Ordering::SeqCst)
}

/// A UDP socket shut down for reading (`shutdown(SHUT_RD)`, e.g. by code
/// holding its fd) reports EPOLLIN|EPOLLRDHUP while `recv` returns
/// `EAGAIN`. `poll_io` retries after each `WouldBlock`; its task must
/// still let the worker run others. (It once held the worker, when the
/// close bit outlived every `WouldBlock` and retries were refunded; now
/// the `WouldBlock` clears the bit and the `recv` waits: tests/budget.rs.)
#[test]
fn udp_recv_after_shut_rd_does_not_hold_its_worker() {
    // The kernel really does answer EAGAIN with the socket "readable".
    let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    std_sock.connect(std_sock.local_addr().unwrap()).unwrap();
    std_sock.set_nonblocking(true).unwrap();
    assert_eq!(
        // SAFETY: shutdown(2) on a descriptor this socket owns and keeps open.
        unsafe { libc::shutdown(std_sock.as_raw_fd(), libc::SHUT_RD) },
        0
    );
    assert_eq!(
        std_sock.recv(&mut [0; 8]).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );

    let rt = one_worker();
    let h = rt.handle().clone();
    let started = Arc::new(AtomicBool::new(false));
    let s2 = started.clone();
    let _recv = h.spawn_on(0, async move {
        let sock = UdpSocket::from_std(std_sock).unwrap();
        s2.store(true, Ordering::SeqCst);
        let _ = sock.recv(&mut [0; 8]).await;
    });
    assert!(wait_flag(&started, Duration::from_secs(5)));
    let other = Arc::new(AtomicBool::new(false));
    let o2 = other.clone();
    let _other = h.spawn_on(0, async move { o2.store(true, Ordering::SeqCst) });
    let ran = wait_flag(&other, Duration::from_secs(2));
    if !ran {
        std::mem::forget(rt); // its worker is spinning: cannot be joined
    }
    assert!(
        ran,
        "a task on the same worker never ran: recv spins without yielding"
    );
}

/// `Sleep` spends budget on completion; `Timeout` must still fire around
/// an inner future that spends the whole budget each poll (always-ready
/// I/O, the source the `coop` docs describe): it polls its sleep without
/// a budget then, as tokio's does (it used to never fire).
#[test]
fn timeout_fires_around_a_future_that_spends_its_budget() {
    let rt = one_worker();
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let _t = rt.handle().spawn(async move {
        // An always-ready source, drained as the coop docs show.
        let busy = std::future::poll_fn(|cx| {
            loop {
                let unit = std::task::ready!(strata_rt::coop::poll_proceed(cx));
                unit.made_progress();
            }
            #[allow(unreachable_code)]
            Poll::Ready(())
        });
        let r = strata_rt::time::timeout(Duration::from_millis(50), busy).await;
        assert!(r.is_err());
        d2.store(true, Ordering::SeqCst);
    });
    let fired = wait_flag(&done, Duration::from_secs(3));
    // The task yields each poll, so the runtime can still be dropped.
    drop(rt);
    assert!(fired, "timeout(50ms) had not fired after 3s");
}

/// `shutdown_timeout` bounds the wait for the workers too: a task that
/// blocks its worker (a `std::thread::sleep`, a sync lock, a CPU loop) no
/// longer holds it past its limit (it used to wait as long as the task).
#[test]
fn shutdown_timeout_does_not_wait_past_its_limit_for_a_blocked_worker() {
    let rt = one_worker();
    let (tx, rx) = std::sync::mpsc::channel();
    let woke = Arc::new(AtomicBool::new(false));
    let w = woke.clone();
    let _t = rt.handle().spawn(async move {
        tx.send(()).unwrap();
        // Blocks the worker; a stop that waited for it returns only after.
        std::thread::sleep(Duration::from_secs(10));
        w.store(true, Ordering::SeqCst);
    });
    rx.recv().unwrap();
    let clean = rt.shutdown_timeout(Duration::from_millis(50));
    assert!(
        !woke.load(Ordering::SeqCst),
        "shutdown_timeout(50ms) waited for the blocked worker"
    );
    assert!(!clean, "a worker was left running");
}

/// Found fine: the other shutdown edges.
#[test]
fn shutdown_edges_are_fine() {
    let rt = one_worker();
    assert!(rt.shutdown_timeout(Duration::MAX));
    let rt = one_worker();
    rt.handle()
        .spawn_blocking(|| std::thread::sleep(Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    rt.shutdown_background();
    // It does not wait for the closure (20 s).
    assert!(t0.elapsed() < Duration::from_secs(10));
    // From another runtime's worker.
    let outer = one_worker();
    let inner = one_worker();
    let ok = outer.block_on(async move {
        strata_rt::spawn(async move { inner.shutdown_timeout(Duration::from_secs(1)) })
            .await
            .unwrap()
    });
    assert!(ok);
    // On its own worker: false at once, as documented.
    let rt = one_worker();
    let h = rt.handle().clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::mem::forget(h.spawn(async move {
        tx.send(rt.shutdown_timeout(Duration::from_secs(5)))
            .unwrap();
    }));
    assert!(!rx.recv_timeout(Duration::from_secs(20)).unwrap());
}

/// Found fine: budget edges of the public coop API.
#[test]
fn coop_edges_are_fine() {
    let rt = one_worker();
    assert!(strata_rt::coop::has_budget_remaining());
    rt.block_on(async {
        assert!(strata_rt::coop::has_budget_remaining());
        let in_blocking = strata_rt::spawn_blocking(strata_rt::coop::has_budget_remaining);
        assert!(in_blocking.await.unwrap());
        let left = strata_rt::spawn(std::future::poll_fn(|cx| {
            let mut n = 0;
            // Nested guards, made_progress twice, guards dropped unused.
            while let Poll::Ready(outer) = strata_rt::coop::poll_proceed(cx) {
                let inner = strata_rt::coop::poll_proceed(cx);
                drop(inner); // given back
                outer.made_progress();
                outer.made_progress();
                n += 1;
            }
            Poll::Ready((n, strata_rt::coop::has_budget_remaining()))
        }))
        .await
        .unwrap();
        assert_eq!(left, (128, false));
    });
}

/// Found fine: unread_bytes on connected and accepted streams, after EOF
/// and after shutdown.
#[test]
fn unread_bytes_edges_are_fine() {
    let rt = one_worker();
    rt.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut a, _) = l.accept().await.unwrap();
        assert_eq!(c.unread_bytes().unwrap(), 0);
        a.write_all(b"hello").await.unwrap();
        c.readable().await.unwrap();
        assert_eq!(c.unread_bytes().unwrap(), 5);
        c.write_all(b"abc").await.unwrap();
        a.readable().await.unwrap();
        assert_eq!(a.unread_bytes().unwrap(), 3);
        a.shutdown(std::net::Shutdown::Write).unwrap();
        let mut v = Vec::new();
        c.read_to_end(&mut v).await.unwrap();
        assert_eq!(c.unread_bytes().unwrap(), 0);
        c.shutdown(std::net::Shutdown::Both).unwrap();
        assert_eq!(c.unread_bytes().unwrap(), 0);
    });
}

/// Found fine: abstract names, empty, with NULs, at and past the limit.
#[test]
fn abstract_name_edges() {
    use std::os::linux::net::SocketAddrExt;
    let rt = one_worker();
    rt.block_on(async {
        let base = format!("\0strata-api7-{}", std::process::id());
        // Embedded NUL: part of the name.
        let with_nul = format!("{base}\0x");
        let l = UnixListener::bind(&with_nul).unwrap();
        assert_eq!(
            l.local_addr().unwrap().as_abstract_name().unwrap(),
            &with_nul.as_bytes()[1..]
        );
        assert!(UnixStream::connect(format!("{base}\0y")).await.is_err());
        let _s = UnixStream::connect(&with_nul).await.unwrap();
        // 107 bytes after the NUL fit; 108 do not.
        let max = format!("\0{}", "a".repeat(107));
        let _l = UnixListener::bind(&max).unwrap();
        let e = UnixListener::bind(format!("\0{}", "a".repeat(108))).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
        eprintln!("too long: {e}");
        // Interior NUL in a path name is refused.
        let e = UnixListener::bind("/tmp/a\0b").unwrap_err();
        eprintln!("interior NUL: {e}");
    });
}

/// The empty path is refused: std encodes it as an address of the family
/// alone, on which Linux binds a random abstract name (autobind), and
/// `bind` would create no file and listen where no one could find it.
#[test]
fn an_empty_unix_path_is_refused() {
    let rt = one_worker();
    rt.block_on(async {
        match UnixListener::bind("") {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e:?}"),
            Ok(l) => panic!("bind(\"\") listened at {:?}", l.local_addr()),
        }
        let err = UnixStream::connect("").await.expect_err("connected");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    });
}

/// An empty abstract name (`"\0"`) is refused: mio passes it to the
/// kernel with the length of an address of the family alone, and the
/// kernel binds a random name instead, which `connect("\0")` could not
/// reach. (std's own `bind_addr` keeps the NUL and binds the empty name.)
#[test]
fn an_empty_abstract_name_is_refused() {
    let rt = one_worker();
    rt.block_on(async {
        let err = UnixListener::bind("\0").expect_err("bound an empty name");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        let err = UnixStream::connect("\0").await.expect_err("connected");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    });
}

/// `RestoreOnPending` is not `Send`, as tokio's: its drop refunds the
/// current thread's budget, so it must not move to another thread.
#[test]
fn restore_on_pending_is_not_send() {
    trait AmbiguousIfSend<A> {
        fn some_item() {}
    }
    impl<T: ?Sized> AmbiguousIfSend<()> for T {}
    impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}
    // Compiles only if exactly one impl applies, i.e. the guard is !Send.
    <strata_rt::coop::RestoreOnPending as AmbiguousIfSend<_>>::some_item();
}
