//! A transport error the connection dealt with does not decide how a later,
//! unrelated decoder error ends it: a read retried after `Interrupted`
//! (with no OS code), or an error the reset watch dropped, leaves a line
//! too long to be bad input, answered with the error line (both were
//! reported as I/O errors, with no answer).

mod support;

use std::cell::{Cell, RefCell};
use std::io;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_io::{AsyncRead, AsyncWrite};
use strata_proto::ConnectionConfig;
use strata_proto::pipeline::{ConnectionError, serve_connection};
use strata_service::Service;
use support::memory::{Memory, one_worker_runtime};
use support::{Echo, Flag, TestProto, deadline};

/// A Memory whose reads can be made to fail (separately from writes):
/// `interrupt_once`, when set, fails the next read with an `Interrupted`
/// that has no OS code; `read_error` fails reads once nothing is left to
/// read.
struct Flaky {
    inner: Memory,
    interrupt_once: Rc<Cell<bool>>,
    read_error: Rc<Cell<Option<i32>>>,
}

impl AsyncRead for Flaky {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.interrupt_once.replace(false) {
            // What a transport built on a blocking or TLS layer reports for a
            // signal: the kind, no OS code. Framed retries it.
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::Interrupted)));
        }
        if self.inner.0.borrow().incoming.is_empty()
            && let Some(code) = self.read_error.get()
        {
            return Poll::Ready(Err(io::Error::from_raw_os_error(code)));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Flaky {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

fn too_long_line() -> Vec<u8> {
    let mut v = vec![b'x'; 100];
    v.push(b'\n');
    v
}

/// A retried `Interrupted` read (no OS code: Counted stores -1) followed,
/// later, by the decoder's own error (a line over TestProto's 64-byte
/// limit): bad input, so `Decode` with the error line.
#[test]
fn an_interrupted_read_without_os_code_does_not_turn_a_later_decode_error_into_io() {
    let (ended, written) = deadline(30, || {
        one_worker_runtime().block_on(async {
            let mock = Memory::default();
            let mut incoming = b"echo hi\n".to_vec();
            incoming.extend(too_long_line());
            mock.send(&incoming);
            mock.0.borrow_mut().eof = true;
            let io = Flaky {
                inner: mock.clone(),
                interrupt_once: Rc::new(Cell::new(true)),
                read_error: Rc::new(Cell::new(None)),
            };
            let cfg = ConnectionConfig::default();
            let ended = serve_connection(io, &TestProto, Echo, &cfg, std::future::pending()).await;
            (ended.map_err(|e| format!("{e:?}")), mock.written())
        })
    });
    assert!(
        matches!(&ended, Err(e) if e.starts_with("Decode")),
        "ended as {ended:?}, client got {written:?}"
    );
    assert!(written.contains("error: "), "client got {written:?}");
}

/// `wait` answers once the test opens the gate.
#[derive(Clone, Default)]
struct Gated {
    gate: Rc<RefCell<(bool, Vec<Waker>)>>,
}

impl Service<String> for Gated {
    type Response = String;
    type Error = io::Error;
    async fn call(&self, req: String) -> Result<String, io::Error> {
        let gate = self.gate.clone();
        std::future::poll_fn(|cx| {
            let mut g = gate.borrow_mut();
            if g.0 {
                Poll::Ready(())
            } else {
                g.1.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        Ok(req)
    }
}

/// After a stop at the in-flight bound, past the bytes owed, the watch
/// takes a non-reset read error as "changes nothing" (poll_discard's doc).
/// The bad line that arrived *before* the stop is still bad input once
/// the request ahead of it finishes: `Decode`, with the error line. The
/// EIO the watch swallowed must not turn it into `Io`.
#[test]
fn an_error_the_watch_swallowed_does_not_turn_a_buffered_decode_error_into_io() {
    let svc = Gated::default();
    let gate = svc.gate.clone();
    let rt = one_worker_runtime();
    let (result, written) = rt.block_on(async move {
        let mock = Memory::default();
        let read_error = Rc::new(Cell::new(None));
        let io = Flaky {
            inner: mock.clone(),
            interrupt_once: Rc::new(Cell::new(false)),
            read_error: read_error.clone(),
        };
        let stop = Arc::new(Flag::default());
        let cfg = ConnectionConfig::default()
            .max_in_flight(1)
            .idle_timeout(None)
            .read_timeout(None)
            .write_timeout(None);
        let waiting = stop.clone();
        let conn = serve_connection(
            io,
            &TestProto,
            svc,
            &cfg,
            async move { waiting.wait().await },
        );
        let mut conn = pin!(conn);
        let mut cx = Context::from_waker(Waker::noop());
        let mut result: Option<Result<(), String>> = None;
        let mut poll = |n: usize| {
            for _ in 0..n {
                if result.is_none()
                    && let Poll::Ready(r) = conn.as_mut().poll(&mut cx)
                {
                    result = Some(r.map_err(|e: ConnectionError| format!("{e:?}")));
                }
            }
            result.clone()
        };
        let mut incoming = b"wait\n".to_vec();
        incoming.extend(too_long_line());
        mock.send(&incoming);
        poll(4);
        stop.fire();
        poll(8);
        // After the stop, past what was owed: the transport fails a read
        // with EIO (not a reset); the watch drops it.
        read_error.set(Some(libc::EIO));
        poll(8);
        assert!(result_is_none(&poll(0)), "ended early: {:?}", poll(0));
        let wakers = {
            let mut g = gate.borrow_mut();
            g.0 = true;
            std::mem::take(&mut g.1)
        };
        wakers.into_iter().for_each(Waker::wake);
        let result = poll(64);
        (result, mock.written())
    });
    assert!(
        matches!(&result, Some(Err(e)) if e.starts_with("Decode")),
        "ended as {result:?}, client got {written:?}"
    );
    assert!(written.contains("error: "), "client got {written:?}");
}

fn result_is_none(r: &Option<Result<(), String>>) -> bool {
    r.is_none()
}

/// At the in-flight bound (1), "wait" runs and a too-long line sits in the
/// read buffer. The read-ahead's read is interrupted (retried) and then
/// finds nothing (`Pending`). When "wait" finishes, the buffered line is
/// decoded: bad input, which must end as `Decode` with the error line.
fn run_interrupted_read_ahead(
    interrupt_during_read_ahead: bool,
) -> (Option<Result<(), String>>, String) {
    let svc = Gated::default();
    let gate = svc.gate.clone();
    let rt = one_worker_runtime();
    rt.block_on(async move {
        let mock = Memory::default();
        let interrupt = Rc::new(Cell::new(false));
        let io = Flaky {
            inner: mock.clone(),
            interrupt_once: interrupt.clone(),
            read_error: Rc::new(Cell::new(None)),
        };
        let cfg = ConnectionConfig::default()
            .max_in_flight(1)
            .idle_timeout(None)
            .read_timeout(None)
            .write_timeout(None);
        let conn = serve_connection(io, &TestProto, svc, &cfg, std::future::pending());
        let mut conn = pin!(conn);
        let mut cx = Context::from_waker(Waker::noop());
        let mut result: Option<Result<(), String>> = None;
        let mut poll = |n: usize| {
            for _ in 0..n {
                if result.is_none()
                    && let Poll::Ready(r) = conn.as_mut().poll(&mut cx)
                {
                    result = Some(r.map_err(|e: ConnectionError| format!("{e:?} / {e}")));
                }
            }
            result.clone()
        };
        let mut incoming = b"wait\n".to_vec();
        incoming.extend(vec![b'x'; 100]);
        incoming.push(b'\n');
        mock.send(&incoming);
        // "wait" is taken; the rest is buffered; the read-ahead finds nothing.
        poll(4);
        // The next read-ahead read: Interrupted (retried), then Pending.
        interrupt.set(interrupt_during_read_ahead);
        poll(4);
        assert!(!interrupt.get(), "the read-ahead did not read");
        assert!(poll(0).is_none(), "ended early: {:?}", poll(0));
        // The peer then closes (so the linger after the error line ends).
        mock.0.borrow_mut().eof = true;
        let wakers = {
            let mut g = gate.borrow_mut();
            g.0 = true;
            std::mem::take(&mut g.1)
        };
        wakers.into_iter().for_each(Waker::wake);
        let result = poll(64);
        (result, mock.written())
    })
}

/// At the in-flight bound, a read-ahead read fails with `Interrupted` (no
/// OS code), is retried and finds nothing (`Pending`); the line too long
/// already buffered is then bad input, answered with the error line (it
/// was an I/O error: only a read that brought data cleared the failure).
#[test]
fn an_interrupted_read_ahead_that_then_pends_does_not_turn_a_buffered_decode_error_into_io() {
    let (result, written) = run_interrupted_read_ahead(true);
    assert!(
        matches!(&result, Some(Err(e)) if e.starts_with("Decode")),
        "ended as {result:?}, client got {written:?}"
    );
    assert!(written.contains("error: "), "client got {written:?}");
}
