//! After a stop, a connection at its in-flight bound reads on only to see
//! a reset: requests sent after the stop are not queued, and reading
//! stays bounded. Waits are hang guards only; assertions count bytes,
//! never time.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use strata_proto::pipeline::serve_connection;
use strata_service::Service;
use support::firehose::Firehose;
use support::{TestProto, cfg, deadline, not_instant};

/// 64-byte requests (TestProto's line limit is 64).
const REQUEST: &[u8; 64] = b"echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";

/// Echoes, but not at once: each call is `Pending` three times (waking itself),
/// so that with `max_in_flight(1)` the connection sits at its in-flight
/// bound after every request.
#[derive(Clone)]
struct YieldingEcho {
    served: Arc<AtomicU64>,
}

impl Service<String> for YieldingEcho {
    type Response = String;
    type Error = std::io::Error;

    async fn call(&self, req: String) -> Result<String, std::io::Error> {
        not_instant().await;
        self.served.fetch_add(1, Ordering::Relaxed);
        Ok(req)
    }
}

/// `serve_connection`: after a stop, with no kernel to ask, it reads "at
/// most 16 MiB more". A connection at its in-flight bound reads ahead
/// (step 3, to see a reset); after the bytes owed, the new branch then
/// decodes and answers what that read-ahead buffered, the bound is reached
/// again, step 3 reads again... so a peer that keeps sending to a service
/// that is not instant is read (and answered) without end.
#[test]
fn after_stop_at_the_in_flight_bound_reads_stop_at_what_is_owed() {
    const LIMIT: u64 = 16 << 20;
    const GUARD: u64 = 20 << 20;
    let (io, read) = Firehose::new(REQUEST, GUARD);
    let served = Arc::new(AtomicU64::new(0));
    let svc = YieldingEcho {
        served: served.clone(),
    };
    let result = deadline(600, move || {
        let rt = support::memory::one_worker_runtime();
        let task = rt.handle().spawn(async move {
            serve_connection(
                io,
                &TestProto,
                svc,
                &cfg().max_in_flight(1),
                std::future::ready(()),
            )
            .await
            .map_err(|e| e.to_string())
        });
        rt.block_on(task).expect("the connection task completes")
    });
    let total = read.load(Ordering::Relaxed);
    let served = served.load(Ordering::Relaxed);
    assert!(
        total <= LIMIT + (1 << 20),
        "after the stop, at its in-flight bound, serve_connection read {total} bytes \
         ({} MiB) and answered {served} requests from a peer that never stops sending \
         (documented: at most 16 MiB more); it stopped only at the test's end of stream \
         at {} MiB (result: {result:?})",
        total >> 20,
        GUARD >> 20
    );
}
