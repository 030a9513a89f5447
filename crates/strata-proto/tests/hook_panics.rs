//! A panic in each piece of user code `TcpServer` calls, not only in a
//! handler's future: the codec (`codec()`, `decode`, `decode_eof`,
//! `encode`), the protocol's `decode_error` and `service_error`, a
//! synchronous panic in `Service::call`, a request, response or service
//! whose `Drop` panics, and `on_listening`. For each: the connection that
//! hit it ends, the other connections (on the same worker and the other
//! one, with requests in flight across the panic) get every answer, a new
//! connection is served, the count of connections returns to zero, the
//! graceful shutdown completes in time, and no descriptor is left open.
//!
//! Each test runs in a child process of its own: descriptors are counted
//! process-wide, and an abort (a panic while panicking) must show as a
//! failed test, not take the others down.
#![cfg(target_os = "linux")]

mod support;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use strata_codec::{Decoder, Encoder, LinesCodec, LinesCodecError};
use strata_proto::TcpServer;
use strata_proto::pipeline::{ErrorAction, ServerProto};
use strata_service::{BoxError, ConnectionInfo, Service, new_service_fn};
use support::event_gate::Gate;
use support::{Client, child, eventually};

#[path = "../../strata-rt/tests/support/quiet.rs"]
#[allow(unreachable_pub)]
mod quiet;
use quiet::quiet;

#[path = "../../strata-rt/tests/support/fds.rs"]
#[allow(dead_code, unreachable_pub)]
mod fds;

/// Which piece of user code panics (on the victim's trigger only).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Hook {
    Codec,
    Decode,
    DecodeEof,
    Encode,
    DecodeError,
    ServiceError,
    CallSync,
    RequestDrop,
    ResponseDrop,
    ServiceDrop,
}

/// A request; `Drop` panics for the text `reqdrop`.
struct Req(String);

impl Drop for Req {
    fn drop(&mut self) {
        if self.0 == "reqdrop" && !std::thread::panicking() {
            panic!("test: a request's Drop panicked");
        }
    }
}

/// A response; `Drop` panics for the text `respdrop`.
struct Resp(String);

impl Drop for Resp {
    fn drop(&mut self) {
        if self.0 == "respdrop" && !std::thread::panicking() {
            panic!("test: a response's Drop panicked");
        }
    }
}

/// Lines (at most 64 bytes); `decode` panics on the line `decode`,
/// `decode_eof` on an unterminated `eof` at the end of the stream, and
/// `encode` on the response `encode`.
struct Codec(LinesCodec);

impl Decoder for Codec {
    type Item = Req;
    type Error = LinesCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Req>, LinesCodecError> {
        let line = self.0.decode(src)?;
        if line.as_deref() == Some("decode") {
            panic!("test: decode panicked");
        }
        Ok(line.map(Req))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Req>, LinesCodecError> {
        if &src[..] == b"eof" {
            panic!("test: decode_eof panicked");
        }
        Ok(self.0.decode_eof(src)?.map(Req))
    }
}

impl Encoder<Resp> for Codec {
    type Error = LinesCodecError;

    fn encode(&mut self, item: Resp, dst: &mut BytesMut) -> Result<(), LinesCodecError> {
        if item.0 == "encode" {
            panic!("test: encode panicked");
        }
        self.0.encode(item.0.as_str(), dst)
    }
}

struct Proto {
    hook: Hook,
}

/// `codec()` panics once this is set (and clears it).
static ARM_CODEC: AtomicBool = AtomicBool::new(false);

impl ServerProto for Proto {
    type Request = Req;
    type Response = Resp;
    type Codec = Codec;

    fn codec(&self) -> Codec {
        if self.hook == Hook::Codec && ARM_CODEC.swap(false, Ordering::SeqCst) {
            panic!("test: codec() panicked");
        }
        Codec(LinesCodec::with_max_length(64))
    }

    fn decode_error(&self, err: &LinesCodecError) -> Option<Resp> {
        if self.hook == Hook::DecodeError {
            panic!("test: decode_error panicked");
        }
        Some(Resp(format!("error: {err}")))
    }

    fn service_error(&self, err: &BoxError) -> ErrorAction<Resp> {
        if self.hook == Hook::ServiceError && err.to_string() == "service_error" {
            panic!("test: service_error panicked");
        }
        ErrorAction::Respond(Resp(format!("failed: {err}")))
    }
}

/// `echo X` answers X, `gate X` answers X once the gate opens, `fail X`
/// fails with X, `callpanic` panics in `call` itself (before a future
/// exists), anything else is echoed. Its `Drop` panics if `drop_panics`.
struct Svc {
    gate: Arc<Gate>,
    drop_panics: bool,
}

impl Drop for Svc {
    fn drop(&mut self) {
        if self.drop_panics && !std::thread::panicking() {
            panic!("test: a service's Drop panicked");
        }
    }
}

impl Service<Req> for Svc {
    type Response = Resp;
    type Error = io::Error;

    fn call(&self, req: Req) -> impl Future<Output = Result<Resp, io::Error>> {
        if req.0 == "callpanic" {
            panic!("test: call panicked before returning a future");
        }
        let gate = self.gate.clone();
        async move {
            let text = req.0.clone();
            let (verb, rest) = text.split_once(' ').unwrap_or((&text, ""));
            match verb {
                "echo" => Ok(Resp(rest.to_string())),
                "gate" => {
                    gate.wait().await;
                    Ok(Resp(rest.to_string()))
                }
                "fail" => Err(io::Error::other(rest.to_string())),
                "bomb" => {
                    // Panics whenever dropped unfinished, also while the
                    // thread unwinds from another panic.
                    let _bomb = Bomb;
                    std::future::pending::<()>().await;
                    unreachable!()
                }
                _ => Ok(Resp(text.clone())),
            }
        }
    }
}

/// Panics when dropped, whatever the thread is doing.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("test: an unfinished request's future panicked when dropped");
    }
}

/// Reads lines until the end of the stream (or a reset).
fn rest(c: &mut Client) -> Vec<String> {
    let mut got = Vec::new();
    while let Some(l) = c.recv() {
        got.push(l);
    }
    got
}

/// Runs one scenario: bystanders with a request in flight, the victim's
/// `lines` (then, if `half_close`, its write side shut), then the checks
/// of the module docs. Returns what the victim received.
fn scenario(hook: Hook, lines: &[&str], tail: &[u8], half_close: bool) -> Vec<String> {
    quiet();
    let before = fds::open_fds();
    let gate = Arc::new(Gate::default());
    let proto = Proto { hook };
    // The victim is the 5th connection (after 4 bystanders).
    let made = Arc::new(AtomicUsize::new(0));
    let (g, m) = (gate.clone(), made.clone());
    let factory = new_service_fn(move |_: &ConnectionInfo| {
        let n = m.fetch_add(1, Ordering::SeqCst);
        Ok::<_, io::Error>(Svc {
            gate: g.clone(),
            drop_panics: hook == Hook::ServiceDrop && n == 4,
        })
    });
    let server = TcpServer::new(proto, "127.0.0.1:0".parse().unwrap())
        .threads(2)
        .shutdown_timeout(Duration::from_secs(20))
        .start(factory)
        .expect("server starts");
    let addr: SocketAddr = server.local_addr();
    let mut bystanders: Vec<Client> = (0..4).map(|_| Client::connect(addr)).collect();
    for (i, b) in bystanders.iter_mut().enumerate() {
        assert_eq!(
            b.round_trip(&format!("echo hi{i}")).as_deref(),
            Some(&*format!("hi{i}"))
        );
        b.send(&[&format!("gate b{i}")]);
    }
    eventually(20, "four bystanders served", || {
        made.load(Ordering::SeqCst) == 4
    });
    // `codec()` panics for the next connection: the victim's.
    if hook == Hook::Codec {
        ARM_CODEC.store(true, Ordering::SeqCst);
    }
    let mut victim = Client::connect(addr);
    victim.send(lines);
    if !tail.is_empty() {
        use std::io::Write;
        victim.writer.write_all(tail).unwrap();
    }
    if half_close {
        victim.writer.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let got = rest(&mut victim);
    drop(victim);
    // A newcomer is served, the bystanders get their answers.
    let mut newcomer = Client::connect(addr);
    assert_eq!(newcomer.round_trip("echo new").as_deref(), Some("new"));
    gate.open();
    for (i, b) in bystanders.iter_mut().enumerate() {
        assert_eq!(
            b.recv().as_deref(),
            Some(&*format!("b{i}")),
            "bystander {i}"
        );
        assert_eq!(b.round_trip("echo again").as_deref(), Some("again"));
    }
    drop(bystanders);
    drop(newcomer);
    eventually(20, "no connection left", || server.connections() == 0);
    assert!(server.shutdown(), "the graceful shutdown did not complete");
    // The runtime is gone: every descriptor it and the connections held
    // is closed.
    eventually(20, "no descriptor left open", || fds::open_fds() == before);
    println!("victim of {hook:?} got {got:?}");
    got
}

macro_rules! hook_test {
    ($(#[$m:meta])* $name:ident, $body:expr) => {
        $(#[$m])*
        #[test]
        fn $name() {
            if !child::is_child() {
                return child::passes(stringify!($name));
            }
            $body
        }
    };
}

hook_test!(a_panicking_codec_factory_ends_only_its_connection, {
    let got = scenario(Hook::Codec, &["echo a"], b"", false);
    assert!(got.is_empty(), "{got:?}");
});

hook_test!(a_panicking_decode_ends_only_its_connection, {
    let got = scenario(Hook::Decode, &["echo a", "decode", "echo z"], b"", false);
    assert!(!got.contains(&"z".to_string()), "{got:?}");
});

hook_test!(a_panicking_decode_eof_ends_only_its_connection, {
    let got = scenario(Hook::DecodeEof, &["echo a"], b"eof", true);
    assert!(got.len() <= 1, "{got:?}");
});

hook_test!(a_panicking_encode_ends_only_its_connection, {
    let got = scenario(
        Hook::Encode,
        &["echo a", "echo encode", "echo z"],
        b"",
        false,
    );
    assert!(!got.contains(&"z".to_string()), "{got:?}");
});

hook_test!(a_panicking_decode_error_ends_only_its_connection, {
    let long = "x".repeat(100);
    let got = scenario(Hook::DecodeError, &["echo a", &long, "echo z"], b"", false);
    assert!(!got.contains(&"z".to_string()), "{got:?}");
});

hook_test!(a_panicking_service_error_ends_only_its_connection, {
    let got = scenario(
        Hook::ServiceError,
        &["echo a", "fail service_error", "echo z"],
        b"",
        false,
    );
    assert!(!got.contains(&"z".to_string()), "{got:?}");
});

hook_test!(
    a_call_panicking_before_its_future_ends_only_its_connection,
    {
        let got = scenario(
            Hook::CallSync,
            &["echo a", "callpanic", "echo z"],
            b"",
            false,
        );
        assert_eq!(got, ["a"]);
    }
);

hook_test!(a_request_whose_drop_panics_ends_only_its_connection, {
    let got = scenario(
        Hook::RequestDrop,
        &["echo a", "reqdrop", "echo z"],
        b"",
        false,
    );
    assert_eq!(got, ["a"]);
});

hook_test!(a_response_whose_drop_panics_ends_only_its_connection, {
    let got = scenario(
        Hook::ResponseDrop,
        &["echo a", "respdrop", "echo z"],
        b"",
        false,
    );
    assert!(!got.contains(&"z".to_string()), "{got:?}");
});

hook_test!(a_service_whose_drop_panics_ends_only_its_connection, {
    let got = scenario(Hook::ServiceDrop, &["echo a", "echo b"], b"", true);
    assert_eq!(got, ["a", "b"]);
});

hook_test!(
    /// A panic in the protocol's own code gets the answers before it out,
    /// as a handler's panic, a response the codec refuses or a bad line
    /// do. (It once ended the connection at once: the answers already
    /// encoded into the write buffer, for requests the service had run,
    /// were never sent.)
a_panicking_hook_still_gets_the_answers_before_it_out, {
    let long = "x".repeat(100);
    let cases: [(Hook, &str); 5] = [
        (Hook::Decode, "decode"),
        (Hook::Encode, "echo encode"),
        (Hook::DecodeError, &long),
        (Hook::ServiceError, "fail service_error"),
        (Hook::ResponseDrop, "respdrop"),
    ];
    let mut lost = Vec::new();
    for (hook, trigger) in cases {
        let got = scenario(hook, &["echo a", trigger], b"", false);
        if got.first().map(String::as_str) != Some("a") {
            lost.push(format!("{hook:?}: got {got:?}"));
        }
    }
    assert!(
        lost.is_empty(),
        "the answer before the panic was lost: {lost:?}"
    );
});

hook_test!(
    /// `on_listening` panicking in `start`: the panic reaches the caller, and
    /// the server it had started is stopped (its port refuses connections,
    /// its descriptors are closed).
a_panicking_on_listening_in_start_leaves_no_server_behind, {
    quiet();
    let before = fds::open_fds();
    let bound = Arc::new(std::sync::Mutex::new(None));
    let b = bound.clone();
    let r = std::panic::catch_unwind(move || {
        TcpServer::new(Proto { hook: Hook::Decode }, "127.0.0.1:0".parse().unwrap())
            .threads(2)
            .on_listening(move |addr| {
                *b.lock().unwrap() = Some(addr);
                panic!("test: on_listening panicked");
            })
            .start(new_service_fn(|_: &ConnectionInfo| {
                Ok::<_, io::Error>(Svc {
                    gate: Arc::new(Gate::default()),
                    drop_panics: false,
                })
            }))
    });
    assert!(r.is_err(), "the panic reaches the caller");
    let addr = bound.lock().unwrap().expect("on_listening was called");
    let refused = std::net::TcpStream::connect(addr);
    assert!(refused.is_err(), "the server still listens");
    eventually(20, "no descriptor left open", || fds::open_fds() == before);
});

hook_test!(
    /// The same in `serve`, after its signal handlers were installed.
a_panicking_on_listening_in_serve_leaves_no_server_behind, {
    quiet();
    // The signal machinery's own descriptors live as long as the process.
    let rt = strata_rt::Runtime::builder().worker_threads(1).build().unwrap();
    rt.block_on(async {
        drop(strata_rt::signal::Signal::new(strata_rt::signal::SignalKind::interrupt()).unwrap());
        drop(strata_rt::signal::Signal::new(strata_rt::signal::SignalKind::terminate()).unwrap());
    });
    drop(rt);
    let before = fds::open_fds();
    let bound = Arc::new(std::sync::Mutex::new(None));
    let b = bound.clone();
    let r = std::panic::catch_unwind(move || {
        TcpServer::new(Proto { hook: Hook::Decode }, "127.0.0.1:0".parse().unwrap())
            .threads(2)
            .on_listening(move |addr| {
                *b.lock().unwrap() = Some(addr);
                panic!("test: on_listening panicked");
            })
            .serve(new_service_fn(|_: &ConnectionInfo| {
                Ok::<_, io::Error>(Svc {
                    gate: Arc::new(Gate::default()),
                    drop_panics: false,
                })
            }))
    });
    assert!(r.is_err(), "the panic reaches the caller");
    let addr = bound.lock().unwrap().expect("on_listening was called");
    let refused = std::net::TcpStream::connect(addr);
    assert!(refused.is_err(), "the server still listens");
    eventually(20, "no descriptor left open", || fds::open_fds() == before);
});

hook_test!(
    /// A decode panic while a request is in flight whose future panics
    /// when dropped: the connection unwinds, dropping that future in the
    /// middle of the unwinding. A second panic escaping there would abort
    /// the process; the dispatcher's guard must contain it.
    a_drop_panic_of_a_request_dropped_by_a_hook_panic_does_not_abort,
    {
        let got = scenario(Hook::Decode, &["bomb", "decode"], b"", false);
        assert!(got.is_empty(), "{got:?}");
    }
);

/// A subscriber that formats every field of every event, as any log
/// subscriber does (tracing-subscriber's fmt layer, say).
struct Formats;

impl tracing::Subscriber for Formats {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Line(String);
        impl tracing::field::Visit for Line {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0 += &format!(" {}={v:?}", f.name());
            }
        }
        let mut line = Line(String::new());
        event.record(&mut line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// An error whose `Display` panics (a bug in an error type's formatting).
#[derive(Debug)]
struct BadDisplay;

impl std::fmt::Display for BadDisplay {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("test: an error's Display panicked")
    }
}

impl std::error::Error for BadDisplay {}

hook_test!(
    /// The factory refuses one connection with an error whose `Display`
    /// panics: that connection fails, and the worker accepts on. (The
    /// error was once put into words for the log outside the guard around
    /// the factory: the panic ended the worker's accept loop, and with it
    /// its listener, so that every later client of that worker was
    /// refused.)
    a_factory_error_whose_display_panics_fails_only_its_connection,
    {
        quiet();
        tracing::subscriber::set_global_default(Formats).unwrap();
        let made = Arc::new(AtomicUsize::new(0));
        let m = made.clone();
        let factory = new_service_fn(move |_: &ConnectionInfo| {
            if m.fetch_add(1, Ordering::SeqCst) == 1 {
                return Err(io::Error::other(BadDisplay));
            }
            Ok(Svc {
                gate: Arc::new(Gate::default()),
                drop_panics: false,
            })
        });
        let server = TcpServer::new(Proto { hook: Hook::Decode }, "127.0.0.1:0".parse().unwrap())
            .threads(1)
            .start(factory)
            .unwrap();
        let addr = server.local_addr();
        let mut first = Client::connect(addr);
        assert_eq!(first.round_trip("echo one").as_deref(), Some("one"));
        let mut refused = Client::connect(addr);
        assert_eq!(refused.round_trip("echo two"), None);
        // Later clients are served (a few: one may have reached the
        // kernel's backlog just before the listener closed).
        for i in 0..3 {
            let s = std::net::TcpStream::connect(addr);
            let s = s.unwrap_or_else(|e| panic!("client {i} after the refusal: {e}"));
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut c = Client {
                writer: s.try_clone().unwrap(),
                reader: std::io::BufReader::new(s),
            };
            assert_eq!(c.round_trip("echo three").as_deref(), Some("three"), "client {i}");
        }
        drop((first, refused));
        eventually(20, "no connection left", || server.connections() == 0);
        assert!(server.shutdown());
    }
);
