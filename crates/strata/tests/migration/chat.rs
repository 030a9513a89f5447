//! A migrating tokio user's chat server: each line a client sends is
//! delivered to every other connected client. Fanned out through
//! per-client unbounded mpsc senders kept in a shared `Mutex<HashMap>`
//! (so that a slow client holds back no other; `strata::rt::sync::broadcast`
//! is the other way), reads with `Framed<OwnedReadHalf, LinesCodec>`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use strata::codec::{Framed, FramedRead, FramedWrite, LinesCodec};
use strata::io::{SinkExt, StreamExt};
use strata::rt::net::{TcpListener, TcpStream};
use strata::rt::sync::{Mutex, mpsc};
use strata::rt::time::timeout;

type Peers = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<String>>>>;

async fn serve(listener: TcpListener, peers: Peers) {
    let mut next_id = 0u64;
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        next_id += 1;
        let id = next_id;
        let peers = peers.clone();
        strata::spawn(async move {
            let (rd, wr) = stream.into_split();
            let mut lines = FramedRead::new(rd, LinesCodec::new());
            let mut out = FramedWrite::new(wr, LinesCodec::new());
            let (tx, mut rx) = mpsc::unbounded::<String>();
            // register, then say hello so the client knows it is in
            peers.lock().await.insert(id, tx);
            out.send(format!("welcome {id}")).await.unwrap();
            let writer = strata::spawn(async move {
                while let Some(msg) = rx.next().await {
                    if out.send(msg).await.is_err() {
                        break;
                    }
                }
            });
            while let Some(Ok(line)) = lines.next().await {
                let msg = format!("{id}: {line}");
                for (pid, ptx) in peers.lock().await.iter() {
                    if *pid != id {
                        let _ = ptx.unbounded_send(msg.clone());
                    }
                }
            }
            peers.lock().await.remove(&id);
            let _ = writer.await;
        });
    }
}

struct Client {
    id: u64,
    framed: Framed<TcpStream, LinesCodec>,
}

async fn join(addr: std::net::SocketAddr) -> Client {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut framed = Framed::new(stream, LinesCodec::new());
    let hello = framed.next().await.unwrap().unwrap();
    let id = hello.strip_prefix("welcome ").unwrap().parse().unwrap();
    Client { id, framed }
}

#[test]
fn chat_broadcast_with_join_and_leave() {
    let rt = strata::Runtime::builder()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peers: Peers = Arc::new(Mutex::new(HashMap::new()));
        strata::spawn(serve(listener, peers.clone()));

        let r = timeout(Duration::from_secs(30), async {
            let mut a = join(addr).await;
            let mut b = join(addr).await;
            let mut c = join(addr).await;
            // Round 1: all three talk, 50 messages each, in turn.
            for i in 0..50 {
                a.framed.send(format!("a{i}")).await.unwrap();
                b.framed.send(format!("b{i}")).await.unwrap();
            }
            for who in [&mut c] {
                let mut got = Vec::new();
                for _ in 0..100 {
                    got.push(who.framed.next().await.unwrap().unwrap());
                }
                let from_a: Vec<_> = got
                    .iter()
                    .filter(|m| m.starts_with(&format!("{}: ", a.id)))
                    .cloned()
                    .collect();
                let from_b: Vec<_> = got
                    .iter()
                    .filter(|m| m.starts_with(&format!("{}: ", b.id)))
                    .cloned()
                    .collect();
                assert_eq!(
                    from_a,
                    (0..50)
                        .map(|i| format!("{}: a{i}", a.id))
                        .collect::<Vec<_>>()
                );
                assert_eq!(
                    from_b,
                    (0..50)
                        .map(|i| format!("{}: b{i}", b.id))
                        .collect::<Vec<_>>()
                );
            }
            for i in 0..50 {
                assert_eq!(
                    b.framed.next().await.unwrap().unwrap(),
                    format!("{}: a{i}", a.id)
                );
                assert_eq!(
                    a.framed.next().await.unwrap().unwrap(),
                    format!("{}: b{i}", b.id)
                );
            }
            // c leaves; d joins; a talks; b and d get everything.
            drop(c);
            // wait until the server has dropped c
            while peers.lock().await.len() != 2 {
                strata::rt::time::sleep(Duration::from_millis(5)).await;
            }
            let mut d = join(addr).await;
            for i in 0..200 {
                a.framed.send(format!("x{i}")).await.unwrap();
            }
            for i in 0..200 {
                assert_eq!(
                    b.framed.next().await.unwrap().unwrap(),
                    format!("{}: x{i}", a.id)
                );
                assert_eq!(
                    d.framed.next().await.unwrap().unwrap(),
                    format!("{}: x{i}", a.id)
                );
            }
            // Nothing extra arrives at b.
            assert!(
                timeout(Duration::from_millis(100), b.framed.next())
                    .await
                    .is_err()
            );
        })
        .await;
        assert!(r.is_ok(), "chat test hung");
    });
}
