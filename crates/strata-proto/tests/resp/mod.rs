//! A second protocol on strata: a subset of Redis's RESP2.
//!
//! Requests are arrays of bulk strings (`*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n`);
//! replies are simple strings, errors, integers, bulk strings and the null
//! bulk string. Commands: PING [msg], ECHO msg, GET k, SET k v, DEL k...,
//! INCR k, QUIT (`+OK`, then the connection closes). As in Redis, a
//! command the server does not know (or with the wrong number of
//! arguments) is answered with an error reply and the connection carries
//! on; bytes that are not RESP (a protocol error) get one `-ERR Protocol
//! error: ...` reply, then the connection closes.
//!
//! The pieces, one per strata layer:
//!
//! - [`RespCodec`]: a `Decoder` of requests (partial frames across reads,
//!   bounds on bulk length, array length and header lines, checked before
//!   a byte of the body is buffered; no `reserve` on a peer's word) and an
//!   `Encoder` of replies (all or nothing);
//! - [`RespProto`]: the `ServerProto` (pipelined);
//! - [`Store`]: the service, one map shared by every connection;
//! - [`start`]: a `TcpServer` on 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use strata_codec::{Decoder, Encoder};
use strata_proto::pipeline::{ErrorAction, ServerProto};
use strata_proto::{ConnectionConfig, ServerHandle, TcpServer};
use strata_service::{BoxError, Service};

// ------------------------------------------------------------------ frames

/// A request: the command's name and arguments, as sent.
pub type Command = Vec<Bytes>;

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK\r\n`
    Simple(String),
    /// `-ERR ...\r\n`
    Error(String),
    /// `:42\r\n`
    Integer(i64),
    /// `$5\r\nhello\r\n`
    Bulk(Bytes),
    /// `$-1\r\n`
    Null,
    /// The answer to QUIT: `+OK\r\n`, and the connection's last
    /// ([`RespProto`]'s `closes_after`).
    Goodbye,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }
    pub fn err(msg: impl Into<String>) -> Reply {
        Reply::Error(msg.into())
    }
}

// ------------------------------------------------------------------ errors

/// What can go wrong decoding or encoding RESP.
#[derive(Debug)]
pub enum RespError {
    /// The transport failed, or (from the default `decode_eof`) the stream
    /// ended inside a request. `Decoder::Error` must be `From<io::Error>`.
    Io(io::Error),
    /// The bytes are not RESP: the message Redis would give.
    Protocol(String),
    /// A bulk string declared longer than the bound (before its bytes came).
    BulkTooLong { declared: i64, max: usize },
    /// An array declared with more elements than the bound.
    ArrayTooLong { declared: i64, max: usize },
    /// A reply that cannot be put on the wire (a line break in a simple
    /// string or an error).
    Unencodable(&'static str),
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Io(e) => write!(f, "{e}"),
            RespError::Protocol(m) => write!(f, "Protocol error: {m}"),
            RespError::BulkTooLong { .. } => f.write_str("Protocol error: invalid bulk length"),
            RespError::ArrayTooLong { .. } => {
                f.write_str("Protocol error: invalid multibulk length")
            }
            RespError::Unencodable(what) => write!(f, "cannot encode reply: {what}"),
        }
    }
}

impl std::error::Error for RespError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RespError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for RespError {
    fn from(e: io::Error) -> Self {
        RespError::Io(e)
    }
}

// ------------------------------------------------------------------ codec

/// Redis's own limits are 512 MB per bulk string and 1M..2^31 elements;
/// a test server uses small ones.
pub const DEFAULT_MAX_BULK: usize = 64 * 1024;
pub const DEFAULT_MAX_ARRAY: usize = 1024;
/// A header line (`*123\r\n`, `$456\r\n`) longer than this is garbage.
const MAX_HEADER: usize = 32;

/// RESP requests in, replies out.
#[derive(Debug, Clone)]
pub struct RespCodec {
    max_bulk: usize,
    max_array: usize,
    /// Bytes the request at the front of the buffer needs at least (from
    /// the last call): until that many are buffered, `decode` does not
    /// parse again. 0: unknown.
    need: usize,
    /// Calls of `decode`, for the tests.
    pub decode_calls: usize,
}

impl Default for RespCodec {
    fn default() -> Self {
        RespCodec::new(DEFAULT_MAX_BULK, DEFAULT_MAX_ARRAY)
    }
}

/// Where a request's arguments are in the buffer: `start..end` each.
type Spans = Vec<(usize, usize)>;

/// How a parse of the buffer's front ended.
enum Parse<T> {
    Done(T, usize),
    /// Needs at least this many bytes in all.
    Need(usize),
}

impl RespCodec {
    pub fn new(max_bulk: usize, max_array: usize) -> Self {
        RespCodec {
            max_bulk,
            max_array,
            need: 0,
            decode_calls: 0,
        }
    }

    /// The line at `at` (without its `\r\n`) and where the next starts.
    fn line(src: &[u8], at: usize) -> Result<Parse<&[u8]>, RespError> {
        let rest = &src[at..];
        let window = &rest[..rest.len().min(MAX_HEADER + 2)];
        match window.iter().position(|&b| b == b'\n') {
            Some(0) => Err(RespError::Protocol("empty header line".into())),
            Some(nl) if window[nl - 1] == b'\r' => Ok(Parse::Done(&rest[..nl - 1], at + nl + 1)),
            Some(_) => Err(RespError::Protocol("header line not ended by CRLF".into())),
            None if window.len() > MAX_HEADER + 1 => {
                Err(RespError::Protocol("header line too long".into()))
            }
            None => Ok(Parse::Need(src.len() + 1)),
        }
    }

    fn number(digits: &[u8], what: &str) -> Result<i64, RespError> {
        std::str::from_utf8(digits)
            .ok()
            .filter(|s| !s.is_empty() && !s.starts_with('+'))
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| RespError::Protocol(format!("invalid {what} length")))
    }

    /// Parses one request at the front of `src`, without consuming: the
    /// spans of its arguments and its length; `None` for an empty array
    /// (skipped, as Redis does).
    fn parse(&self, src: &[u8]) -> Result<Parse<Option<Spans>>, RespError> {
        if src.is_empty() {
            return Ok(Parse::Need(1));
        }
        if src[0] != b'*' {
            return Err(RespError::Protocol(format!(
                "expected '*', got '{}'",
                src[0].escape_ascii()
            )));
        }
        let (header, mut at) = match Self::line(src, 0)? {
            Parse::Done(l, at) => (l, at),
            Parse::Need(n) => return Ok(Parse::Need(n)),
        };
        let count = Self::number(&header[1..], "multibulk")?;
        if count <= 0 {
            // `*0` and `*-1`: nothing to do, as in Redis.
            return Ok(Parse::Done(None, at));
        }
        if count as u64 > self.max_array as u64 {
            return Err(RespError::ArrayTooLong {
                declared: count,
                max: self.max_array,
            });
        }
        // Not `with_capacity(count)`: that would trust the peer's word.
        let mut spans = Vec::new();
        for _ in 0..count {
            if at >= src.len() {
                return Ok(Parse::Need(at + 1));
            }
            if src[at] != b'$' {
                return Err(RespError::Protocol(format!(
                    "expected '$', got '{}'",
                    src[at].escape_ascii()
                )));
            }
            let (header, body) = match Self::line(src, at)? {
                Parse::Done(l, next) => (l, next),
                Parse::Need(n) => return Ok(Parse::Need(n)),
            };
            let len = Self::number(&header[1..], "bulk")?;
            if len < 0 {
                return Err(RespError::Protocol("invalid bulk length".into()));
            }
            if len as u64 > self.max_bulk as u64 {
                return Err(RespError::BulkTooLong {
                    declared: len,
                    max: self.max_bulk,
                });
            }
            let end = body + len as usize;
            if src.len() < end + 2 {
                return Ok(Parse::Need(end + 2));
            }
            if &src[end..end + 2] != b"\r\n" {
                return Err(RespError::Protocol("bulk string not ended by CRLF".into()));
            }
            spans.push((body, end));
            at = end + 2;
        }
        Ok(Parse::Done(Some(spans), at))
    }
}

impl Decoder for RespCodec {
    type Item = Command;
    type Error = RespError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Command>, RespError> {
        self.decode_calls += 1;
        loop {
            if src.len() < self.need {
                return Ok(None);
            }
            match self.parse(src)? {
                Parse::Need(n) => {
                    self.need = n;
                    return Ok(None);
                }
                Parse::Done(None, len) => {
                    self.need = 0;
                    src.advance(len);
                }
                Parse::Done(Some(spans), len) => {
                    self.need = 0;
                    // One allocation shared by the arguments: they are
                    // slices of the request's bytes.
                    let frame = src.split_to(len).freeze();
                    return Ok(Some(
                        spans.into_iter().map(|(a, b)| frame.slice(a..b)).collect(),
                    ));
                }
            }
        }
    }
}

impl Encoder<Reply> for RespCodec {
    type Error = RespError;

    fn encode(&mut self, reply: Reply, dst: &mut BytesMut) -> Result<(), RespError> {
        let line = |s: &str| !s.contains(['\r', '\n']);
        match reply {
            Reply::Simple(s) if line(&s) => {
                dst.reserve(s.len() + 3);
                dst.put_u8(b'+');
                dst.put_slice(s.as_bytes());
                dst.put_slice(b"\r\n");
            }
            Reply::Error(s) if line(&s) => {
                dst.reserve(s.len() + 3);
                dst.put_u8(b'-');
                dst.put_slice(s.as_bytes());
                dst.put_slice(b"\r\n");
            }
            Reply::Simple(_) | Reply::Error(_) => {
                return Err(RespError::Unencodable("line break in a status line"));
            }
            Reply::Integer(n) => dst.put_slice(format!(":{n}\r\n").as_bytes()),
            Reply::Bulk(b) => {
                let head = format!("${}\r\n", b.len());
                dst.reserve(head.len() + b.len() + 2);
                dst.put_slice(head.as_bytes());
                dst.put_slice(&b);
                dst.put_slice(b"\r\n");
            }
            Reply::Null => dst.put_slice(b"$-1\r\n"),
            Reply::Goodbye => dst.put_slice(b"+OK\r\n"),
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ protocol

/// The protocol: RESP framing, pipelined dispatch.
#[derive(Debug, Clone)]
pub struct RespProto {
    pub max_bulk: usize,
    pub max_array: usize,
}

impl Default for RespProto {
    fn default() -> Self {
        RespProto {
            max_bulk: DEFAULT_MAX_BULK,
            max_array: DEFAULT_MAX_ARRAY,
        }
    }
}

impl ServerProto for RespProto {
    type Request = Command;
    type Response = Reply;
    type Codec = RespCodec;

    fn codec(&self) -> RespCodec {
        RespCodec::new(self.max_bulk, self.max_array)
    }

    // Bad RESP: one error reply, then the connection closes (as Redis).
    // A transport error never gets here (strata tells them apart by what
    // the socket reported); `Io` here is the default `decode_eof`'s
    // "stream ended in the middle of a frame".
    fn decode_error(&self, err: &RespError) -> Option<Reply> {
        Some(Reply::Error(
            match err {
                RespError::Io(e) => format!("ERR Protocol error: {e}"),
                other => format!("ERR {other}"),
            }
            .replace(['\r', '\n'], " "),
        ))
    }

    // The service fails only for reasons of its own (it answers bad
    // commands itself): an error reply, and carry on.
    fn service_error(&self, err: &BoxError) -> ErrorAction<Reply> {
        ErrorAction::Respond(Reply::Error(
            format!("ERR {err}").replace(['\r', '\n'], " "),
        ))
    }

    // QUIT's answer is the connection's last.
    fn closes_after(&self, reply: &Reply) -> bool {
        *reply == Reply::Goodbye
    }

    // And nothing after a QUIT is read: a command pipelined behind it
    // must not run, even while slower commands ahead of the QUIT still do.
    fn last_request(&self, cmd: &Command) -> bool {
        cmd.len() == 1 && cmd[0].eq_ignore_ascii_case(b"QUIT")
    }
}

// ------------------------------------------------------------------ service

/// The key space, shared by every connection on every worker.
#[derive(Debug, Clone, Default)]
pub struct Store {
    map: Arc<Mutex<HashMap<Bytes, Bytes>>>,
}

fn wrong_args(cmd: &[u8]) -> Reply {
    Reply::err(format!(
        "ERR wrong number of arguments for '{}' command",
        String::from_utf8_lossy(cmd).to_lowercase()
    ))
}

impl Store {
    pub fn execute(&self, args: &[Bytes]) -> Reply {
        let Some(name) = args.first() else {
            return Reply::err("ERR empty command");
        };
        let cmd = name.to_ascii_uppercase();
        let argc = args.len();
        match (&cmd[..], argc) {
            (b"QUIT", 1) => Reply::Goodbye,
            (b"PING", 1) => Reply::Simple("PONG".into()),
            (b"PING", 2) => Reply::Bulk(args[1].clone()),
            (b"ECHO", 2) => Reply::Bulk(args[1].clone()),
            (b"GET", 2) => match self.map.lock().unwrap().get(&args[1]) {
                Some(v) => Reply::Bulk(v.clone()),
                None => Reply::Null,
            },
            (b"SET", 3) => {
                // Copy out of the request's buffer: a stored slice would
                // keep the whole read buffer it was cut from alive.
                let (k, v) = (
                    Bytes::copy_from_slice(&args[1]),
                    Bytes::copy_from_slice(&args[2]),
                );
                self.map.lock().unwrap().insert(k, v);
                Reply::ok()
            }
            (b"DEL", 2..) => {
                let mut map = self.map.lock().unwrap();
                Reply::Integer(
                    args[1..]
                        .iter()
                        .filter(|k| map.remove(*k).is_some())
                        .count() as i64,
                )
            }
            (b"INCR", 2) => {
                let mut map = self.map.lock().unwrap();
                let cur = match map.get(&args[1]) {
                    None => 0,
                    Some(v) => match std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                    {
                        Some(n) => n,
                        None => return Reply::err("ERR value is not an integer or out of range"),
                    },
                };
                let Some(next) = cur.checked_add(1) else {
                    return Reply::err("ERR increment or decrement would overflow");
                };
                map.insert(
                    Bytes::copy_from_slice(&args[1]),
                    Bytes::from(next.to_string()),
                );
                Reply::Integer(next)
            }
            (b"PING" | b"ECHO" | b"GET" | b"SET" | b"DEL" | b"INCR", _) => wrong_args(name),
            _ => Reply::err(format!(
                "ERR unknown command '{}'",
                String::from_utf8_lossy(name).replace(['\r', '\n'], " ")
            )),
        }
    }
}

impl Service<Command> for Store {
    type Response = Reply;
    type Error = std::convert::Infallible;

    fn call(&self, req: Command) -> impl Future<Output = Result<Reply, Self::Error>> {
        std::future::ready(Ok(self.execute(&req)))
    }
}

// ------------------------------------------------------------------ server

/// A RESP server on 127.0.0.1, one worker, and its store.
pub fn start(proto: RespProto, config: ConnectionConfig) -> (ServerHandle, Store) {
    let store = Store::default();
    let s = store.clone();
    let server = TcpServer::new(proto, "127.0.0.1:0".parse().unwrap())
        .threads(1)
        .connection_config(config)
        .shutdown_timeout(std::time::Duration::from_secs(5))
        .start(move || Ok(s.clone()))
        .unwrap();
    (server, store)
}

// ------------------------------------------------------------------ client

/// Encodes a request as a client sends it.
pub fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Encodes replies as the server should send them.
pub fn replies(rs: &[Reply]) -> Vec<u8> {
    let mut codec = RespCodec::default();
    let mut buf = BytesMut::new();
    for r in rs {
        codec.encode(r.clone(), &mut buf).unwrap();
    }
    buf.to_vec()
}

/// Parses every reply in `bytes` (a whole response stream, after EOF);
/// panics on anything that is not a complete reply.
pub fn parse_replies(mut bytes: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    let line = |b: &[u8]| -> (String, usize) {
        let nl = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("reply line ends with CRLF");
        (String::from_utf8(b[1..nl].to_vec()).unwrap(), nl + 2)
    };
    while !bytes.is_empty() {
        let (text, used) = line(bytes);
        let r = match bytes[0] {
            b'+' => Reply::Simple(text),
            b'-' => Reply::Error(text),
            b':' => Reply::Integer(text.parse().unwrap()),
            b'$' if text == "-1" => Reply::Null,
            b'$' => {
                let n: usize = text.parse().unwrap();
                let body = Bytes::copy_from_slice(&bytes[used..used + n]);
                assert_eq!(&bytes[used + n..used + n + 2], b"\r\n");
                bytes = &bytes[used + n + 2..];
                out.push(Reply::Bulk(body));
                continue;
            }
            other => panic!("not a reply: {:?}", other as char),
        };
        bytes = &bytes[used..];
        out.push(r);
    }
    out
}

/// A blocking client over std's `TcpStream`.
pub struct Client {
    pub stream: std::net::TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        Client { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).unwrap();
    }

    /// Everything the server sends until it closes, and how the stream
    /// ended (`Ok` for a clean close, the error for a reset or timeout).
    pub fn read_to_close(&mut self) -> (Vec<u8>, io::Result<()>) {
        use std::io::Read;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return (out, Ok(())),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    /// Reads until `want` bytes came (or panics after the read timeout).
    pub fn read_exact(&mut self, want: usize) -> Vec<u8> {
        use std::io::Read;
        let mut out = vec![0u8; want];
        self.stream.read_exact(&mut out).unwrap();
        out
    }
}
