//! A migrating tokio user's TCP proxy: accept, connect upstream, copy both
//! directions concurrently with owned split halves, and propagate each
//! half-close (EOF -> shutdown write) to the other side.

use std::net::SocketAddr;
use std::time::Duration;

use strata::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use strata::rt::net::{TcpListener, TcpStream};
use strata::rt::time::timeout;

/// One direction: everything `r` sends, into `w`, then the half-close
/// (tokio: `shutdown().await`).
async fn copy<R, W>(r: R, mut w: W) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let total = strata::io::copy(r, &mut w).await?;
    w.close().await?;
    Ok(total)
}

async fn proxy(listener: TcpListener, upstream: SocketAddr) {
    loop {
        let (client, _) = listener.accept().await.unwrap();
        strata::spawn(async move {
            let server = TcpStream::connect(upstream).await.unwrap();
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let a = strata::spawn(copy(cr, sw));
            let b = strata::spawn(copy(sr, cw));
            let _ = a.await;
            let _ = b.await;
        });
    }
}

fn payload(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Upstream: reads everything to EOF, then answers with the bytes reversed
/// and closes.
async fn reverse_upstream(listener: TcpListener) {
    loop {
        let (mut s, _) = listener.accept().await.unwrap();
        strata::spawn(async move {
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.unwrap();
            all.reverse();
            s.write_all(&all).await.unwrap();
            s.close().await.unwrap();
        });
    }
}

/// Upstream: sends a banner and half-closes at once, then still reads
/// everything the client sends and reports its length on stdout via a
/// oneshot-free path: a second connection is not needed, it just echoes
/// the count back is impossible (write side closed), so it checks itself.
async fn banner_upstream(listener: TcpListener, expect: Vec<u8>) {
    let (mut s, _) = listener.accept().await.unwrap();
    s.write_all(b"BANNER").await.unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).await.unwrap();
    assert_eq!(
        all, expect,
        "upstream got the client's bytes intact after its half-close"
    );
}

fn rt() -> strata::Runtime {
    strata::Runtime::builder()
        .worker_threads(2)
        .build()
        .unwrap()
}

#[test]
fn proxy_large_payload_and_client_half_close() {
    rt().block_on(async {
        let up = TcpListener::bind("127.0.0.1:0").unwrap();
        let up_addr = up.local_addr().unwrap();
        strata::spawn(reverse_upstream(up));
        let px = TcpListener::bind("127.0.0.1:0").unwrap();
        let px_addr = px.local_addr().unwrap();
        strata::spawn(proxy(px, up_addr));

        let r = timeout(Duration::from_secs(60), async {
            let mut clients = Vec::new();
            for seed in 0..4u32 {
                clients.push(strata::spawn(async move {
                    let data = payload(4 * 1024 * 1024 + seed as usize * 777, seed);
                    let s = TcpStream::connect(px_addr).await.unwrap();
                    let (mut r, mut w) = s.into_split();
                    let d2 = data.clone();
                    let writer = strata::spawn(async move {
                        w.write_all(&d2).await.unwrap();
                        w.close().await.unwrap();
                        w
                    });
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).await.unwrap();
                    let _w = writer.await.unwrap();
                    let mut want = data;
                    want.reverse();
                    assert_eq!(got.len(), want.len());
                    assert!(got == want, "payload {seed} corrupted");
                }));
            }
            for c in clients {
                c.await.unwrap();
            }
        })
        .await;
        assert!(r.is_ok(), "proxy test hung");
    });
}

#[test]
fn proxy_upstream_half_closes_first() {
    rt().block_on(async {
        let data = payload(2 * 1024 * 1024, 99);
        let up = TcpListener::bind("127.0.0.1:0").unwrap();
        let up_addr = up.local_addr().unwrap();
        let checker = strata::spawn(banner_upstream(up, data.clone()));
        let px = TcpListener::bind("127.0.0.1:0").unwrap();
        let px_addr = px.local_addr().unwrap();
        strata::spawn(proxy(px, up_addr));

        let r = timeout(Duration::from_secs(60), async {
            let mut s = TcpStream::connect(px_addr).await.unwrap();
            let mut banner = Vec::new();
            // The upstream's half-close arrives as EOF through the proxy...
            (&s).read_to_end(&mut banner).await.unwrap();
            assert_eq!(banner, b"BANNER");
            // ...and our direction still works afterwards.
            s.write_all(&data).await.unwrap();
            s.close().await.unwrap();
            checker.await.unwrap();
        })
        .await;
        assert!(r.is_ok(), "proxy half-close test hung");
    });
}
