//! Two servers in one process (a main and an admin server): their logs
//! and threads can be told apart: every event of a server's own names its
//! address, and each can name its threads.
//! (One test in this binary: it installs a global subscriber.)

mod support;

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use strata_service::service_fn;
use support::TestProto;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Every event: its message and fields as text, and its thread's name.
static EVENTS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

struct Capture;

struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        // Spans' fields count as the event's context: record them too.
        let mut t = Text(String::new());
        span.record(&mut t);
        EVENTS.lock().unwrap().push(("SPAN".into(), t.0));
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut t = Text(String::new());
        event.record(&mut t);
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        EVENTS.lock().unwrap().push((thread, t.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn echo(name: &str) -> strata_proto::ServerHandle {
    strata_proto::TcpServer::new(TestProto, "127.0.0.1:0".parse().unwrap())
        .thread_name(name)
        .threads(2)
        .shutdown_timeout(Duration::from_secs(10))
        .start(|| {
            Ok(service_fn(|req: String| async move {
                Ok::<_, std::io::Error>(req)
            }))
        })
        .unwrap()
}

/// The "shutting down" event of the admin server, logged while the main
/// server runs on, names the server it is about (its address, as the
/// "listening" event does); and two servers given thread names have
/// workers told apart. (The events once carried no address, and every
/// server's workers were `strata-server-N`.)
#[test]
fn two_servers_logs_and_threads_can_be_told_apart() {
    tracing::subscriber::set_global_default(Capture).unwrap();
    let main = echo("srv-main");
    let admin = echo("srv-admin");
    let admin_addr = admin.local_addr().to_string();
    // One connection each, so that both servers have worked.
    for s in [&main, &admin] {
        let mut c = support::Client::connect(s.local_addr());
        assert_eq!(c.round_trip("echo x").as_deref(), Some("echo x"));
    }
    let workers: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim_end().to_string())
        .filter(|n| n.starts_with("srv-"))
        .collect();
    let mut unique = workers.clone();
    unique.sort();
    unique.dedup();
    EVENTS.lock().unwrap().clear();
    assert!(admin.shutdown());
    let events = EVENTS.lock().unwrap().clone();
    let shutting: Vec<_> = events
        .iter()
        .filter(|(_, text)| text.contains("shutting down"))
        .collect();
    assert!(!shutting.is_empty(), "no shutting-down event: {events:?}");
    let named = events.iter().any(|(_, text)| text.contains(&admin_addr));
    drop(main);
    assert!(
        named && unique.len() == workers.len(),
        "the admin server's shutdown logs name it ({admin_addr}): {named} ({shutting:?}); \
         worker threads of the two servers: {workers:?}"
    );
}
