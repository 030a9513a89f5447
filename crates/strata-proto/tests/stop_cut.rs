//! After a stop, at the in-flight bound, a request that straddles the
//! bytes owed must not be cut by the server and then, at the end of the
//! stream, be taken for the peer's last request (a first version dropped
//! the bytes past those owed from the frame buffer, and `decode_eof` then
//! saw the cut request). Waits are hang guards only; assertions look at
//! requests and results, never time.

mod support;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{BufMut, BytesMut};
use strata_codec::LengthDelimitedCodec;
use strata_proto::pipeline::{ServerProto, serve_connection};
use strata_service::Service;
use support::{TestProto, cfg, deadline, line, not_instant};

/// What a transport with no kernel to ask owes after a stop
/// (`STOP_READ_LIMIT`): the stop fires at once, so `read_owed` is this.
const OWED: usize = 16 << 20;

/// A peer that has sent `data` and then closed its write side: reads give
/// at most `chunk` bytes each (always ready), then end of stream.
struct Script {
    data: Arc<Vec<u8>>,
    pos: usize,
    chunk: usize,
}

impl futures_io::AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let left = self.data.len() - self.pos;
        let n = left.min(buf.len()).min(self.chunk);
        let pos = self.pos;
        buf[..n].copy_from_slice(&self.data[pos..pos + n]);
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncWrite for Script {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Echoes (not at once) and records every request that is not one of
/// `sent` (the lines the peer sent, without their newline).
#[derive(Clone)]
struct RecordingEcho<R> {
    sent: Arc<Vec<R>>,
    odd: Arc<Mutex<Vec<R>>>,
}

impl<R: PartialEq + Clone + 'static> Service<R> for RecordingEcho<R> {
    type Response = R;
    type Error = std::io::Error;

    async fn call(&self, req: R) -> Result<R, std::io::Error> {
        not_instant().await;
        if !self.sent.contains(&req) {
            self.odd.lock().unwrap().push(req.clone());
        }
        Ok(req)
    }
}

fn serve<P, R>(proto: P, data: Vec<u8>, sent: Vec<R>) -> (Result<(), String>, Vec<R>)
where
    P: ServerProto<Request = R, Response = R>,
    R: PartialEq + Clone + Send + Sync + 'static,
    P::Codec: Send,
{
    let odd = Arc::new(Mutex::new(Vec::new()));
    let svc = RecordingEcho {
        sent: Arc::new(sent),
        odd: odd.clone(),
    };
    let result = deadline(600, move || {
        let rt = support::memory::one_worker_runtime();
        let task = rt.handle().spawn(async move {
            let io = Script {
                data: Arc::new(data),
                pos: 0,
                chunk: 64,
            };
            serve_connection(
                io,
                &proto,
                svc,
                &cfg().max_in_flight(1),
                std::future::ready(()),
            )
            .await
            .map_err(|e| e.to_string())
        });
        rt.block_on(task).expect("the connection task completes")
    });
    let odd = odd.lock().unwrap().clone();
    (result, odd)
}

/// LinesCodec: the peer sends whole lines, the last one straddling what is
/// owed (32 bytes before, 32 after), then closes. At the bound, the
/// read-ahead reads on past what is owed and sees the end of stream; the
/// 32 bytes before must not be answered as a line of their own (a request
/// the peer never sent).
#[test]
fn a_line_cut_at_what_is_owed_is_not_answered_after_end_of_stream() {
    let req = line("echo ", b'x', 64);
    let filler = line("echo ", b'y', 32);
    let tail = line("echo TAIL", b'z', 64);
    let mut data = Vec::with_capacity(OWED + 64);
    while data.len() + 64 <= OWED - 32 {
        data.extend_from_slice(&req);
    }
    data.extend_from_slice(&filler);
    assert_eq!(data.len(), OWED - 32);
    data.extend_from_slice(&tail);
    let text = |l: &[u8]| String::from_utf8(l[..l.len() - 1].to_vec()).unwrap();
    let sent = vec![text(&req), text(&filler), text(&tail)];
    let (result, odd) = serve(TestProto, data, sent);
    assert!(
        odd.is_empty(),
        "after the stop, the connection answered request(s) the peer never sent: {odd:?} \
         (the peer sent {:?} whole, straddling what is owed, then closed; result {result:?})",
        text(&tail)
    );
}

/// Frames of a 4-byte length header and a payload.
struct FrameProto;

impl ServerProto for FrameProto {
    type Request = BytesMut;
    type Response = BytesMut;
    type Codec = LengthDelimitedCodec;

    fn codec(&self) -> LengthDelimitedCodec {
        LengthDelimitedCodec::new()
    }
}

fn frame(fill: u8, len: usize) -> Vec<u8> {
    let mut f = BytesMut::new();
    f.put_u32((len - 4) as u32);
    f.resize(len, fill);
    f.to_vec()
}

/// LengthDelimitedCodec, the same layout: the peer sends only whole frames
/// and closes, so the connection must not end with a decode error
/// ("unexpected end of stream" on a frame the server cut itself).
#[test]
fn a_frame_cut_at_what_is_owed_is_not_a_decode_error_after_end_of_stream() {
    let req = frame(b'x', 64);
    let filler = frame(b'y', 32);
    let tail = frame(b'T', 64);
    let mut data = Vec::with_capacity(OWED + 64);
    while data.len() + 64 <= OWED - 32 {
        data.extend_from_slice(&req);
    }
    data.extend_from_slice(&filler);
    assert_eq!(data.len(), OWED - 32);
    data.extend_from_slice(&tail);
    let payload = |f: &[u8]| BytesMut::from(&f[4..]);
    let sent = vec![payload(&req), payload(&filler), payload(&tail)];
    let (result, odd) = serve(FrameProto, data, sent);
    assert!(
        result.is_ok() && odd.is_empty(),
        "the peer sent only whole frames and closed, yet after the stop the connection \
         ended with {result:?} and answered {} frame(s) it never sent",
        odd.len()
    );
}
