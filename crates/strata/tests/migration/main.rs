//! Programs a tokio user would write first, written against the `strata`
//! facade alone, each over real sockets on 127.0.0.1 and checking every
//! byte or message: a chat server, a proxy that propagates half-closes, a
//! pipelined length-delimited RPC stopped mid-load, the same behind
//! middleware with per-connection state, UDP with retries, and a runtime
//! used from other threads. (From a review that ported such programs; the
//! gaps it met are noted where the programs work around them.) Timeouts
//! are hang guards, not speed bounds.

mod chat;
mod proxy;
mod rpc;
mod rpc_middleware;
mod threads;
mod udp;
