//! A request that panicked, on a connection whose write side is full (the
//! peer does not read): the requests around it must not stop halfway
//! holding a lock or a permit that other connections wait for. Those
//! ahead of the panic run on (one may wait on a request behind it), and
//! once none of them is unfinished, the ones behind it, never to be
//! answered, are dropped. (From reviews: the connection used to stop at
//! the panic until the peer read, keeping a shared permit for the write
//! timeout, forever without one.)
//!
//! Real TCP on 127.0.0.1; every wait is a hang guard, not a bound.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use strata_service::Service;
use strata_service::limit::PermitPool;
use support::*;

fn quiet() -> strata_proto::ConnectionConfig {
    cfg()
        .idle_timeout(None)
        .read_timeout(None)
        .write_timeout(None)
}

/// More than loopback's kernel queues take with a 1-byte receive buffer at
/// the peer: the hostile connection's write side is full once this answer
/// is in its write buffer, for as long as the peer does not read.
const HUGE_ANSWER: usize = 16 << 20;

#[derive(Default)]
struct State {
    /// Test -> `big`: finish now.
    go_big: Flag,
    /// Set by `big` as it finishes.
    big_done: AtomicBool,
    /// Set by a request that was polled after `big` finished (in the same
    /// pass of the in-flight queue, so `big`'s answer is delivered right
    /// after it and the write side is full from then on).
    saw_big_done: AtomicBool,
    /// Test -> `panic`: panic now.
    go_panic: Flag,
    /// Set by `panic` just before it panics.
    panicked: AtomicBool,
    /// Set by `hold`/`wait` once they hold the permit.
    holding: AtomicBool,
    /// Test -> `hold`/`release`: go on.
    go_release: Flag,
    /// `release` -> `wait`.
    released: Flag,
}

/// `big`: waits for the test, then a 16 MiB answer. `panic`: waits for
/// the test, then panics. `hold`: takes the pool's permit, waits until it
/// is polled after `big` finished, then for the test, then gives it back.
/// `wait`: takes the permit, waits for `release`, gives it back.
/// `release`: waits until polled after `big` finished, then for the test,
/// then releases `wait`. `quick` (another connection): takes the permit
/// and answers `ok`.
#[derive(Clone)]
struct Svc {
    pool: PermitPool,
    st: Arc<State>,
}

/// Pending (no waker: the connection's next pass polls it) until `big`
/// finished; records that it saw it.
async fn after_big(st: &State) {
    std::future::poll_fn(|_| {
        if st.big_done.load(Ordering::SeqCst) {
            st.saw_big_done.store(true, Ordering::SeqCst);
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

impl Service<String> for Svc {
    type Response = String;
    type Error = std::io::Error;

    async fn call(&self, req: String) -> Result<String, std::io::Error> {
        let st = self.st.clone();
        let pool = self.pool.clone();
        match req.as_str() {
            "big" => {
                st.go_big.wait().await;
                st.big_done.store(true, Ordering::SeqCst);
                Ok("x".repeat(HUGE_ANSWER))
            }
            "panic" => {
                st.go_panic.wait().await;
                st.panicked.store(true, Ordering::SeqCst);
                panic!("asked to panic");
            }
            "hold" => {
                let permit = pool.acquire().await;
                st.holding.store(true, Ordering::SeqCst);
                after_big(&st).await;
                st.go_release.wait().await;
                drop(permit);
                Ok("held".into())
            }
            "wait" => {
                let permit = pool.acquire().await;
                st.holding.store(true, Ordering::SeqCst);
                st.released.wait().await;
                drop(permit);
                Ok("woke".into())
            }
            "release" => {
                after_big(&st).await;
                st.go_release.wait().await;
                st.released.fire();
                Ok("released".into())
            }
            "quick" => {
                let _permit = pool.acquire().await;
                Ok("ok".into())
            }
            other => Ok(format!("unknown {other}")),
        }
    }
}

/// Starts the server (one permit in the pool, no timeouts) and the hostile
/// peer, which sends `requests` and never reads.
fn start(
    requests: &str,
) -> (
    strata_proto::ServerHandle,
    Arc<State>,
    PermitPool,
    TcpStream,
) {
    let st = Arc::new(State::default());
    let pool = PermitPool::new(1);
    let svc = Svc {
        pool: pool.clone(),
        st: st.clone(),
    };
    let server = one_worker()
        .connection_config(quiet())
        .start(move || Ok::<_, std::io::Error>(svc.clone()))
        .unwrap();
    let mut hog = small_window_client(server.local_addr());
    hog.write_all(requests.as_bytes()).unwrap();
    eventually(20, "the hostile peer's request holds the permit", || {
        st.holding.load(Ordering::SeqCst)
    });
    (server, st, pool, hog)
}

/// Another connection's request, which needs the permit: its answer.
fn victim(server: &strata_proto::ServerHandle) -> String {
    let victim = TcpStream::connect(server.local_addr()).unwrap();
    (&victim).write_all(b"quick\n").unwrap();
    let mut answer = String::new();
    // Hang guard: the caller's deadline.
    BufReader::new(&victim).read_line(&mut answer).unwrap();
    answer
}

/// The hostile peer sends `requests` (`big` first); `big` finishes and
/// fills the write side for good, then the panic happens and the requests
/// may go on: another connection's request, which needs the shared permit,
/// is answered.
fn another_connection_gets_the_permit(requests: &'static str) {
    deadline(40, || {
        let (server, st, pool, hog) = start(requests);
        // `big` finishes; a request behind it sees that in the same pass,
        // right after which `big`'s 16 MiB answer fills the write side.
        st.go_big.fire();
        eventually(20, "a request was polled after big finished", || {
            st.saw_big_done.load(Ordering::SeqCst)
        });
        st.go_panic.fire();
        eventually(20, "the panic happened", || {
            st.panicked.load(Ordering::SeqCst)
        });
        st.go_release.fire();
        let answer = victim(&server);
        assert_eq!(
            answer,
            "ok\n",
            "the victim's answer (permits available {})",
            pool.available()
        );
        drop(hog);
        drop(server);
    });
}

/// The panic's turn has come (the answer ahead of it is in the write
/// buffer, the write side full): `hold`, behind it, is dropped with the
/// shared permit it holds, so another connection's request gets it.
#[test]
fn a_request_behind_a_panic_whose_turn_came_does_not_keep_a_shared_permit() {
    another_connection_gets_the_permit("big\npanic\nhold\n");
}

/// A request ahead of the panic (`wait`, holding the shared permit) waits
/// on one behind it (`release`): that one still runs while the write side
/// is full, so `wait` finishes and gives the permit back.
#[test]
fn a_request_ahead_of_a_panic_waiting_on_one_behind_it_does_not_keep_a_shared_permit() {
    another_connection_gets_the_permit("big\nwait\npanic\nrelease\n");
}
