//! What stopping a runtime logs. In a binary of its own: tracing caches a
//! log site's interest process-wide, and a test elsewhere hitting the same
//! site with no subscriber, at the wrong moment, could leave it cached as
//! "never" for the subscriber here.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use strata_rt::Runtime;

/// Counts events whose message contains its text.
#[derive(Clone)]
struct Warnings(&'static str, Arc<std::sync::atomic::AtomicUsize>);

impl Warnings {
    fn new(text: &'static str) -> Self {
        Warnings(text, Arc::default())
    }

    fn count(&self) -> usize {
        self.1.load(Ordering::SeqCst)
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(&'static str, bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" && format!("{v:?}").contains(self.0) {
                    self.1 = true;
                }
            }
        }
        let mut m = Message(self.0, false);
        event.record(&mut m);
        if m.1 {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// `shutdown_background` asks for no wait, so workers still stopping are
/// no news: it used to warn, every time, that they were "still busy (a
/// task blocking them)". A limit that passes with a worker blocked still
/// warns.
#[test]
fn shutdown_background_does_not_warn_of_busy_workers() {
    let warnings = Warnings::new("workers still busy");
    tracing::subscriber::with_default(warnings.clone(), || {
        let rt = Runtime::builder().worker_threads(2).build().unwrap();
        rt.block_on(async { strata_rt::spawn(async {}).await.unwrap() });
        rt.shutdown_background();
    });
    assert_eq!(warnings.count(), 0, "warned of busy workers");

    let (release, released) = std::sync::mpsc::channel::<()>();
    tracing::subscriber::with_default(warnings.clone(), || {
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let (blocking_tx, blocking_rx) = std::sync::mpsc::channel();
        rt.handle().spawn(async move {
            blocking_tx.send(()).unwrap();
            let _ = released.recv();
        });
        blocking_rx.recv().unwrap();
        assert!(!rt.shutdown_timeout(Duration::from_millis(20)));
    });
    drop(release);
    assert_eq!(warnings.count(), 1, "a blocked worker went unreported");
}

/// Stopped on one of its own workers, a runtime cannot wait for its
/// threads, and says so when it was asked to (dropped); asked to wait for
/// nothing (`shutdown_background`), it used to say so as well.
#[test]
fn stopping_on_an_own_worker_warns_only_when_asked_to_wait() {
    for background in [true, false] {
        let warnings = Warnings::new("on one of its own workers");
        let rt = Runtime::builder().worker_threads(1).build().unwrap();
        let handle = rt.handle().clone();
        let w = warnings.clone();
        let (done_tx, done) = std::sync::mpsc::channel();
        drop(handle.spawn(async move {
            tracing::subscriber::with_default(w, || {
                if background {
                    rt.shutdown_background();
                } else {
                    drop(rt);
                }
            });
            done_tx.send(()).unwrap();
        }));
        done.recv_timeout(Duration::from_secs(20)).unwrap();
        let want = usize::from(!background);
        assert_eq!(warnings.count(), want, "background: {background}");
    }
}
