//! A migrating tokio/tower user's line RPC with middleware: a
//! `ServiceBuilder` with a timeout and a concurrency limit in front of a
//! service whose state is `Rc<RefCell<..>>` (thread-per-core: futures
//! need not be `Send`), errors answered in place, pipelined clients.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use strata::codec::{Framed, LinesCodec, LinesCodecError};
use strata::io::SinkExt;
use strata::prelude::*;
use strata::proto::pipeline::{ErrorAction, ServerProto};
use strata::rt::time::{sleep, timeout};
use strata::service::BoxError;

struct Line;

impl ServerProto for Line {
    type Request = String;
    type Response = String;
    type Codec = LinesCodec;
    fn codec(&self) -> LinesCodec {
        LinesCodec::with_max_length(1024)
    }
    fn decode_error(&self, err: &LinesCodecError) -> Option<String> {
        Some(format!("bad: {err}"))
    }
    fn service_error(&self, err: &BoxError) -> ErrorAction<String> {
        ErrorAction::Respond(format!("err: {err}"))
    }
}

fn expected(req: &str, count_before: usize) -> String {
    let n: u64 = req.split(' ').nth(1).unwrap().parse().unwrap();
    if n % 10 == 3 {
        "err: request timed out after 200ms".into()
    } else if n % 10 == 7 {
        format!("err: seven {n}")
    } else {
        format!("ok {n} #{count_before}")
    }
}

#[test]
fn middleware_stack_with_rc_state_and_pipelining() {
    let server = TcpServer::new(Line, "127.0.0.1:0".parse().unwrap())
        .threads(2)
        .start(|| {
            // Per-connection state, not Send.
            let count = Rc::new(RefCell::new(0usize));
            let svc = ServiceBuilder::new()
                .concurrency_limit(4)
                .timeout(Duration::from_millis(200))
                .service(service_fn(move |req: String| {
                    let count = count.clone();
                    async move {
                        let n: u64 = req.split(' ').nth(1).unwrap().parse().unwrap();
                        let before = {
                            let mut c = count.borrow_mut();
                            *c += 1;
                            *c - 1
                        };
                        if n % 10 == 3 {
                            sleep(Duration::from_secs(5)).await;
                        }
                        if n % 10 == 7 {
                            return Err::<String, BoxError>(format!("seven {n}").into());
                        }
                        sleep(Duration::from_millis(n % 3)).await;
                        Ok(format!("ok {n} #{before}"))
                    }
                }));
            Ok(svc)
        })
        .unwrap();
    let addr = server.local_addr();
    let rt = strata::Runtime::builder()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async move {
        let r = timeout(Duration::from_secs(60), async move {
            let mut clients = Vec::new();
            for c in 0..4u64 {
                clients.push(strata::spawn(async move {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    let mut f = Framed::new(stream, LinesCodec::new());
                    let reqs: Vec<String> =
                        (0..40).map(|i| format!("req {}", c * 1000 + i)).collect();
                    for r in &reqs {
                        f.feed(r.clone()).await.unwrap();
                    }
                    SinkExt::<String>::flush(&mut f).await.unwrap();
                    // each request counts in `count` when its call starts,
                    // calls start in order, so #k is the k-th request
                    for (k, r) in reqs.iter().enumerate() {
                        let got = f.next().await.unwrap().unwrap();
                        assert_eq!(got, expected(r, k), "conn {c} request {k}");
                    }
                    // a too-long line: an error line, then the server closes
                    f.send("x".repeat(5000)).await.unwrap();
                    let got = f.next().await.unwrap().unwrap();
                    assert!(got.starts_with("bad: "), "{got}");
                    assert!(f.next().await.is_none());
                }));
            }
            for c in clients {
                c.await.unwrap();
            }
        })
        .await;
        assert!(r.is_ok(), "middleware RPC hung");
    });
    assert!(server.shutdown());
}
