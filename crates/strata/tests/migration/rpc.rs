//! A migrating tokio user's length-delimited RPC: a `TcpServer` with a
//! custom `ServerProto` over `LengthDelimitedCodec`, clients on a runtime
//! of their own pipelining requests through `Framed` with per-response
//! timeouts, and a graceful shutdown of the server in the middle of the
//! load. Every request the service saw must be answered, in order, and
//! every answer must match its request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strata::bytes::{BufMut, Bytes, BytesMut};
use strata::codec::{Framed, LengthDelimitedCodec};
use strata::prelude::*;
use strata::proto::pipeline::ServerProto;
use strata::rt::time::timeout;

struct Rpc;

impl ServerProto for Rpc {
    type Request = BytesMut;
    type Response = Bytes;
    type Codec = LengthDelimitedCodec;
    fn codec(&self) -> LengthDelimitedCodec {
        LengthDelimitedCodec::new()
    }
}

fn request(conn: u64, seq: u64) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u64(conn);
    b.put_u64(seq);
    // a body whose length varies with seq
    for i in 0..(seq % 97) {
        b.put_u8((conn as u8) ^ (i as u8));
    }
    b.freeze()
}

fn answer(req: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(req.len() + 4);
    b.put_slice(b"ans:");
    b.put_slice(req);
    b.freeze()
}

#[test]
fn pipelined_rpc_with_graceful_shutdown_mid_load() {
    let served = Arc::new(AtomicUsize::new(0));
    let s2 = served.clone();
    let server = TcpServer::new(Rpc, "127.0.0.1:0".parse().unwrap())
        .threads(2)
        .shutdown_timeout(Duration::from_secs(20))
        .start(move || {
            let served = s2.clone();
            Ok(service_fn(move |req: BytesMut| {
                let served = served.clone();
                async move {
                    served.fetch_add(1, Ordering::SeqCst);
                    // a little latency, varying
                    let seq = u64::from_be_bytes(req[8..16].try_into().unwrap());
                    if seq % 7 == 0 {
                        strata::rt::time::sleep(Duration::from_millis(2)).await;
                    }
                    Ok::<_, std::io::Error>(answer(&req))
                }
            }))
        })
        .unwrap();
    let addr = server.local_addr();

    const CONNS: u64 = 8;
    const PER_CONN: u64 = 100_000; // far more than will be served
    let answered = Arc::new(AtomicUsize::new(0));
    let client_rt = strata::Runtime::builder()
        .worker_threads(2)
        .build()
        .unwrap();
    let a2 = answered.clone();
    let mut server = Some(server);
    let result = client_rt.block_on(async move {
        let mut tasks = Vec::new();
        for conn in 0..CONNS {
            let answered = a2.clone();
            tasks.push(strata::spawn(async move {
                let stream = TcpStream::connect(addr).await.unwrap();
                let framed = Framed::new(stream, LengthDelimitedCodec::new());
                let (mut sink, mut stream) = framed.split();
                let writer = strata::spawn(async move {
                    for seq in 0..PER_CONN {
                        if sink.send(request(conn, seq)).await.is_err() {
                            return seq;
                        }
                    }
                    PER_CONN
                });
                let mut got = 0u64;
                loop {
                    match timeout(Duration::from_secs(20), stream.next()).await {
                        Err(_) => panic!("conn {conn}: no response or EOF in 20 s after {got}"),
                        Ok(None) => break,
                        Ok(Some(Err(e))) => {
                            // a reset after the last answer is tolerable only
                            // if it comes after EOF; report it
                            panic!("conn {conn}: error after {got} answers: {e}");
                        }
                        Ok(Some(Ok(frame))) => {
                            assert_eq!(
                                &frame[..],
                                &answer(&request(conn, got))[..],
                                "conn {conn} seq {got}"
                            );
                            got += 1;
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                let sent = writer.await.unwrap();
                assert!(got <= sent);
                got
            }));
        }
        // Let load build up, then shut the server down, awaiting the
        // graceful drain.
        while a2.load(Ordering::SeqCst) < 20_000 {
            strata::rt::time::sleep(Duration::from_millis(5)).await;
        }
        let clean = server.take().unwrap().shutdown_async().await;
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        (clean, total)
    });
    let (clean, total) = result;
    assert!(clean, "graceful shutdown timed out");
    assert_eq!(
        served.load(Ordering::SeqCst) as u64,
        total,
        "every request the service handled was answered"
    );
    assert_eq!(answered.load(Ordering::SeqCst) as u64, total);
}
