//! Audit of the socket API against what a tokio user (and strata's own
//! docs) expect. Each test here failed on the code it was written
//! against; loopback and temp dirs only, hang-guarded by `deadline`.

mod support;

use std::io::IoSliceMut;

use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use strata_rt::net::{TcpListener, TcpStream, UnixStream};
use support::{deadline, rt};

/// The vectored write skips leading empty slices because 1,024 of them
/// would hide the data (`writev` takes at most 1,024) and report `Ok(0)`.
/// The vectored read has the same limit and no such skip: with 1,024
/// leading empty buffers it reads nothing and returns `Ok(0)`, which
/// every reader takes for end of stream, although data is waiting and
/// a non-empty buffer was offered. futures-io's default
/// `poll_read_vectored` reads into the first non-empty buffer instead.
#[test]
fn vectored_read_with_many_leading_empty_buffers_is_not_a_false_eof() {
    deadline(10, || {
        let rt = rt(1);
        rt.block_on(async {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (mut s, _) = l.accept().await.unwrap();
            c.write_all(b"hello").await.unwrap();
            while s.unread_bytes().unwrap() < 5 {
                strata_rt::yield_now().await;
            }

            let mut empties: Vec<[u8; 0]> = vec![[]; 1024];
            let mut data = [0u8; 16];
            let n = {
                let mut bufs: Vec<IoSliceMut<'_>> =
                    empties.iter_mut().map(|e| IoSliceMut::new(e)).collect();
                bufs.push(IoSliceMut::new(&mut data));
                s.read_vectored(&mut bufs).await.unwrap()
            };
            assert_eq!(
                n, 5,
                "read_vectored returned {n} with 5 bytes waiting: a false end of stream"
            );
            assert_eq!(&data[..5], b"hello");
        });
    });
}

/// The same false end of stream through a `UnixStream`, whose vectored
/// read goes through `readv(2)` with the same 1,024-buffer cap.
#[test]
fn unix_vectored_read_with_many_leading_empty_buffers_is_not_a_false_eof() {
    deadline(10, || {
        let rt = rt(1);
        rt.block_on(async {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            a.write_all(b"world").await.unwrap();
            while b.unread_bytes().unwrap() < 5 {
                strata_rt::yield_now().await;
            }
            let mut empties: Vec<[u8; 0]> = vec![[]; 1024];
            let mut data = [0u8; 16];
            let n = {
                let mut bufs: Vec<IoSliceMut<'_>> =
                    empties.iter_mut().map(|e| IoSliceMut::new(e)).collect();
                bufs.push(IoSliceMut::new(&mut data));
                b.read_vectored(&mut bufs).await.unwrap()
            };
            assert_eq!(
                n, 5,
                "UnixStream read_vectored returned {n} with 5 bytes waiting: a false end of stream"
            );
            assert_eq!(&data[..5], b"world");
        });
    });
}
