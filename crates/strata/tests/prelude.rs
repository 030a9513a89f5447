//! `use strata::prelude::*` brings the stream and sink methods (`send`,
//! `next`) for a framed client; the socket's `read_exact`/`write_all` come
//! from `strata::io` (not the prelude, where they would clash with std's
//! on `Vec<u8>` and `&[u8]`). Real TCP on 127.0.0.1.

use strata::codec::LinesCodec;
use strata::io::{AsyncReadExt, AsyncWriteExt};
use strata::prelude::*;

#[test]
fn the_prelude_brings_the_stream_sink_and_io_methods() {
    strata::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = strata::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0; 6];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(b"world\n").await.unwrap();
            buf
        });
        let mut conn = Framed::new(TcpStream::connect(addr).await.unwrap(), LinesCodec::new());
        conn.send("hello").await.unwrap();
        assert_eq!(conn.next().await.unwrap().unwrap(), "world");
        assert_eq!(&server.await.unwrap(), b"hello\n");
    });
}
