//! A second protocol from the facade alone: a key-value store over
//! `LengthDelimitedCodec` (and a text one over `LinesCodec`), with
//! middleware, served by `TcpServer`, and a client on the runtime's
//! `TcpStream` + `Framed`. Written by a newcomer's review from the docs
//! only (README, the guide, rustdoc); real TCP on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata::bytes::{Bytes, BytesMut};
use strata::codec::{LengthDelimitedCodec, LengthDelimitedCodecError, LinesCodec};
use strata::io::{SinkExt, StreamExt};
use strata::prelude::*;
use strata::proto::ServerHandle;
use strata::proto::pipeline::{ErrorAction, ServerProto};
use strata::service::BoxError;
use strata::service::limit::PermitPool;
use strata::service::load_shed::Overloaded;
use strata::service::timeout::Elapsed;

// ---------------------------------------------------------------- protocol

/// Frames: 4-byte big-endian length, then `GET k`, `SET k v`, `DEL k`,
/// `SLEEP ms` (to exercise the timeout).
struct KvProto;

impl ServerProto for KvProto {
    type Request = BytesMut;
    type Response = Bytes;
    type Codec = LengthDelimitedCodec;

    fn codec(&self) -> LengthDelimitedCodec {
        LengthDelimitedCodec::builder()
            .max_frame_length(1024)
            .build()
    }

    fn decode_error(&self, err: &LengthDelimitedCodecError) -> Option<Bytes> {
        Some(Bytes::from(format!("ERR {err}")))
    }

    fn service_error(&self, err: &BoxError) -> ErrorAction<Bytes> {
        ErrorAction::Respond(Bytes::from(format!("ERR {err}")))
    }
}

// ---------------------------------------------------------------- service

#[derive(Debug)]
enum KvError {
    Busy,
    TooSlow,
    Bad(String),
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvError::Busy => f.write_str("busy"),
            KvError::TooSlow => f.write_str("timeout"),
            KvError::Bad(m) => write!(f, "bad request: {m}"),
        }
    }
}
impl std::error::Error for KvError {}
impl From<Overloaded> for KvError {
    fn from(_: Overloaded) -> Self {
        KvError::Busy
    }
}
impl From<Elapsed> for KvError {
    fn from(_: Elapsed) -> Self {
        KvError::TooSlow
    }
}

type Store = Arc<Mutex<HashMap<String, Bytes>>>;

async fn handle(store: Store, req: BytesMut) -> Result<Bytes, KvError> {
    let text = std::str::from_utf8(&req).map_err(|_| KvError::Bad("not UTF-8".into()))?;
    let mut parts = text.splitn(3, ' ');
    let cmd = parts.next().unwrap_or("");
    let key = parts.next();
    let val = parts.next();
    match (cmd, key, val) {
        ("GET", Some(k), None) => Ok(match store.lock().unwrap().get(k) {
            Some(v) => {
                let mut out = BytesMut::from(&b"VALUE "[..]);
                out.extend_from_slice(v);
                out.freeze()
            }
            None => Bytes::from_static(b"NOT_FOUND"),
        }),
        ("SET", Some(k), Some(v)) => {
            store
                .lock()
                .unwrap()
                .insert(k.to_owned(), Bytes::copy_from_slice(v.as_bytes()));
            Ok(Bytes::from_static(b"OK"))
        }
        ("DEL", Some(k), None) => Ok(match store.lock().unwrap().remove(k) {
            Some(_) => Bytes::from_static(b"OK"),
            None => Bytes::from_static(b"NOT_FOUND"),
        }),
        ("SLEEP", Some(ms), None) => {
            let ms: u64 = ms.parse().map_err(|_| KvError::Bad("ms".into()))?;
            strata::rt::time::sleep(Duration::from_millis(ms)).await;
            Ok(Bytes::from_static(b"SLEPT"))
        }
        _ => Err(KvError::Bad(text.to_owned())),
    }
}

fn start_kv(timeout: Duration, pool: PermitPool) -> ServerHandle {
    let store: Store = Arc::default();
    TcpServer::new(KvProto, "127.0.0.1:0".parse().unwrap())
        .threads(2)
        .start(move || {
            let store = store.clone();
            Ok(ServiceBuilder::new()
                .load_shed(pool.clone())
                .timeout(timeout)
                .concurrency_limit_shared(pool.clone())
                .service(service_fn(move |req: BytesMut| handle(store.clone(), req))))
        })
        .expect("server starts")
}

// ---------------------------------------------------------------- client

struct Client {
    framed: Framed<TcpStream, LengthDelimitedCodec>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Client {
            framed: Framed::new(stream, LengthDelimitedCodec::new()),
        }
    }

    async fn call(&mut self, req: &str) -> String {
        self.framed
            .send(Bytes::copy_from_slice(req.as_bytes()))
            .await
            .expect("send");
        let frame = self
            .framed
            .next()
            .await
            .expect("an answer")
            .expect("decodes");
        String::from_utf8(frame.to_vec()).unwrap()
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn kv_get_set_del_over_length_delimited() {
    let server = start_kv(Duration::from_secs(5), PermitPool::new(64));
    let addr = server.local_addr();
    strata::run(async move {
        let mut c = Client::connect(addr).await;
        assert_eq!(c.call("GET a").await, "NOT_FOUND");
        assert_eq!(c.call("SET a hello world").await, "OK");
        assert_eq!(c.call("GET a").await, "VALUE hello world");
        // A second connection (maybe on the other worker) sees the store.
        let mut c2 = Client::connect(addr).await;
        assert_eq!(c2.call("GET a").await, "VALUE hello world");
        assert_eq!(c2.call("DEL a").await, "OK");
        assert_eq!(c.call("GET a").await, "NOT_FOUND");
        // A service error is answered, the connection carries on.
        assert_eq!(c.call("FROB").await, "ERR bad request: FROB");
        assert_eq!(c.call("GET a").await, "NOT_FOUND");
    });
    assert!(server.shutdown());
}

#[test]
fn kv_pipelined_answers_in_order() {
    let server = start_kv(Duration::from_secs(5), PermitPool::new(64));
    let addr = server.local_addr();
    strata::run(async move {
        let mut c = Client::connect(addr).await;
        // Feed many, flush once, as Framed's docs recommend.
        for i in 0..20 {
            c.framed
                .feed(Bytes::from(format!("SET k{i} v{i}")))
                .await
                .unwrap();
            c.framed
                .feed(Bytes::from(format!("GET k{i}")))
                .await
                .unwrap();
        }
        SinkExt::<Bytes>::flush(&mut c.framed).await.unwrap(); // `c.framed.flush()` does not infer (E0283)
        for i in 0..20 {
            assert_eq!(&c.framed.next().await.unwrap().unwrap()[..], b"OK");
            assert_eq!(
                &c.framed.next().await.unwrap().unwrap()[..],
                format!("VALUE v{i}").as_bytes()
            );
        }
    });
    assert!(server.shutdown());
}

#[test]
fn kv_timeout_answers_err_timeout() {
    let server = start_kv(Duration::from_millis(50), PermitPool::new(64));
    let addr = server.local_addr();
    strata::run(async move {
        let mut c = Client::connect(addr).await;
        assert_eq!(c.call("SLEEP 1000").await, "ERR timeout");
        assert_eq!(c.call("SLEEP 1").await, "SLEPT");
    });
    assert!(server.shutdown());
}

#[test]
fn kv_load_shed_when_pool_exhausted() {
    // One permit over the whole server: while one SLEEP holds it, a call
    // on another connection is refused at once.
    let server = start_kv(Duration::from_secs(5), PermitPool::new(1));
    let addr = server.local_addr();
    strata::run(async move {
        let mut slow = Client::connect(addr).await;
        slow.framed
            .send(Bytes::from_static(b"SLEEP 2000"))
            .await
            .unwrap();
        // Until the server has taken the SLEEP (and its permit).
        let mut c = Client::connect(addr).await;
        let mut answer = c.call("GET x").await;
        for _ in 0..50 {
            if answer == "ERR busy" {
                break;
            }
            assert_eq!(answer, "NOT_FOUND");
            strata::rt::time::sleep(Duration::from_millis(20)).await;
            answer = c.call("GET x").await;
        }
        assert_eq!(answer, "ERR busy");
        assert_eq!(&slow.framed.next().await.unwrap().unwrap()[..], b"SLEPT");
        assert_eq!(c.call("GET x").await, "NOT_FOUND");
    });
    assert!(server.shutdown());
}

#[test]
fn kv_oversized_frame_gets_error_then_close() {
    let server = start_kv(Duration::from_secs(5), PermitPool::new(64));
    let addr = server.local_addr();
    strata::run(async move {
        let mut c = Client::connect(addr).await;
        let big = vec![b'x'; 4096];
        c.framed.send(Bytes::from(big)).await.unwrap();
        let frame = c
            .framed
            .next()
            .await
            .expect("error frame")
            .expect("decodes");
        let text = String::from_utf8(frame.to_vec()).unwrap();
        println!("oversized frame answer: {text:?}");
        assert!(text.starts_with("ERR "), "{text}");
        assert!(c.framed.next().await.is_none(), "closed after the error");
    });
    assert!(server.shutdown());
}

// ------------------------------------------- a text KV on the lines codec

/// Raw line client: write `input`, half-close, read everything until EOF.
async fn line_exchange(addr: SocketAddr, input: &str) -> String {
    let mut framed = Framed::new(TcpStream::connect(addr).await.unwrap(), LinesCodec::new());
    for line in input.lines() {
        framed.feed(line).await.unwrap();
    }
    SinkExt::<&str>::flush(&mut framed).await.unwrap();
    framed
        .get_ref()
        .shutdown(std::net::Shutdown::Write)
        .unwrap();
    let mut out = String::new();
    while let Some(line) = framed.next().await {
        match line {
            Ok(l) => {
                out.push_str(&l);
                out.push('\n');
            }
            Err(e) => {
                out.push_str(&format!("<read error: {e}>\n"));
                break;
            }
        }
    }
    out
}

#[test]
fn text_kv_on_lines_with_service_error_respond() {
    struct TextKv;
    impl ServerProto for TextKv {
        type Request = String;
        type Response = String;
        type Codec = LinesCodec;
        fn codec(&self) -> LinesCodec {
            LinesCodec::new().max_length(64)
        }
        fn decode_error(&self, err: &strata::codec::LinesCodecError) -> Option<String> {
            Some(format!("ERR {err}"))
        }
        fn service_error(&self, err: &BoxError) -> ErrorAction<String> {
            ErrorAction::Respond(format!("ERR {err}"))
        }
    }
    let store: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let server = TcpServer::new(TextKv, "127.0.0.1:0".parse().unwrap())
        .threads(2)
        .start(move || {
            let store = store.clone();
            Ok(ServiceBuilder::new()
                .timeout(Duration::from_secs(1))
                .service(service_fn(move |line: String| {
                    let store = store.clone();
                    async move {
                        let mut it = line.splitn(3, ' ');
                        let r = match (it.next(), it.next(), it.next()) {
                            (Some("GET"), Some(k), None) => store
                                .lock()
                                .unwrap()
                                .get(k)
                                .map_or("NOT_FOUND".to_string(), |v| format!("VALUE {v}")),
                            (Some("SET"), Some(k), Some(v)) => {
                                store.lock().unwrap().insert(k.into(), v.into());
                                "OK".into()
                            }
                            _ => return Err(BoxError::from(format!("unknown: {line}"))),
                        };
                        Ok::<_, BoxError>(r)
                    }
                })))
        })
        .unwrap();
    let addr = server.local_addr();
    let long = "x".repeat(100);
    let got = strata::run(line_exchange(
        addr,
        &format!("SET a 1\nGET a\nNOPE\nGET b\n{long}\nGET a\n"),
    ));
    println!("text kv -> {got:?}");
    assert_eq!(
        got,
        "OK\nVALUE 1\nERR unknown: NOPE\nNOT_FOUND\nERR line too long: exceeds the limit of 64 bytes\n",
        "the over-long line ends the connection after one error line"
    );
    assert!(server.shutdown());
}

#[test]
fn bind_in_use_error_message() {
    let first = start_kv(Duration::from_secs(1), PermitPool::new(4));
    let err = TcpServer::new(KvProto, first.local_addr())
        .threads(1)
        .start(|| {
            Ok(service_fn(|_: BytesMut| async {
                Ok::<_, BoxError>(Bytes::new())
            }))
        })
        .unwrap_err();
    println!("second bind: kind={:?} msg={err}", err.kind());
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(
        err.to_string().contains(&first.local_addr().to_string()),
        "{err}"
    );
    assert!(first.shutdown());
}
