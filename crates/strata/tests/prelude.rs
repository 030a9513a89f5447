//! `use strata::prelude::*` alone is enough to write a client and a raw
//! server: the extension traits' methods (`send`, `next`, `read_exact`,
//! `write_all`) come with it. Real TCP on 127.0.0.1.

use strata::codec::LinesCodec;
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
