//! After a stall: the worker (or the whole process) did not run for longer
//! than the deadlines in play, and the I/O that would have met them arrived
//! meanwhile. A timeout whose data is there must give the data, and
//! intervals follow their `MissedTickBehavior`.
//!
//! Stalls are made deterministic by blocking a worker with
//! `std::thread::sleep` inside a task, or by SIGSTOP of a child process.
//! Durations are hang guards and orderings, not performance thresholds.

mod support;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use futures_util::io::AsyncReadExt;
use strata_rt::net::{TcpListener, UdpSocket};
use strata_rt::time::{MissedTickBehavior, interval_at, sleep, timeout};

const STALL: Duration = Duration::from_secs(3);
const LIMIT: Duration = Duration::from_secs(1);
/// When the peer acts, counted from the start of the stall: well before
/// `LIMIT` passes.
const PEER_AT: Duration = Duration::from_millis(300);

/// Starts a thread that runs `f` after `PEER_AT`.
fn later(f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(PEER_AT);
        f();
    })
}

#[test]
fn timeout_around_a_read_whose_data_arrived_during_a_stall_gives_the_data() {
    support::on_worker(30, || async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        let reader = strata_rt::spawn(async move {
            let mut buf = [0u8; 16];
            timeout(LIMIT, conn.read(&mut buf))
                .await
                .map(|r| buf[..r.unwrap()].to_vec())
        });
        // The reader waits (timer armed, read pending).
        sleep(Duration::from_millis(50)).await;
        let peer = later(move || {
            client.write_all(b"hello").unwrap();
            std::thread::sleep(Duration::from_secs(5));
        });
        std::thread::sleep(STALL);
        assert_eq!(reader.await.unwrap(), Ok(b"hello".to_vec()));
        drop(peer);
    });
}

#[test]
fn timeout_around_an_accept_whose_peer_connected_during_a_stall_gives_the_stream() {
    support::on_worker(30, || async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor =
            strata_rt::spawn(
                async move { timeout(LIMIT, listener.accept()).await.map(|r| r.is_ok()) },
            );
        sleep(Duration::from_millis(50)).await;
        let peer = later(move || {
            let _c = std::net::TcpStream::connect(addr).unwrap();
            std::thread::sleep(Duration::from_secs(5));
        });
        std::thread::sleep(STALL);
        assert_eq!(acceptor.await.unwrap(), Ok(true));
        drop(peer);
    });
}

#[test]
fn timeout_around_a_recv_from_whose_datagram_arrived_during_a_stall_gives_it() {
    support::on_worker(30, || async {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let receiver = strata_rt::spawn(async move {
            let mut buf = [0u8; 16];
            timeout(LIMIT, socket.recv_from(&mut buf))
                .await
                .map(|r| buf[..r.unwrap().0].to_vec())
        });
        sleep(Duration::from_millis(50)).await;
        let peer = later(move || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.send_to(b"dgram", addr).unwrap();
        });
        std::thread::sleep(STALL);
        assert_eq!(receiver.await.unwrap(), Ok(b"dgram".to_vec()));
        peer.join().unwrap();
    });
}

#[test]
fn timeout_around_a_channel_recv_whose_item_was_sent_during_a_stall_gives_it() {
    support::on_worker(30, || async {
        let (tx, mut rx) = strata_rt::sync::mpsc::unbounded::<u32>();
        let receiver =
            strata_rt::spawn(async move { timeout(LIMIT, rx.recv()).await.map(|r| r.ok()) });
        sleep(Duration::from_millis(50)).await;
        let peer = later(move || tx.unbounded_send(7).unwrap());
        std::thread::sleep(STALL);
        assert_eq!(receiver.await.unwrap(), Ok(Some(7)));
        peer.join().unwrap();
    });
}

/// Stalls the interval's own task for 10.5 periods after its first tick,
/// then takes two ticks; returns (start, period, resume, tick1, after1,
/// tick2, tick3).
async fn interval_after_stall(
    mode: MissedTickBehavior,
) -> (
    Instant,
    Duration,
    Instant,
    Instant,
    Instant,
    Instant,
    Instant,
) {
    let period = Duration::from_millis(100);
    let start = Instant::now() + Duration::from_millis(20);
    let mut iv = interval_at(start, period);
    iv.set_missed_tick_behavior(mode);
    assert_eq!(iv.tick().await, start);
    std::thread::sleep(period * 10 + period / 2);
    let resume = Instant::now();
    let t1 = iv.tick().await;
    let after1 = Instant::now();
    let t2 = iv.tick().await;
    let t3 = iv.tick().await;
    (start, period, resume, t1, after1, t2, t3)
}

#[test]
fn interval_burst_after_a_stall_catches_up_every_missed_tick() {
    support::on_worker(30, || async {
        let (start, period, _, t1, _, t2, t3) =
            interval_after_stall(MissedTickBehavior::Burst).await;
        assert_eq!(t1, start + period);
        assert_eq!(t2, start + period * 2);
        assert_eq!(t3, start + period * 3);
    });
}

#[test]
fn interval_delay_after_a_stall_restarts_one_period_after_the_overdue_tick() {
    support::on_worker(30, || async {
        let (start, period, resume, t1, after1, t2, t3) =
            interval_after_stall(MissedTickBehavior::Delay).await;
        assert_eq!(t1, start + period, "the overdue tick is the one due first");
        assert!(
            t2 >= resume + period && t2 <= after1 + period,
            "{:?}",
            t2 - resume
        );
        assert_eq!(t3, t2 + period, "no burst");
    });
}

#[test]
fn interval_skip_after_a_stall_goes_back_to_the_grid_without_a_burst() {
    support::on_worker(30, || async {
        let (start, period, resume, t1, after1, t2, t3) =
            interval_after_stall(MissedTickBehavior::Skip).await;
        assert_eq!(t1, start + period);
        let k = (t2 - start).as_nanos() / period.as_nanos();
        assert_eq!(start + period * k as u32, t2, "on the grid");
        assert!(t2 > resume && t2 <= after1 + period);
        assert_eq!(t3, t2 + period, "no burst");
    });
}

/// A child that reads under a one-second timeout; the parent stops it with
/// SIGSTOP, writes once it has stopped, waits 3 s, continues it. Linux
/// fails the worker's interrupted `epoll_wait` with `EINTR` on the
/// continue; the worker must look at I/O again before it fires the timers
/// that came due (it used to fire them first, and the read timed out
/// with its data in the socket).
#[test]
fn sigstop_longer_than_a_timeout_while_the_data_arrives_gives_the_data() {
    const CHILD: &str = "STRATA_STALL_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let rt = support::rt(1);
        rt.block_on(rt.handle().spawn(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            println!("PORT {}", listener.local_addr().unwrap().port());
            let (mut conn, _) = listener.accept().await.unwrap();
            let timed = sleep(LIMIT);
            let mut buf = [0u8; 16];
            let r = timeout(LIMIT, conn.read(&mut buf)).await;
            timed.await;
            match r {
                Ok(n) => println!("RESULT ok {:?}", &buf[..n.unwrap()]),
                Err(_) => println!("RESULT elapsed"),
            }
        }))
        .unwrap();
        return;
    }
    support::deadline(60, || {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "sigstop_longer_than_a_timeout_while_the_data_arrives_gives_the_data",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let port = loop {
            line.clear();
            assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0);
            if let Some(i) = line.find("PORT ") {
                break line[i + 5..].trim().parse::<u16>().unwrap();
            }
        };
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // SAFETY: signals our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        // The data comes once the child has stopped, not before.
        support::stopped::wait_stopped(pid as u32);
        c.write_all(b"hello").unwrap();
        std::thread::sleep(STALL);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        child.wait().unwrap();
        assert!(
            rest.contains("RESULT ok [104, 101, 108, 108, 111]"),
            "{rest}"
        );
    });
}
