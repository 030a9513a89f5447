//! One process, several servers and runtimes, as an application has them:
//! servers of different thread counts under load, stopped in turn in
//! different ways (from a handler of another server, from a task of a
//! third runtime, `shutdown` on a plain thread, a drop), a server started
//! and stopped from inside another server's handler. Every request a
//! server received is answered; counts, threads and descriptors come back.
//! (One test in this binary: it counts the process's threads and fds.)

mod support;

use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_proto::{ServerHandle, TcpServer};
use strata_service::service_fn;
use support::{TestProto, deadline};

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

fn thread_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim_end().to_string())
        .collect();
    names.sort();
    names
}

/// Per server: requests its service began, answers its clients read.
#[derive(Default)]
struct Tally {
    received: AtomicUsize,
    answered: AtomicUsize,
}

type Slot = Arc<Mutex<Option<ServerHandle>>>;

/// A server whose service echoes, answers `whoami` with its thread's name
/// and its runtime's worker count (from `Handle::current()`), and obeys
/// the control requests `stop` (awaits `shutdown_async` of the server in
/// `stop_slot`), `spawn` (starts a server from this handler, into
/// `spawned`) and `drop-spawned` (drops that one here).
fn server(threads: usize, tally: Arc<Tally>, stop_slot: Slot, spawned: Slot) -> ServerHandle {
    TcpServer::new(TestProto, "127.0.0.1:0".parse().unwrap())
        .threads(threads)
        .shutdown_timeout(Duration::from_secs(20))
        .start(move || {
            let (tally, stop_slot, spawned) = (tally.clone(), stop_slot.clone(), spawned.clone());
            Ok(service_fn(move |req: String| {
                let (tally, stop_slot, spawned) =
                    (tally.clone(), stop_slot.clone(), spawned.clone());
                async move {
                    match req.as_str() {
                        "whoami" => {
                            let h = strata_rt::Handle::try_current().expect("inside a runtime");
                            let name = std::thread::current().name().unwrap_or("?").to_string();
                            Ok::<_, io::Error>(format!("{name} {}", h.worker_count()))
                        }
                        "stop" => {
                            let h = stop_slot.lock().unwrap().take().expect("a server to stop");
                            Ok(format!("stopped {}", h.shutdown_async().await))
                        }
                        "spawn" => {
                            let inner = Arc::new(Tally::default());
                            let h = server(1, inner, Slot::default(), Slot::default());
                            let addr = h.local_addr();
                            *spawned.lock().unwrap() = Some(h);
                            Ok(format!("{addr}"))
                        }
                        "drop-spawned" => {
                            drop(spawned.lock().unwrap().take());
                            Ok("dropped".to_string())
                        }
                        _ => {
                            tally.received.fetch_add(1, Ordering::SeqCst);
                            strata_rt::time::sleep(Duration::from_millis(2)).await;
                            Ok(req)
                        }
                    }
                }
            }))
        })
        .unwrap()
}

fn ask(addr: SocketAddr, line: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut got = String::new();
    BufReader::new(c).read_line(&mut got).unwrap();
    got.trim_end().to_string()
}

/// A client that sends one request at a time until its server refuses to
/// connect; counts the answers it read.
fn load(addr: SocketAddr, tally: Arc<Tally>, run: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0u64;
        'connect: loop {
            let s = match TcpStream::connect(addr) {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => return,
                Err(e) => panic!("connect: {e}"),
            };
            if !run.load(Ordering::SeqCst) {
                return;
            }
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            loop {
                n += 1;
                if w.write_all(format!("echo {n}\n").as_bytes()).is_err() {
                    continue 'connect;
                }
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) => continue 'connect,
                    Ok(_) => {
                        assert_eq!(line, format!("echo {n}\n"));
                        tally.answered.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => continue 'connect,
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
    })
}

#[test]
fn servers_stopped_in_turn_under_load_answer_all_and_give_everything_back() {
    deadline(120, || {
        // A client runtime and a background runtime, as an application has.
        let third = strata_rt::Runtime::builder()
            .worker_threads(2)
            .thread_name("app-bg")
            .build()
            .unwrap();
        // Warm up what lives for the process (none expected here).
        let (threads0, fds0) = (count("/proc/self/task"), count("/proc/self/fd"));

        let tallies: Vec<Arc<Tally>> = (0..4).map(|_| Arc::default()).collect();
        // s0 (1 thread) stops s3 from a handler; s0 also hosts a server
        // started from its handler.
        let s3_slot = Slot::default();
        let spawned = Slot::default();
        let s0 = server(1, tallies[0].clone(), s3_slot.clone(), spawned.clone());
        let s1 = server(2, tallies[1].clone(), Slot::default(), Slot::default());
        let s2 = server(3, tallies[2].clone(), Slot::default(), Slot::default());
        let s3 = server(2, tallies[3].clone(), Slot::default(), Slot::default());
        let addrs = [
            s0.local_addr(),
            s1.local_addr(),
            s2.local_addr(),
            s3.local_addr(),
        ];
        *s3_slot.lock().unwrap() = Some(s3);
        // Starts refused on a live port leave no runtime, thread or fd
        // behind (checked with the rest at the end).
        for _ in 0..5 {
            let refused = TcpServer::new(TestProto, addrs[1])
                .threads(2)
                .start(|| Ok(service_fn(|r: String| async move { Ok::<_, io::Error>(r) })));
            assert_eq!(refused.unwrap_err().kind(), ErrorKind::AddrInUse);
        }

        // Which runtime is which: thread names and worker counts.
        for (addr, workers) in addrs.iter().zip([1, 2, 3, 2]) {
            let who = ask(*addr, "whoami");
            assert!(
                who.starts_with("strata-server-") && who.ends_with(&format!(" {workers}")),
                "{who}"
            );
        }

        let run = Arc::new(AtomicBool::new(true));
        let clients: Vec<_> = addrs
            .iter()
            .zip(&tallies)
            .flat_map(|(a, t)| {
                (0..3)
                    .map(|_| load(*a, t.clone(), run.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let progress = |i: usize, n: usize| {
            while tallies[i].answered.load(Ordering::SeqCst) < n {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        for i in 0..4 {
            progress(i, 30);
        }

        // A server started from s0's handler, used, and dropped from there.
        let inner: SocketAddr = ask(addrs[0], "spawn").parse().unwrap();
        assert_eq!(ask(inner, "echo in"), "echo in");
        assert_eq!(ask(addrs[0], "drop-spawned"), "dropped");

        // 1. s3, from a handler of s0 (awaiting shutdown_async there).
        assert_eq!(ask(addrs[0], "stop"), "stopped true");
        // 2. s2 (3 threads), shutdown_async from a task of the third runtime.
        progress(2, 60);
        let finished = third.block_on(async move {
            strata_rt::spawn(async move { s2.shutdown_async().await })
                .await
                .unwrap()
        });
        assert!(finished, "s2 did not finish in time");
        // 3. s1, shutdown on this thread.
        progress(1, 60);
        assert!(s1.shutdown());
        // 4. s0, dropped.
        progress(0, 60);
        drop(s0);

        run.store(false, Ordering::SeqCst);
        for c in clients {
            c.join().unwrap();
        }
        for (i, t) in tallies.iter().enumerate() {
            assert_eq!(
                t.received.load(Ordering::SeqCst),
                t.answered.load(Ordering::SeqCst),
                "server {i}: requests received vs answers read"
            );
        }
        eprintln!(
            "answered: {:?}",
            tallies
                .iter()
                .map(|t| t.answered.load(Ordering::SeqCst))
                .collect::<Vec<_>>()
        );
        drop(third);
        // Back to the baseline (the hang guard bounds the wait).
        loop {
            let (t, f) = (count("/proc/self/task"), count("/proc/self/fd"));
            if t <= threads0 - 2 && f <= fds0 {
                break;
            }
            eprintln!(
                "threads {t} (baseline {}), fds {f} (baseline {fds0}): {:?}",
                threads0 - 2,
                thread_names()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    });
}
