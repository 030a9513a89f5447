//! The cooperative budget where a worker's task budget does not reach:
//! `block_on` has none, so an executor nested in its future is never
//! stopped by one (it could never have it refilled); and a socket that
//! reports itself closed while it answers `WouldBlock` (a UDP socket or a
//! listener shut down with `shutdown(2)`) waits for its next event instead
//! of being retried without end, whatever polls it. (A plain thread's
//! unlimited budget is never spent: a unit test in `coop.rs`.)

mod support;

use std::os::fd::AsRawFd;
use std::task::Poll;
use std::time::Duration;

use strata_rt::net::{UdpSocket, UnixListener};
use support::{deadline, rt};

/// A UDP socket shut down for reading reports EPOLLIN|EPOLLRDHUP while
/// `recv` answers `EAGAIN`. The closed bit went unchanged by the
/// `WouldBlock`, so the retry loop never waited: under `block_on` (no
/// budget) a timeout around the `recv` never fired.
#[test]
fn a_recv_on_a_udp_socket_shut_down_for_reading_waits() {
    let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    std_sock.connect(std_sock.local_addr().unwrap()).unwrap();
    std_sock.set_nonblocking(true).unwrap();
    // SAFETY: shutdown(2) on a descriptor this socket owns and keeps open.
    let rc = unsafe { libc::shutdown(std_sock.as_raw_fd(), libc::SHUT_RD) };
    assert_eq!(rc, 0);
    let (r, polls) = deadline(20, move || {
        rt(1).block_on(async move {
            let sock = UdpSocket::from_std(std_sock).unwrap();
            // Count the polls: a source that waits is polled a few times,
            // one that is retried is polled until the timeout.
            let mut polls = 0u64;
            let recv = async {
                let mut buf = [0; 8];
                let mut recv = std::pin::pin!(sock.recv(&mut buf));
                std::future::poll_fn(|cx| {
                    polls += 1;
                    recv.as_mut().poll(cx)
                })
                .await
            };
            let r = strata_rt::time::timeout(Duration::from_millis(200), recv).await;
            (r.map(|r| r.map(|_| ())), polls)
        })
    });
    assert!(r.is_err(), "expected the timeout, got {r:?}");
    assert!(
        polls < 100,
        "recv was polled {polls} times: it never waited"
    );
}

/// The same for a Unix listener shut down to break an accept loop (a
/// common idiom): EPOLLIN|EPOLLRDHUP|EPOLLHUP while `accept` answers
/// `EAGAIN`, polled on a thread that is no runtime's and has no budget at
/// all: the poll returns `Pending`.
#[test]
fn an_accept_on_a_shut_down_unix_listener_waits_on_any_thread() {
    let dir = std::env::temp_dir().join(format!("strata-budget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("l.sock");
    let _ = std::fs::remove_file(&path);
    let rt = rt(1);
    let l = rt.block_on(async { UnixListener::bind(&path) }).unwrap();
    // SAFETY: shutdown(2) on a descriptor the listener owns and keeps open.
    assert_eq!(unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) }, 0);
    // Polls on a thread with no budget: the first registers the listener
    // with a worker, whose reactor then sees the hang-up; the second used
    // to never return.
    let polled = deadline(20, move || {
        use futures_util::FutureExt;
        let mut accept = Box::pin(l.accept());
        let first = (&mut accept).now_or_never().is_some();
        std::thread::sleep(Duration::from_millis(200));
        let second = accept.now_or_never().map(|r| r.map(|_| ()));
        drop(l);
        (first, second)
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        matches!(polled, (false, None)),
        "expected Pending twice, got {polled:?}"
    );
}

/// A synchronous helper that drives a future with its own executor (what
/// `futures::executor::block_on` does; bounded here so that the test
/// cannot hang): `Some` if it completed within `max_polls` polls.
fn nested_executor<F: Future>(f: F, max_polls: usize) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..max_polls {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Some(v);
        }
    }
    None
}

/// An executor nested in `block_on`'s future could never return to
/// `block_on` to have a spent budget refilled; with no budget there, it
/// drains a channel of 300 messages (with `block_on` budgeted as a task,
/// every receive after the 128th returned `Pending` and woke, forever).
#[test]
fn an_executor_nested_in_block_on_is_not_stopped_by_its_budget() {
    use futures_util::StreamExt;
    let drained = deadline(20, || {
        rt(1).block_on(async {
            let (tx, mut rx) = strata_rt::sync::mpsc::unbounded::<u32>();
            for i in 0..300 {
                tx.unbounded_send(i).unwrap();
            }
            drop(tx);
            nested_executor(
                async move {
                    let mut n = 0;
                    while rx.next().await.is_some() {
                        n += 1;
                    }
                    n
                },
                100_000,
            )
        })
    });
    assert_eq!(drained, Some(300), "the nested executor never finished");
}
