//! Shared limits hold across workers: services on both workers of a
//! strata runtime draw on one permit pool or one token bucket.

mod scripted;

use std::time::Duration;

use futures_util::future::join_all;
use scripted::{Scripted, Step};
use strata_rt::Runtime;
use strata_service::clock::{ManualClock, SystemClock};
use strata_service::limit::{ConcurrencyLimitLayer, PermitPool, Rate, RateLimitLayer, TokenBucket};
use strata_service::{Layer, Service};

const WORKERS: usize = 2;
const CALLS_PER_WORKER: usize = 40;

#[test]
fn one_permit_pool_bounds_calls_on_every_worker() {
    let rt = Runtime::builder().worker_threads(WORKERS).build().unwrap();
    let pool = PermitPool::new(3);
    let layer = ConcurrencyLimitLayer::shared(pool.clone());
    let inner = Scripted::new(SystemClock);
    let handles: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (layer, inner) = (layer.clone(), inner.clone());
            rt.handle().spawn_local_on(worker, move || async move {
                // One service per worker, as a server has one per connection.
                let svc = layer.layer(inner);
                let calls = (0..CALLS_PER_WORKER)
                    .map(|i| svc.call(Step::Delay(Duration::from_millis(1), i as u32)));
                join_all(calls)
                    .await
                    .into_iter()
                    .filter(Result::is_ok)
                    .count()
            })
        })
        .collect();
    let done: usize = rt.block_on(async {
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    });
    assert_eq!(done, WORKERS * CALLS_PER_WORKER);
    assert_eq!(inner.counts.calls(), WORKERS * CALLS_PER_WORKER);
    let max = inner.counts.max_in_flight();
    assert!(
        (1..=3).contains(&max),
        "at most 3 inside at once, saw {max}"
    );
    assert_eq!(pool.available(), 3);
}

#[test]
fn one_token_bucket_admits_one_burst_across_workers() {
    let rt = Runtime::builder().worker_threads(WORKERS).build().unwrap();
    let clock = ManualClock::new(); // stands still: no refill during the test
    let bucket = TokenBucket::with_clock(Rate::per_second(1), 10, clock.clone());
    let layer = RateLimitLayer::with_bucket(bucket).reject();
    let handles: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let layer = layer.clone();
            let inner = Scripted::new(clock.clone());
            rt.handle().spawn_local_on(worker, move || async move {
                let svc = layer.layer(inner);
                let mut admitted = 0;
                for _ in 0..CALLS_PER_WORKER {
                    if svc.call(Step::Ok(0)).await.is_ok() {
                        admitted += 1;
                    }
                    strata_rt::yield_now().await;
                }
                admitted
            })
        })
        .collect();
    let admitted: usize = rt.block_on(async {
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    });
    assert_eq!(admitted, 10, "one burst for the whole runtime");
}
