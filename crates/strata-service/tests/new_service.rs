//! `NewService`: one service per connection, with or without the
//! connection's addresses.

use std::cell::Cell;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;

use futures_executor::block_on;
use strata_service::{ConnectionInfo, NewService, Service, new_service_fn, service_fn};

struct Hello;

impl Service<String> for Hello {
    type Response = &'static str;
    type Error = Infallible;

    async fn call(&self, line: String) -> Result<&'static str, Infallible> {
        Ok(if line == "hello" { "world" } else { "idk" })
    }
}

/// What a server does with a connection: make its service, answer one
/// line. The error type is fixed here, as a server's signature would.
fn serve_one<N>(factory: &N, conn: ConnectionInfo, line: &str) -> io::Result<String>
where
    N: NewService<ConnectionInfo, Error = io::Error>,
    N::Service: Service<String, Response: ToString, Error = Infallible>,
{
    let svc = factory.new_service(&conn)?;
    let Ok(answer) = block_on(svc.call(line.to_owned()));
    Ok(answer.to_string())
}

fn conn(peer: &str, local: &str) -> ConnectionInfo {
    ConnectionInfo::new(peer.parse().unwrap(), local.parse().unwrap())
}

#[test]
fn a_plain_closure_is_a_factory() {
    let c = conn("192.0.2.7:51000", "192.0.2.1:7000");
    // The classic form, with no annotation: the server fixes the error.
    assert_eq!(serve_one(&|| Ok(Hello), c, "hello").unwrap(), "world");
    assert_eq!(serve_one(&|| Ok(Hello), c, "bonjour").unwrap(), "idk");
}

#[test]
fn a_factory_makes_a_fresh_service_each_time() {
    let made = Cell::new(0);
    let factory = || {
        made.set(made.get() + 1);
        let calls = Cell::new(0_u32);
        Ok::<_, io::Error>(service_fn(move |()| {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { Ok::<_, Infallible>(n) }
        }))
    };
    let c = conn("192.0.2.7:51000", "192.0.2.1:7000");
    let first = factory.new_service(&c).unwrap();
    let second = factory.new_service(&c).unwrap();
    assert_eq!(made.get(), 2);
    // Per-connection state is not shared between the two.
    assert_eq!(block_on(first.call(())), Ok(1));
    assert_eq!(block_on(first.call(())), Ok(2));
    assert_eq!(block_on(second.call(())), Ok(1));
}

#[test]
fn new_service_fn_receives_the_connection() {
    let seen = Cell::new(None::<(SocketAddr, SocketAddr)>);
    let factory = new_service_fn(|conn: &ConnectionInfo| {
        seen.set(Some((conn.peer, conn.local)));
        let peer = conn.peer;
        Ok::<_, io::Error>(service_fn(move |_line: String| async move {
            Ok::<_, Infallible>(format!("hello, {peer}"))
        }))
    });

    let c = conn("[2001:db8::7]:51000", "[2001:db8::1]:7000");
    assert_eq!(
        serve_one(&factory, c, "hi").unwrap(),
        "hello, [2001:db8::7]:51000"
    );
    assert_eq!(seen.get(), Some((c.peer, c.local)));
}

#[test]
fn a_factory_error_refuses_the_connection() {
    let only_local = new_service_fn(|conn: &ConnectionInfo| {
        if conn.peer.ip().is_loopback() {
            Ok(Hello)
        } else {
            Err(io::Error::new(io::ErrorKind::PermissionDenied, "not local"))
        }
    });
    let local = conn("127.0.0.1:40000", "127.0.0.1:7000");
    let remote = conn("192.0.2.7:51000", "192.0.2.1:7000");
    assert_eq!(serve_one(&only_local, local, "hello").unwrap(), "world");
    let err = serve_one(&only_local, remote, "hello").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
}

#[test]
fn factories_work_with_any_target() {
    // The target is generic; a test or an in-process transport can use
    // its own.
    let factory = new_service_fn(|name: &str| Ok::<_, Infallible>(name.len()));
    assert_eq!(factory.new_service("worker-3"), Ok(8));
    assert!(format!("{factory:?}").starts_with("NewServiceFn { f: \""));
    let ignoring = || Ok::<_, Infallible>(0_usize);
    assert_eq!(NewService::<str>::new_service(&ignoring, "x"), Ok(0));
}

#[test]
fn connection_info_is_plain_data() {
    let c = conn("192.0.2.7:51000", "192.0.2.1:7000");
    let copy = c;
    assert_eq!(copy, c);
    assert_eq!(c.peer.port(), 51000);
    assert_eq!(c.local.port(), 7000);
    assert!(format!("{c:?}").contains("192.0.2.7:51000"));
}
