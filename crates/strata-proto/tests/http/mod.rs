//! A third protocol on strata: a subset of HTTP/1.1.
//!
//! Requests are parsed with `httparse`: a request line and headers (the
//! head, at most [`MAX_HEAD`] bytes: more is `431`), then a body of
//! `Content-Length` bytes (at most [`MAX_BODY`]: more is `413`, answered
//! from the head, before a byte of the body is buffered). A request with a
//! `Transfer-Encoding` (chunked or any other) is refused with `501`: this
//! subset does not decode chunked bodies. Anything else that is not a
//! request (or an HTTP/1.1 request without `Host`, or a bad or repeated
//! and conflicting `Content-Length`) is `400`. Each of these answers is
//! the connection's last.
//!
//! Connections are kept alive by default in HTTP/1.1, and closed after the
//! answer when the client says `Connection: close`; HTTP/1.0 closes after
//! the answer unless the client says `Connection: keep-alive`. Pipelined
//! requests are answered in order (strata's pipelined dispatch).
//!
//! The pieces, one per strata layer:
//!
//! - [`HttpCodec`]: a `Decoder` of [`Request`]s and an `Encoder` of
//!   [`Response`]s (status line, `Date`, `Content-Length`, `Connection`);
//! - [`HttpProto`]: the `ServerProto`: bad input's final answer
//!   (`decode_error`), and, for `Connection: close`, `last_request` (no
//!   request after it is read) and `closes_after` (a response that says
//!   so closes);
//! - [`KeepAlive`]: middleware that carries what the *request* said about
//!   the connection into its *response*, since `closes_after` sees only
//!   the response; it also answers a service's error (a caught panic
//!   among them) with a `500`, knowing the request;
//! - [`Router`]: the application (GET /hello, POST /echo, 404), with a
//!   hit counter shared by every connection;
//! - [`start`]: a `TcpServer` on 127.0.0.1.
#![allow(dead_code, unreachable_pub)]

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use strata_codec::{Decoder, Encoder};
use strata_proto::pipeline::{ErrorAction, ServerProto};
use strata_proto::{ConnectionConfig, ServerHandle, TcpServer};
use strata_service::catch_panic::CatchPanic;
use strata_service::{BoxError, Service};

/// Bytes of a request's head (request line and headers) at most.
pub const MAX_HEAD: usize = 8 * 1024;
/// Bytes of a request's body at most.
pub const MAX_BODY: usize = 1024 * 1024;
/// Headers of a request at most (more is `431`, as a head too large).
const MAX_HEADERS: usize = 64;

// ------------------------------------------------------------------ frames

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// A request, whole (head and body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub version: Version,
    pub headers: Vec<(String, Bytes)>,
    pub body: Bytes,
    /// Whether the connection stays open after the answer (from the
    /// version and the `Connection` header).
    pub keep_alive: bool,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &v[..])
    }
}

/// What a response says of the connection, and whether it is its last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    /// HTTP/1.1's default: no `Connection` header, the connection stays.
    KeepAlive,
    /// An HTTP/1.0 client asked for keep-alive: `Connection: keep-alive`.
    KeepAlive10,
    /// `Connection: close`, and the connection closes after it
    /// ([`HttpProto`]'s `closes_after`).
    Close,
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub conn: Conn,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Bytes>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
            conn: Conn::KeepAlive,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

// ------------------------------------------------------------------ errors

/// What can go wrong decoding or encoding HTTP.
#[derive(Debug)]
pub enum HttpError {
    /// The transport failed, or (from the default `decode_eof`) the stream
    /// ended inside a request.
    Io(io::Error),
    /// Not a request: 400.
    BadRequest(String),
    /// The head passed [`MAX_HEAD`] bytes or [`MAX_HEADERS`] headers: 431.
    HeadTooLarge,
    /// A `Content-Length` over [`MAX_BODY`]: 413.
    BodyTooLarge { declared: u64 },
    /// A `Transfer-Encoding` (chunked or other): 501.
    NotImplemented(String),
    /// A response that cannot be put on the wire.
    Unencodable(&'static str),
}

impl HttpError {
    /// The status that answers it.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Io(_) | HttpError::BadRequest(_) => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::NotImplemented(_) => 501,
            HttpError::Unencodable(_) => 500,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Io(e) => write!(f, "{e}"),
            HttpError::BadRequest(m) => write!(f, "bad request: {m}"),
            HttpError::HeadTooLarge => f.write_str("request head too large"),
            HttpError::BodyTooLarge { declared } => {
                write!(f, "request body of {declared} bytes too large")
            }
            HttpError::NotImplemented(m) => write!(f, "not implemented: {m}"),
            HttpError::Unencodable(m) => write!(f, "cannot encode response: {m}"),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

// ------------------------------------------------------------------ codec

/// A parsed head waiting for its body. The head's bytes stay in the
/// buffer until the body is whole: the default `decode_eof` tells a
/// request cut short by the bytes left in the buffer.
#[derive(Debug, Clone)]
struct Head {
    method: String,
    path: String,
    version: Version,
    headers: Vec<(String, Bytes)>,
    keep_alive: bool,
    head_len: usize,
    body_len: usize,
}

/// HTTP/1.1 requests in, responses out.
#[derive(Debug, Clone)]
pub struct HttpCodec {
    max_head: usize,
    max_body: usize,
    date: bool,
    head: Option<Head>,
    /// Calls of `decode`, for the tests.
    pub decode_calls: usize,
}

impl Default for HttpCodec {
    fn default() -> Self {
        HttpCodec::new(MAX_HEAD, MAX_BODY)
    }
}

/// Whether a comma-separated header value holds `token`.
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

impl HttpCodec {
    pub fn new(max_head: usize, max_body: usize) -> Self {
        HttpCodec {
            max_head,
            max_body,
            date: true,
            head: None,
            decode_calls: 0,
        }
    }

    /// Without a `Date` header (for byte-exact tests).
    pub fn without_date(mut self) -> Self {
        self.date = false;
        self
    }

    /// Parses the head at the front of `src`, if whole.
    fn parse_head(&self, src: &[u8]) -> Result<Option<Head>, HttpError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        // Never parse past the bound: a head that does not end within it
        // is too large, whatever follows.
        let window = &src[..src.len().min(self.max_head)];
        let head_len = match req.parse(window) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if src.len() >= self.max_head => {
                return Err(HttpError::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
            Err(e) => return Err(HttpError::BadRequest(e.to_string())),
        };
        let version = match req.version {
            Some(0) => Version::Http10,
            Some(1) => Version::Http11,
            _ => return Err(HttpError::BadRequest("unknown version".into())),
        };
        let mut content_length: Option<u64> = None;
        let mut close = false;
        let mut keep_alive = false;
        let mut host = false;
        let mut owned = Vec::with_capacity(req.headers.len());
        for h in req.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(HttpError::NotImplemented(format!(
                    "Transfer-Encoding: {}",
                    String::from_utf8_lossy(h.value)
                )));
            } else if name.eq_ignore_ascii_case("content-length") {
                let digits = h.value.trim_ascii();
                let n = std::str::from_utf8(digits)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| HttpError::BadRequest("invalid Content-Length".into()))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(HttpError::BadRequest("conflicting Content-Length".into()));
                }
                content_length = Some(n);
            } else if name.eq_ignore_ascii_case("connection") {
                close |= has_token(h.value, "close");
                keep_alive |= has_token(h.value, "keep-alive");
            } else if name.eq_ignore_ascii_case("host") {
                host = true;
            }
            owned.push((name.to_string(), Bytes::copy_from_slice(h.value)));
        }
        if version == Version::Http11 && !host {
            return Err(HttpError::BadRequest(
                "HTTP/1.1 request without Host".into(),
            ));
        }
        let declared = content_length.unwrap_or(0);
        if declared > self.max_body as u64 {
            return Err(HttpError::BodyTooLarge { declared });
        }
        Ok(Some(Head {
            method: req.method.unwrap_or_default().to_string(),
            path: req.path.unwrap_or_default().to_string(),
            version,
            headers: owned,
            keep_alive: match version {
                Version::Http11 => !close,
                Version::Http10 => keep_alive && !close,
            },
            head_len,
            body_len: declared as usize,
        }))
    }
}

impl Decoder for HttpCodec {
    type Item = Request;
    type Error = HttpError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Request>, HttpError> {
        self.decode_calls += 1;
        if self.head.is_none() {
            // RFC 9112 2.2: empty lines before a request line are ignored.
            while src.starts_with(b"\r\n") {
                src.advance(2);
            }
            if src.first() == Some(&b'\n') {
                src.advance(1);
            }
            if src.is_empty() {
                return Ok(None);
            }
            match self.parse_head(src)? {
                None => return Ok(None),
                Some(head) => {
                    // Bounded: the body was checked against the limit.
                    src.reserve((head.head_len + head.body_len).saturating_sub(src.len()));
                    self.head = Some(head);
                }
            }
        }
        let head = self.head.as_ref().expect("parsed above");
        let total = head.head_len + head.body_len;
        if src.len() < total {
            return Ok(None);
        }
        let head = self.head.take().expect("parsed above");
        let frame = src.split_to(total).freeze();
        Ok(Some(Request {
            method: head.method,
            path: head.path,
            version: head.version,
            headers: head.headers,
            body: frame.slice(head.head_len..),
            keep_alive: head.keep_alive,
        }))
    }
}

/// `Date`'s format (RFC 9110 5.6.7, IMF-fixdate).
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {h:02}:{m:02}:{s:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

impl Encoder<Response> for HttpCodec {
    type Error = HttpError;

    fn encode(&mut self, resp: Response, dst: &mut BytesMut) -> Result<(), HttpError> {
        // All or nothing: check before a byte is written.
        let token = |s: &str| !s.is_empty() && !s.bytes().any(|b| b <= b' ' || b == b':');
        let field = |s: &str| !s.contains(['\r', '\n']);
        if !(100..=999).contains(&resp.status) {
            return Err(HttpError::Unencodable("status out of range"));
        }
        if !resp
            .headers
            .iter()
            .all(|(n, v)| token(n) && field(v) && !n.eq_ignore_ascii_case("content-length"))
        {
            return Err(HttpError::Unencodable("bad header"));
        }
        let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
        if self.date {
            head.push_str(&format!("Date: {}\r\n", http_date(SystemTime::now())));
        }
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
        match resp.conn {
            Conn::KeepAlive => {}
            Conn::KeepAlive10 => head.push_str("Connection: keep-alive\r\n"),
            Conn::Close => head.push_str("Connection: close\r\n"),
        }
        for (n, v) in &resp.headers {
            head.push_str(n);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        dst.reserve(head.len() + resp.body.len());
        dst.put_slice(head.as_bytes());
        dst.put_slice(&resp.body);
        Ok(())
    }
}

// ------------------------------------------------------------------ protocol

/// The protocol: HTTP/1.1 framing, pipelined dispatch.
#[derive(Debug, Clone)]
pub struct HttpProto {
    pub max_head: usize,
    pub max_body: usize,
    pub date: bool,
}

impl Default for HttpProto {
    fn default() -> Self {
        HttpProto {
            max_head: MAX_HEAD,
            max_body: MAX_BODY,
            date: true,
        }
    }
}

impl ServerProto for HttpProto {
    type Request = Request;
    type Response = Response;
    type Codec = HttpCodec;

    fn codec(&self) -> HttpCodec {
        let mut codec = HttpCodec::new(self.max_head, self.max_body);
        if !self.date {
            codec = codec.without_date();
        }
        codec
    }

    // Bad input: its status, `Connection: close`, and the connection
    // closes (strata closes after `decode_error`'s answer in any case).
    // `Io` here is only the default `decode_eof`'s "stream ended in the
    // middle of a frame": a request cut short.
    fn decode_error(&self, err: &HttpError) -> Option<Response> {
        let mut r = Response::new(err.status(), format!("{err}\n"));
        r.conn = Conn::Close;
        Some(r)
    }

    // A request not whole within the read timeout: 408, and the
    // connection closes (RFC 9110 15.5.9).
    fn read_timeout_response(&self) -> Option<Response> {
        let mut r = Response::new(408, "request timeout\n");
        r.conn = Conn::Close;
        Some(r)
    }

    // `KeepAlive` answers the service's errors itself, with the request at
    // hand; one that gets here anyway does not know what the request said
    // of the connection, so it is answered and the connection closed.
    fn service_error(&self, err: &BoxError) -> ErrorAction<Response> {
        let mut r = Response::new(500, format!("{err}\n"));
        r.conn = Conn::Close;
        ErrorAction::RespondAndClose(r)
    }

    fn closes_after(&self, resp: &Response) -> bool {
        resp.conn == Conn::Close
    }

    // RFC 9112 9.6: after a request that closes the connection the server
    // "MUST NOT process any further requests received on that connection".
    fn last_request(&self, req: &Request) -> bool {
        !req.keep_alive
    }

    // The answer before the server closes (a graceful stop, the client's
    // end of stream) says so, as RFC 9112 9.6 asks of a server that
    // closes: a client then sends nothing more on the connection.
    fn last_response(&self, resp: &mut Response) {
        resp.conn = Conn::Close;
    }
}

// ------------------------------------------------------------------ middleware

/// Carries what a request says of its connection into its response (the
/// protocol's `closes_after` sees only the response), and answers the
/// inner service's errors with a `500` in the request's place.
#[derive(Debug, Clone)]
pub struct KeepAlive<S> {
    inner: S,
}

impl<S> KeepAlive<S> {
    pub fn new(inner: S) -> Self {
        KeepAlive { inner }
    }
}

impl<S> Service<Request> for KeepAlive<S>
where
    S: Service<Request, Response = Response>,
    S::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = std::convert::Infallible;

    async fn call(&self, req: Request) -> Result<Response, Self::Error> {
        let conn = match (req.keep_alive, req.version) {
            (false, _) => Conn::Close,
            (true, Version::Http11) => Conn::KeepAlive,
            (true, Version::Http10) => Conn::KeepAlive10,
        };
        let mut resp = match self.inner.call(req).await {
            Ok(resp) => resp,
            Err(e) => Response::new(500, format!("{}\n", e.into())),
        };
        // The service may close a connection the request kept, not the
        // other way round.
        if resp.conn != Conn::Close {
            resp.conn = conn;
        }
        Ok(resp)
    }
}

// ------------------------------------------------------------------ service

/// The application: a few routes and a hit counter shared by every
/// connection on every worker.
#[derive(Debug, Clone, Default)]
pub struct Router {
    pub hits: Arc<AtomicU64>,
}

impl Service<Request> for Router {
    type Response = Response;
    type Error = BoxError;

    async fn call(&self, req: Request) -> Result<Response, BoxError> {
        let n = self.hits.fetch_add(1, Ordering::SeqCst) + 1;
        let path = req.path.as_str();
        Ok(match (req.method.as_str(), path) {
            ("GET", "/hello") => Response::new(200, "world").header("Content-Type", "text/plain"),
            ("POST", "/echo") => Response::new(200, req.body),
            ("GET", "/hits") => Response::new(200, n.to_string()),
            ("GET", "/fail") => return Err("the handler failed".into()),
            ("GET", "/panic") => panic!("the handler panicked on purpose"),
            ("GET", p) if p.starts_with("/slow/") => {
                let ms: u64 = p["/slow/".len()..].parse().unwrap_or(100);
                strata_rt::time::sleep(Duration::from_millis(ms)).await;
                Response::new(200, format!("slept {ms}"))
            }
            _ => Response::new(404, "not found\n"),
        })
    }
}

// ------------------------------------------------------------------ server

/// How the server under test is put together.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: ConnectionConfig,
    /// Wrap the router in `CatchPanic` (a panic is then a `500`); without,
    /// a handler's panic closes its connection.
    pub catch_panic: bool,
    pub shutdown_timeout: Duration,
    pub proto: HttpProto,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: ConnectionConfig::default(),
            catch_panic: true,
            shutdown_timeout: Duration::from_secs(10),
            proto: HttpProto::default(),
        }
    }
}

/// An HTTP server on 127.0.0.1, one worker, and its router.
pub fn start(opts: Options) -> (ServerHandle, Router) {
    let router = Router::default();
    let r = router.clone();
    let server = TcpServer::new(opts.proto, "127.0.0.1:0".parse().unwrap())
        .threads(1)
        .connection_config(opts.config)
        .shutdown_timeout(opts.shutdown_timeout);
    let server = if opts.catch_panic {
        server.start(move || Ok(KeepAlive::new(CatchPanic::new(r.clone()))))
    } else {
        server.start(move || Ok(KeepAlive::new(r.clone())))
    };
    (server.unwrap(), router)
}

// ------------------------------------------------------------------ client

/// A request as a client writes it (with `Host`, and `Content-Length` when
/// there is a body).
pub fn request(method: &str, path: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    for (n, v) in extra {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

pub fn get(path: &str) -> Vec<u8> {
    request("GET", path, &[], b"")
}

/// A response as the client parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Parses one response at the front of `buf`: it and its length.
pub fn parse_response(buf: &[u8]) -> Option<(Got, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf).expect("a response") {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return None,
    };
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8(h.value.to_vec()).unwrap(),
            )
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .expect("every response has a Content-Length")
        .1
        .parse()
        .unwrap();
    if buf.len() < n + len {
        return None;
    }
    Some((
        Got {
            status: resp.code.unwrap(),
            headers,
            body: buf[n..n + len].to_vec(),
        },
        n + len,
    ))
}

/// A blocking client over std's `TcpStream`, with a read timeout as a hang
/// guard.
pub struct Client {
    pub stream: std::net::TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        // Hang guards (for clones of the stream too: they share the socket).
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one response (panics at the end of the stream or after the
    /// read timeout).
    pub fn response(&mut self) -> Got {
        self.try_response()
            .unwrap_or_else(|e| panic!("no response: {e}"))
    }

    /// Reads one response; the error says how the stream ended instead
    /// (`UnexpectedEof` for a clean close).
    pub fn try_response(&mut self) -> io::Result<Got> {
        use std::io::Read;
        loop {
            if let Some((got, used)) = parse_response(&self.buf) {
                self.buf.drain(..used);
                return Ok(got);
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk)? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("closed, {} bytes left over", self.buf.len()),
                    ));
                }
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Every response until the server closes, and how the stream ended
    /// (`Ok` for a clean close with nothing left over).
    pub fn read_to_close(&mut self) -> (Vec<Got>, io::Result<()>) {
        let mut out = Vec::new();
        loop {
            match self.try_response() {
                Ok(got) => out.push(got),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && self.buf.is_empty() => {
                    return (out, Ok(()));
                }
                Err(e) => return (out, Err(e)),
            }
        }
    }
}

/// Polls `cond` every few milliseconds, for at most `guard` (a hang
/// guard, not a threshold); whether it came true.
pub fn wait_until(guard: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + guard;
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}
