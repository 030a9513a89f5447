//! Shared pieces of the side-by-side benchmarks: timing, process CPU
//! accounting, and table printing. Each benchmark is a binary in `src/bin`.

pub mod args;
pub mod loadgen;
pub mod mio_line;
pub mod report;
pub mod server_proc;
pub mod tokio_line;
