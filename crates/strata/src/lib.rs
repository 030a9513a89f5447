//! strata: a layered async networking stack, as one dependency.
//!
//! ```text
//!  application      your Service, middleware
//!  ───────────────────────────────────────────────────────────────────
//!  strata::proto    pipelined dispatch, TcpServer, TcpClient
//!  strata::service  Service, service_fn, Layer, ServiceBuilder, middleware
//!  strata::codec    Decoder / Encoder, Framed, LinesCodec, LengthDelimitedCodec
//!  strata::rt       thread-per-core runtime, reactor, net, time, signal, sync
//! ```
//!
//! Each layer is its own crate (`strata-rt`, `strata-codec`,
//! `strata-service`, `strata-proto`) and depends only on the layers drawn
//! below it (the protocol layer serves `Service`s, so it sits above the
//! service layer); this crate re-exports them under one name, with a [`prelude`]. New
//! here? Read the [`guide`]: the classic line server, layer by layer.
//!
//! # A line server, whole
//!
//! It serves until Ctrl-C, silently (no log is set up here; `nc localhost
//! 12345` and type `hello`). A line that is not UTF-8 or too long closes
//! the connection without a word: the guide's step 2 shows how to answer
//! it with an error line, as the repository's `line-server` does.
//!
//! ```no_run
//! use strata::prelude::*;
//! use strata::codec::LinesCodec;
//! use strata::proto::pipeline::ServerProto;
//!
//! struct LineProto;
//!
//! impl ServerProto for LineProto {
//!     type Request = String;
//!     type Response = String;
//!     type Codec = LinesCodec;
//!     fn codec(&self) -> LinesCodec {
//!         LinesCodec::new()
//!     }
//! }
//!
//! let hello = service_fn(|line: String| async move {
//!     Ok::<_, std::io::Error>(if line == "hello" { "world".to_string() } else { "idk".to_string() })
//! });
//! TcpServer::new(LineProto, "127.0.0.1:12345".parse().unwrap())
//!     .serve(move || Ok(hello.clone()))
//!     .unwrap();
//! ```

#![forbid(unsafe_code)]

pub mod guide;

/// The runtime: executor, reactor, sockets, timers, signals, sync.
pub mod rt {
    pub use strata_rt::*;
}

/// Codecs: bytes to frames and back.
pub mod codec {
    pub use strata_codec::*;
}

/// Services and middleware.
pub mod service {
    pub use strata_service::*;
}

/// Protocols and servers: frames to requests and responses.
pub mod proto {
    pub use strata_proto::*;
}

/// The runtime-agnostic I/O and stream traits strata's types implement,
/// and the extension traits (from `futures-util`) that give them `async`
/// methods: `read`/`write_all` on sockets, `next` on a
/// [`Framed`](crate::codec::Framed) stream of frames, `feed`/`send` on it
/// as a sink (see the [guide](crate::guide#6-a-client)).
///
/// Also the runtime-agnostic helpers a server or proxy reaches for:
/// [`copy`](crate::io::copy) (all of a reader into a writer), buffered
/// readers and writers ([`BufReader`](crate::io::BufReader), with
/// `lines()` through [`AsyncBufReadExt`](crate::io::AsyncBufReadExt)).
/// A socket's two directions are copied at once with
/// [`TcpStream::into_split`](crate::rt::net::TcpStream::into_split) and
/// [`future::join`].
pub mod io {
    pub use futures_core::Stream;
    pub use futures_io::{AsyncBufRead, AsyncRead, AsyncWrite};
    pub use futures_sink::Sink;
    pub use futures_util::io::{
        AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter, copy,
    };
    pub use futures_util::{SinkExt, StreamExt};
}

/// Combinators for futures (from `futures-util`): wait for two at once
/// ([`join`](crate::future::join), [`try_join`](crate::future::try_join)),
/// or for the first of two ([`select`](crate::future::select), which hands
/// back the other, unfinished, in an [`Either`](crate::future::Either)).
///
/// # Examples
///
/// ```
/// use strata::future::{Either, join, select};
///
/// strata::run(async {
///     let (a, b) = join(async { 1 }, async { 2 }).await;
///     assert_eq!(a + b, 3);
///
///     let quick = std::pin::pin!(async { "quick" });
///     let slow = std::pin::pin!(strata::rt::time::sleep(std::time::Duration::from_secs(60)));
///     match select(quick, slow).await {
///         Either::Left((won, _slow)) => assert_eq!(won, "quick"),
///         Either::Right(_) => unreachable!(),
///     }
/// });
/// ```
pub mod future {
    pub use futures_util::future::{Either, FutureExt, join, select, try_join};
}

pub use bytes;
pub use strata_rt::{JoinHandle, Runtime, run, spawn, spawn_blocking, spawn_local};

/// The names most programs need, for `use strata::prelude::*`.
pub mod prelude {
    pub use strata_codec::{Decoder, Encoder, Framed};
    pub use strata_proto::{ConnectionConfig, TcpClient, TcpServer};
    pub use strata_rt::net::{TcpListener, TcpStream, UdpSocket};
    pub use strata_rt::{Runtime, spawn, spawn_blocking, spawn_local};
    pub use strata_service::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
    // The stream and sink extension traits, for their methods (`as _`:
    // their names stay free). Not the I/O ones: `Vec<u8>` and `&[u8]`
    // implement both std's and the async I/O traits, so `write_all` or
    // `read_exact` on them would become ambiguous in sync code; import
    // `strata::io::{AsyncReadExt, AsyncWriteExt}` where needed.
    pub use futures_util::{SinkExt as _, StreamExt as _};
}
