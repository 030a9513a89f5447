//! The hand-written reference: the line protocol on raw `mio`, one thread
//! per core, each with its own `SO_REUSEPORT` listener, edge-triggered,
//! responses batched into one write per readable event. It stands in for
//! the practical limit of a server on this machine.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
const MAX_LINE: usize = 8 * 1024;

struct Conn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(TcpListener::from_std(s.into()))
}

/// Binds `threads` listeners on one port and serves forever; prints
/// `listening <addr>` once bound.
pub fn serve(threads: usize) -> io::Result<()> {
    let first = bind("127.0.0.1:0".parse().unwrap())?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(bind(addr)?);
    }
    println!("listening {addr}");
    let handles: Vec<_> = listeners
        .into_iter()
        .map(|l| std::thread::spawn(move || event_loop(l)))
        .collect();
    for h in handles {
        h.join().expect("mio thread")?;
    }
    Ok(())
}

fn event_loop(mut listener: TcpListener) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            stream.set_nodelay(true)?;
                            let entry = conns.vacant_entry();
                            poll.registry().register(
                                &mut stream,
                                Token(entry.key()),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            entry.insert(Conn {
                                stream,
                                inbuf: Vec::new(),
                                out: Vec::new(),
                                out_pos: 0,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                continue;
            }
            let key = ev.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let close = handle(conn, &mut buf);
            if close {
                let mut c = conns.remove(key);
                let _ = poll.registry().deregister(&mut c.stream);
            }
        }
    }
}

/// Reads everything available, answers every complete line, writes the
/// batch. Returns whether to close the connection.
fn handle(c: &mut Conn, buf: &mut [u8]) -> bool {
    let mut eof = false;
    loop {
        match c.stream.read(buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    let mut start = 0;
    let mut fatal = false;
    while let Some(pos) = c.inbuf[start..].iter().position(|&b| b == b'\n') {
        let mut line = &c.inbuf[start..start + pos];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        start += pos + 1;
        match std::str::from_utf8(line) {
            Ok("hello") => c.out.extend_from_slice(b"world\n"),
            Ok(_) if line.len() <= MAX_LINE => c.out.extend_from_slice(b"idk\n"),
            _ => {
                c.out.extend_from_slice(b"error: bad line\n");
                fatal = true;
                break;
            }
        }
    }
    c.inbuf.drain(..start);
    if c.inbuf.len() > MAX_LINE {
        c.out.extend_from_slice(b"error: line too long\n");
        fatal = true;
    }
    // Write the whole batch (one syscall when the socket has room).
    while c.out_pos < c.out.len() {
        match c.stream.write(&c.out[c.out_pos..]) {
            Ok(n) => c.out_pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    c.out.clear();
    c.out_pos = 0;
    fatal || eof
}
