//! The tokio peer: the line protocol on tokio's multi-thread runtime with
//! tokio-util's `LinesCodec` and `Framed`, written the idiomatic way
//! (`framed.next().await`, `framed.send(response).await`).

use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::{Framed, LinesCodec};

/// Serves forever on a fresh loopback port with `threads` workers; prints
/// `listening <addr>` once bound.
pub fn serve(threads: usize) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening {}", listener.local_addr()?);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut framed = Framed::new(stream, LinesCodec::new_with_max_length(8192));
                while let Some(line) = framed.next().await {
                    let response = match line {
                        Ok(l) if l == "hello" => "world".to_string(),
                        Ok(_) => "idk".to_string(),
                        Err(e) => {
                            let _ = framed.send(format!("error: {e}")).await;
                            break;
                        }
                    };
                    if framed.send(response).await.is_err() {
                        break;
                    }
                }
            });
        }
    })
}
