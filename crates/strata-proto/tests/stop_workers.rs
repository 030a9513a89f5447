//! A clean TcpServer shutdown returns after the runtime dropped its tasks,
//! even when the drain ended at the deadline (from a review).

mod support;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_service::service_fn;
use support::{Client, deadline, one_worker};

/// A clean drain (`Drain::Done`) stops the runtime with
/// `shutdown_timeout(deadline - now)`, which since 6166b2a bounds the
/// workers too. With the deadline reached (shutdown_timeout(0), or a drain
/// that ended at the deadline) the workers are detached at once:
/// `shutdown` returns `true` while the tasks the handlers spawned are
/// still alive (and their sockets open). A timed-out drain gets a second
/// of STOP_GRACE; the clean one gets nothing.
#[test]
fn clean_shutdown_returns_after_the_runtime_dropped_its_tasks() {
    deadline(60, || {
        let held: Arc<Mutex<Option<Arc<()>>>> = Arc::default();
        let token = Arc::new(());
        *held.lock().unwrap() = Some(token.clone());
        let h2 = held.clone();
        let server = one_worker()
            .shutdown_timeout(Duration::ZERO)
            .start(move || {
                let held = h2.clone();
                Ok(service_fn(move |req: String| {
                    let held = held.clone();
                    async move {
                        if let Some(t) = held.lock().unwrap().take() {
                            // A background task the handler leaves running.
                            strata_rt::spawn(async move {
                                let _t = t;
                                std::future::pending::<()>().await
                            });
                        }
                        Ok::<_, io::Error>(format!("ok {req}"))
                    }
                }))
            })
            .unwrap();
        let mut c = Client::connect(server.local_addr());
        c.send(&["a"]);
        assert_eq!(c.recv().as_deref(), Some("ok a"));
        drop(c);
        let end = Instant::now() + Duration::from_secs(10);
        while server.connections() > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(server.connections(), 0);
        assert!(server.shutdown(), "a clean drain");
        assert_eq!(
            Arc::strong_count(&token),
            1,
            "shutdown returned true with the server's tasks still alive (workers detached)"
        );
    })
}

/// `TcpServer::shutdown_timeout`: blocking closures are waited for within
/// the same deadline. The workers' grace after the deadline (for dropping
/// the connections) used to apply to them too: with a zero timeout, the
/// shutdown waited for a 400 ms closure.
#[test]
fn a_zero_shutdown_timeout_does_not_wait_for_blocking_closures() {
    use std::sync::atomic::{AtomicBool, Ordering};
    deadline(60, || {
        let started = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let (s, f) = (started.clone(), finished.clone());
        let server = one_worker()
            .shutdown_timeout(Duration::ZERO)
            .start(move || {
                let (s, f) = (s.clone(), f.clone());
                Ok::<_, io::Error>(service_fn(move |req: String| {
                    let (s, f) = (s.clone(), f.clone());
                    drop(strata_rt::spawn_blocking(move || {
                        s.store(true, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(400));
                        f.store(true, Ordering::SeqCst);
                    }));
                    async move { Ok::<_, io::Error>(req) }
                }))
            })
            .unwrap();
        let mut c = Client::connect(server.local_addr());
        assert_eq!(c.round_trip("go").as_deref(), Some("go"));
        drop(c);
        let t = Instant::now();
        while !started.load(Ordering::SeqCst) || server.connections() > 0 {
            assert!(t.elapsed() < Duration::from_secs(10), "hang guard");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(server.shutdown(), "no connection was left");
        assert!(
            !finished.load(Ordering::SeqCst),
            "a zero shutdown timeout waited for a blocking closure"
        );
    })
}
