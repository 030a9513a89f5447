//! `TcpClient` with `LineClient` against the real `line-server` process:
//! pipelined calls from many tasks get their own answers; a request the
//! server refuses is answered with its error line, then the connection is
//! closed, which the next call reports; a pool makes a new connection.
//!
//! Waits are watchdogs against hangs, never performance bounds.

mod support;

use strata_line::LineClient;
use strata_proto::TcpClient;
use strata_proto::pipeline::ClientErrorKind;
use strata_service::Service;
use support::Server;

#[test]
fn tcp_client_calls_the_line_server() {
    let server = Server::start(&[]);
    let addr = server.addr;
    let rt = strata_rt::Runtime::builder()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = TcpClient::new(LineClient::new())
            .connect(addr)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let client = client.clone();
                strata_rt::spawn(async move {
                    for i in 0..200 {
                        let (ask, want) = if (t + i) % 3 == 0 {
                            ("hello".to_string(), "world")
                        } else {
                            (format!("x{t}-{i}"), "idk")
                        };
                        assert_eq!(client.call(ask).await.unwrap(), want);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }

        // Over the server's 8 KiB limit: its error line, then the close.
        let answer = client.call("x".repeat(9000)).await.unwrap();
        assert_eq!(answer, "error: line too long");
        let e = client.call("hello".to_string()).await.unwrap_err();
        assert_eq!(e.kind(), ClientErrorKind::Closed, "{e:?}");
        assert!(client.is_closed());

        // A pool makes a new connection where the old one ended.
        let pool = TcpClient::new(LineClient::new()).pool(addr, 1);
        assert_eq!(pool.call("hello".to_string()).await.unwrap(), "world");
    });
    drop(server);
}
