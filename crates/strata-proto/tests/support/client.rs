//! What the client tests share: a line protocol for `TcpClient`, a
//! runtime, and a hand-written peer on a plain thread.

use std::io::BufRead;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use strata_codec::LinesCodec;
use strata_proto::pipeline::{Client, ClientProto};
use strata_rt::Runtime;

/// Lines of at most 64 bytes, both ways.
pub struct Lines;

impl ClientProto for Lines {
    type Request = String;
    type Response = String;
    type Codec = LinesCodec;

    fn codec(&self) -> LinesCodec {
        LinesCodec::with_max_length(64)
    }
}

/// A client of [`Lines`] made over any I/O object.
pub type LineClient = Client<String, String>;

pub fn runtime(workers: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).build().unwrap()
}

/// A peer on a plain thread: accepts one connection and runs `f` on it
/// (reads time out after 20 s: a hang guard).
pub fn peer(f: impl FnOnce(TcpStream) + Send + 'static) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        f(s);
    });
    (addr, t)
}

/// Reads one line (without its line ending) from a peer's reader; empty
/// at the end of the stream.
pub fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line.trim_end().to_string()
}
