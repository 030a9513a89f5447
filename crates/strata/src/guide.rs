//! A guided tour: the line server of the classic example, built layer by
//! layer, then hardened with middleware, and a client to talk to it; last,
//! what a tokio user needs to know.
//!
//! The protocol: newline-delimited requests; `hello` answers `world`,
//! anything else answers `idk`. Each step below adds one layer.
//!
//! # 1. Bytes to frames: a codec
//!
//! A codec turns a byte stream into frames and back. Lines are common
//! enough that strata ships a codec for them: [`LinesCodec`] splits on
//! `\n` (and `\r\n`), checks UTF-8, and bounds the line length so a peer
//! cannot make the server buffer without limit.
//!
//! ```
//! use strata::codec::{Decoder, LinesCodec};
//! use strata::bytes::BytesMut;
//!
//! let mut codec = LinesCodec::new();
//! let mut buf = BytesMut::from("hello\r\nwho?\n");
//! assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("hello"));
//! assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("who?"));
//! assert_eq!(codec.decode(&mut buf).unwrap(), None); // needs more bytes
//! ```
//!
//! [`Framed`](crate::codec::Framed) runs a codec over any socket, as a
//! `Stream` of frames and a `Sink` of responses. A protocol of your own
//! implements [`Decoder`](crate::codec::Decoder) (whose docs give the
//! contract: what to return for a partial frame, an empty buffer, the end
//! of the stream) and [`Encoder`](crate::codec::Encoder). The repository's
//! `crates/strata-proto/tests/resp/` does so for a binary protocol, a
//! subset of Redis's RESP, through every step below, and
//! `crates/strata-proto/tests/http/` for a subset of HTTP/1.1 (parsed
//! with `httparse`; keep-alive, `Connection: close`, bodies).
//!
//! # 2. Frames to requests: a protocol
//!
//! A protocol says what a request and a response are, which codec carries
//! them, and what to do with bad input. Line protocols are *pipelined*: a
//! client may send many requests before reading any answer, and answers go
//! back in request order.
//!
//! ```
//! use strata::codec::{LinesCodec, LinesCodecError};
//! use strata::proto::pipeline::{ErrorAction, ServerProto};
//! use strata::service::BoxError;
//!
//! struct LineProto;
//!
//! impl ServerProto for LineProto {
//!     type Request = String;
//!     type Response = String;
//!     type Codec = LinesCodec;
//!
//!     fn codec(&self) -> LinesCodec {
//!         LinesCodec::new() // at most 8 KiB per line
//!     }
//!
//!     // A line that is too long or not UTF-8 gets one error line, then
//!     // the connection closes.
//!     fn decode_error(&self, err: &LinesCodecError) -> Option<String> {
//!         Some(format!("error: {err}"))
//!     }
//!
//!     // A request the service fails (step 5: too busy, too slow) gets an
//!     // error line in its place, and the connection carries on. Without
//!     // this method the connection closes instead, after the answers
//!     // before the failed request, and the client is told nothing. (An
//!     // error's text may hold line breaks, which the codec refuses to
//!     // send: the answer must stay one line.)
//!     fn service_error(&self, err: &BoxError) -> ErrorAction<String> {
//!         ErrorAction::Respond(format!("error: {err}").replace(['\r', '\n'], " "))
//!     }
//! }
//! ```
//!
//! (A protocol with a "quit" ends the connection after its answer with
//! [`last_request`](crate::proto::pipeline::ServerProto::last_request),
//! which reads nothing after the request, or
//! [`closes_after`](crate::proto::pipeline::ServerProto::closes_after),
//! which judges the response.)
//!
//! # 3. Requests to responses: a service
//!
//! A service is what you accept, what you return, how you can fail, and a
//! function with the logic:
//!
//! ```
//! use strata::service::{Service, service_fn};
//!
//! let hello = service_fn(|line: String| async move {
//!     Ok::<_, std::io::Error>(if line == "hello" { "world" } else { "idk" }.to_string())
//! });
//! // `strata::run` starts a runtime and runs a future to completion on it.
//! strata::run(async {
//!     assert_eq!(hello.call("hello".into()).await.unwrap(), "world");
//! });
//! ```
//!
//! # 4. Serving it
//!
//! [`TcpServer`](crate::proto::TcpServer) runs a protocol and a service on
//! a thread-per-core runtime: one worker per core, each with its own
//! listener, connections bounded in number (10,000 by default), in
//! requests in flight, in idle time, in time to send a request and in time
//! to take an answer (see [`ConnectionConfig`](crate::proto::ConnectionConfig)).
//! `serve` returns after Ctrl-C
//! or SIGTERM, once the requests already received are answered; it
//! returns an error if it had to drop connections instead (the shutdown
//! timeout passed, or a second signal asked it to stop at once).
//!
//! ```no_run
//! # use strata::codec::LinesCodec;
//! # use strata::proto::pipeline::ServerProto;
//! # struct LineProto;
//! # impl ServerProto for LineProto {
//! #     type Request = String;
//! #     type Response = String;
//! #     type Codec = LinesCodec;
//! #     fn codec(&self) -> LinesCodec { LinesCodec::new() }
//! # }
//! use strata::prelude::*;
//!
//! let hello = service_fn(|line: String| async move {
//!     Ok::<_, std::io::Error>(if line == "hello" { "world" } else { "idk" }.to_string())
//! });
//! TcpServer::new(LineProto, "127.0.0.1:12345".parse().unwrap())
//!     .max_connections(10_000)
//!     .serve(move || Ok(hello.clone()))
//!     .unwrap();
//! ```
//!
//! Then `nc localhost 12345`. The finished program, with command-line
//! options and logging, is `protocols/line` in the repository
//! (`cargo run --release --bin line-server`).
//!
//! Two hooks tell the program about its connections:
//! [`on_connection_end`](crate::proto::TcpServer::on_connection_end)
//! hears how each one ended (its peer, how long it lasted, `Ok` or the
//! timeout, bad input or failure that ended it), and a protocol's
//! [`last_response`](crate::proto::pipeline::ServerProto::last_response)
//! may mark the answer after which a connection closes (HTTP's
//! `Connection: close` after a graceful stop).
//!
//! # 5. Hardening it: middleware
//!
//! Middleware wraps a service in another service. The first layer added to
//! a [`ServiceBuilder`](crate::service::ServiceBuilder) is the outermost:
//! here the load shedder first refuses a request at once when the pool
//! has no permit left, then the request is bounded in time, then it takes
//! a permit from the concurrency limit (the same pool).
//!
//! ```
//! use std::time::Duration;
//! use strata::service::limit::PermitPool;
//! use strata::service::load_shed::Overloaded;
//! use strata::service::timeout::Elapsed;
//! use strata::service::{Service, ServiceBuilder, service_fn};
//!
//! #[derive(Debug)]
//! enum Error {
//!     Busy,
//!     TooSlow,
//! }
//! // A server needs errors it can report (`Into<BoxError>`).
//! impl std::fmt::Display for Error {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         f.write_str(match self {
//!             Error::Busy => "busy, try again",
//!             Error::TooSlow => "took too long",
//!         })
//!     }
//! }
//! impl std::error::Error for Error {}
//! impl From<Overloaded> for Error {
//!     fn from(_: Overloaded) -> Self {
//!         Error::Busy
//!     }
//! }
//! impl From<Elapsed> for Error {
//!     fn from(_: Elapsed) -> Self {
//!         Error::TooSlow
//!     }
//! }
//!
//! let pool = PermitPool::new(100);
//! let svc = ServiceBuilder::new()
//!     .load_shed(pool.clone())
//!     .timeout(Duration::from_secs(1))
//!     .concurrency_limit_shared(pool)
//!     .service(service_fn(|line: String| async move {
//!         Ok::<_, Error>(if line == "hello" { "world" } else { "idk" }.to_string())
//!     }));
//! strata::run(async {
//!     assert_eq!(svc.call("hello".into()).await.unwrap(), "world");
//! });
//! # // What `TcpServer::serve` asks of a service's error:
//! # fn servable<S: Service<String>>(_: &S) where S::Error: Into<strata::service::BoxError> {}
//! # servable(&svc);
//! ```
//!
//! Each layer's failure is its own small error type, converted into the
//! service's error with `From`, so callers can match on what went wrong
//! (each also converts into `std::io::Error`, for a service that fails
//! with that; without the `From`, `call` is reported as a method whose
//! trait bounds are not satisfied). Mind the two `Elapsed` types: this
//! one, `service::timeout::Elapsed`, is the middleware's; the runtime's
//! `rt::time::Elapsed` is what `rt::time::timeout` returns. What the
//! client sees of a failure is the protocol's call: step 2's
//! `service_error` answers it with an error line. To serve the stack,
//! hand it to step 4's `serve` in place of `hello`
//! (`.serve(move || Ok(svc.clone()))`); the pool, created outside the
//! factory, is then shared by every connection.
//!
//! # 6. A client
//!
//! The same layers make a client: a [`TcpStream`](crate::rt::net::TcpStream)
//! in a [`Framed`](crate::codec::Framed), driven with the extension traits
//! in [`strata::io`](crate::io) (`feed` and `send` to write frames, `next`
//! to read them). Here against the server of step 4, started in the
//! background with `start` on a free port:
//!
//! ```
//! # use strata::proto::pipeline::ServerProto;
//! # struct LineProto;
//! # impl ServerProto for LineProto {
//! #     type Request = String;
//! #     type Response = String;
//! #     type Codec = strata::codec::LinesCodec;
//! #     fn codec(&self) -> Self::Codec { strata::codec::LinesCodec::new() }
//! # }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use strata::codec::LinesCodec;
//! use strata::io::{SinkExt, StreamExt};
//! use strata::prelude::*;
//!
//! // (In a `main` that returns `Result<(), Box<dyn std::error::Error>>`.)
//! let hello = service_fn(|line: String| async move {
//!     Ok::<_, std::io::Error>(if line == "hello" { "world" } else { "idk" }.to_string())
//! });
//! let server = TcpServer::new(LineProto, "127.0.0.1:0".parse()?)
//!     .threads(1)
//!     .start(move || Ok(hello.clone()))?;
//! let addr = server.local_addr();
//!
//! strata::run(async move {
//!     let mut conn = Framed::new(TcpStream::connect(addr).await?, LinesCodec::new());
//!     // Pipelined: `feed` only buffers, `send` buffers and flushes, so
//!     // both requests leave in one write; the answers come in order.
//!     conn.feed("hello").await?;
//!     conn.send("who?").await?;
//!     assert_eq!(conn.next().await.transpose()?.as_deref(), Some("world"));
//!     assert_eq!(conn.next().await.transpose()?.as_deref(), Some("idk"));
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! server.shutdown();
//! # Ok(())
//! # }
//! ```
//!
//! Calls from many tasks over one connection need their answers matched
//! to them; [`TcpClient`](crate::proto::TcpClient) does that. Its
//! connections are [`Service`](crate::service::Service)s, so middleware
//! wraps them as it wraps a server's service, here a timeout per call
//! (a call that times out leaves its answer to be read and dropped; the
//! calls behind it still get their own):
//!
//! ```
//! # use strata::proto::pipeline::ServerProto;
//! # struct LineProto;
//! # impl ServerProto for LineProto {
//! #     type Request = String;
//! #     type Response = String;
//! #     type Codec = strata::codec::LinesCodec;
//! #     fn codec(&self) -> Self::Codec { strata::codec::LinesCodec::new() }
//! # }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let hello = service_fn(|line: String| async move {
//! #     Ok::<_, std::io::Error>(if line == "hello" { "world" } else { "idk" }.to_string())
//! # });
//! # let server = TcpServer::new(LineProto, "127.0.0.1:0".parse()?)
//! #     .threads(1)
//! #     .start(move || Ok(hello.clone()))?;
//! # let addr = server.local_addr();
//! use std::time::Duration;
//! use strata::codec::LinesCodec;
//! use strata::prelude::*;
//! use strata::proto::pipeline::ClientProto;
//!
//! struct LineClient;
//!
//! impl ClientProto for LineClient {
//!     type Request = String;
//!     type Response = String;
//!     type Codec = LinesCodec;
//!     fn codec(&self) -> LinesCodec {
//!         LinesCodec::new()
//!     }
//! }
//!
//! strata::run(async move {
//!     let conn = TcpClient::new(LineClient).connect(addr).await?;
//!     let client = ServiceBuilder::new()
//!         .timeout(Duration::from_secs(5))
//!         .service(conn);
//!     let (a, b) = strata::future::join(
//!         client.call("hello".to_string()),
//!         client.call("who?".to_string()),
//!     )
//!     .await;
//!     assert_eq!((a?, b?), ("world".to_string(), "idk".to_string()));
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # server.shutdown();
//! # Ok(())
//! # }
//! ```
//!
//! A `TcpClient` connection does not reconnect.
//! [`TcpClient::pool`](crate::proto::TcpClient::pool) keeps several and
//! remakes those that end, with a backoff after a failed connect; each
//! call goes to the less loaded of two, so one held up by a slow answer
//! takes no more calls while another is free.
//!
//! # 7. Coming from tokio
//!
//! Most of a tokio program carries over name for name; what differs comes
//! from the runtime's model. strata runs one worker per core, each with
//! its own event loop, and **a task stays on the worker that spawned it**:
//! no worker steals another's tasks. So:
//!
//! * Spread work by where it starts: a task spawned from a task runs on
//!   that task's worker; one spawned from outside the workers goes to
//!   them in turn. `TcpServer` gives each worker a listener of its own
//!   (`SO_REUSEPORT`), so connections spread by themselves. A hand-written
//!   accept loop keeps every connection on its own worker unless it
//!   places them ([`Handle::spawn_on`](crate::rt::Handle::spawn_on)).
//! * Never block a worker. A blocked worker stalls its tasks, and the
//!   readiness of the sockets registered with it, so a timeout on another
//!   worker around a read of such a socket can expire with the data
//!   already there. Blocking work goes to
//!   [`spawn_blocking`](crate::spawn_blocking); from there,
//!   [`Handle::block_on`](crate::rt::Handle::block_on) waits for async
//!   work. `Runtime::block_on` panics on a worker, as tokio's does.
//! * A task need not be `Send` if spawned with
//!   [`spawn_local`](crate::spawn_local) from another task (no `LocalSet`
//!   needed; not from `strata::run`'s own future, which runs on the
//!   calling thread, not on a worker), and a
//!   [`Service`](crate::service::Service)'s futures need not be `Send`:
//!   per-connection state can live in `Rc<RefCell<..>>`.
//! * A `ServerHandle` dropped (or `shutdown`) in a task does not block its
//!   worker: the drain goes on on a thread of its own, which the process
//!   does not wait for at exit; `shutdown_async().await` waits for it and
//!   says whether every connection finished.
//!
//! Where the names differ:
//!
//! | tokio | strata |
//! | --- | --- |
//! | `#[tokio::main]`, `Runtime::new()?.block_on(..)` | [`strata::run(..)`](crate::run), `Runtime::new()?.block_on(..)` |
//! | `TcpListener::bind(a).await` | `TcpListener::bind(a)` (not async: a host name is looked up on the calling thread, so give a task a numeric address) |
//! | `stream.split()` | `(&stream, &stream)`: `&TcpStream` reads and writes |
//! | `tokio::io::copy`, `BufReader` | [`strata::io::copy`](crate::io::copy), [`strata::io::BufReader`](crate::io::BufReader) |
//! | `tokio::join!`, `tokio::select!` | [`strata::future::join`](crate::future::join), [`select`](crate::future::select) (functions, no macros) |
//! | `mpsc::Receiver::recv()` → `Option<T>` | [`recv()`](crate::rt::sync::mpsc::Receiver::recv) → `Result<T, RecvError>`, or `next()` → `Option<T>` |
//! | `sync::broadcast` | [`rt::sync::broadcast`](crate::rt::sync::broadcast) (full: waits, unless in overflow mode) |
//! | `sync::watch` | [`rt::sync::watch`](crate::rt::sync::watch) (one `Sender`, not `Clone`: share it in an `Arc`) |
//! | `sync::Notify` | [`rt::sync::Event`](crate::rt::sync::Event) (keeps no permit: listen, check, then wait) |
//! | `tokio::signal::ctrl_c()` | [`rt::signal::ctrl_c()`](crate::rt::signal::ctrl_c) |
//! | `tokio::task::yield_now` | [`rt::yield_now`](crate::rt::yield_now) |
//! | `LinesCodec::new_with_max_length` | [`LinesCodec::with_max_length`](crate::codec::LinesCodec::with_max_length) |
//! | `LengthDelimitedCodec::builder()..new_codec()` | `LengthDelimitedCodec::builder()..build()` |
//! | `tower::ServiceBuilder`, `tower::Service` | [`ServiceBuilder`](crate::service::ServiceBuilder), [`Service`](crate::service::Service) (`call(&self)`, no `poll_ready`) |
//!
//! [`LinesCodec`]: crate::codec::LinesCodec
