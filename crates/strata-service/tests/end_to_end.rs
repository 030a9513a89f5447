//! A line server over TCP whose service is wrapped in metrics, load
//! shedding, a timeout and a concurrency limit: each layer shows through
//! the protocol's error lines, and the metrics add up.

mod recorder;

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use recorder::TestRecorder;
use strata_line::LineProto;
use strata_proto::TcpServer;
use strata_proto::pipeline::ServerProto;
use strata_service::limit::PermitPool;
use strata_service::metrics::{ERRORS, IN_FLIGHT, REQUESTS};
use strata_service::{BoxError, ServiceBuilder};

/// The line protocol's request type (a `String` or a shared-buffer line).
type Request = <LineProto as ServerProto>::Request;

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        // A deadlock guard, far beyond anything the test waits for.
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    fn recv(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }
}

#[test]
fn a_stack_of_middleware_serves_over_tcp() {
    let recorder = TestRecorder::default();
    metrics::set_global_recorder(recorder.clone()).unwrap();

    let pool = PermitPool::new(1);
    let stack = {
        let pool = pool.clone();
        move || {
            let svc = ServiceBuilder::new()
                .metrics("line")
                .load_shed(pool.clone())
                .timeout(Duration::from_secs(1))
                .concurrency_limit_shared(pool.clone())
                .service_fn(|line: Request| {
                    let line: &str = AsRef::<str>::as_ref(&line);
                    let slow = line == "slow";
                    let answer = if line == "hello" { "world" } else { "idk" };
                    async move {
                        if slow {
                            strata_rt::time::sleep(Duration::from_secs(60)).await;
                        }
                        Ok::<_, BoxError>(Cow::Borrowed(answer))
                    }
                });
            Ok(svc)
        }
    };
    let server = TcpServer::new(LineProto::new(), "127.0.0.1:0".parse().unwrap())
        .threads(2)
        .start(stack)
        .unwrap();
    let addr = server.local_addr();

    let mut a = Client::connect(addr);
    a.send("hello");
    assert_eq!(a.recv(), "world");

    // `slow` takes the only permit and holds it until its timeout.
    a.send("slow");
    let guard = Instant::now();
    while pool.available() != 0 {
        assert!(
            guard.elapsed() < Duration::from_secs(30),
            "slow never got in"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Meanwhile another connection (maybe on the other worker) is shed.
    let mut b = Client::connect(addr);
    b.send("hello");
    assert_eq!(b.recv(), "error: service overloaded; request shed");

    assert_eq!(a.recv(), "error: request timed out after 1s");
    // The permit came back with the timeout.
    b.send("hello");
    assert_eq!(b.recv(), "world");
    assert_eq!(pool.available(), 1);

    assert_eq!(recorder.get(REQUESTS, "line").count(), 4);
    assert_eq!(recorder.get(ERRORS, "line").count(), 2);
    assert_eq!(recorder.get(IN_FLIGHT, "line").gauge(), 0.0);
    drop((a, b));
    assert!(server.shutdown());
}
