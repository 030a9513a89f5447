//! After a stop, `serve_connection` over a transport that is always ready
//! reads at most the documented 16 MiB more. Waits are watchdogs against
//! hangs only; assertions count bytes, never time.

mod support;

use std::sync::atomic::Ordering;

use strata_proto::pipeline::serve_connection;
use support::firehose::Firehose;
use support::{Echo, TestProto, cfg, deadline};

const REQUEST: &[u8] = b"echo x\n";

/// `serve_connection`'s docs: after `stop`, with no kernel to ask, "a
/// connection reads on while `io` has data, but at most 16 MiB more".
/// A transport that is always ready and takes no part in strata's budget
/// (an in-memory pipe, a TLS or compression wrapper) never says `Pending`;
/// the bound must hold anyway. The stop fires before the first poll; the
/// peer would send 64 MiB (then the test ends the stream, a hang guard).
#[test]
fn after_stop_serve_connection_reads_at_most_16_mib_more_from_a_peer_that_never_stops() {
    const LIMIT: u64 = 16 << 20;
    const GUARD: u64 = 64 << 20;
    let (io, read) = Firehose::new(REQUEST, GUARD);
    let result = deadline(300, move || {
        let rt = support::memory::one_worker_runtime();
        // On a worker, as under `TcpServer`, where the cooperative budget
        // applies.
        let task = rt.handle().spawn(async move {
            // The stop has already happened.
            serve_connection(io, &TestProto, Echo, &cfg(), std::future::ready(()))
                .await
                .map_err(|e| e.to_string())
        });
        rt.block_on(task).expect("the connection task completes")
    });
    let total = read.load(Ordering::Relaxed);
    assert!(
        total <= LIMIT + (1 << 20),
        "after the stop, serve_connection read {} MiB from a peer that never stops sending \
         (documented: \"at most 16 MiB more\"); it stopped only because the test ended the \
         stream at {} MiB (connection result: {result:?})",
        total >> 20,
        GUARD >> 20
    );
}
