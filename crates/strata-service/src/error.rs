//! The boxed error type, for those who want one.

/// A boxed error that can cross threads: `Box<dyn Error + Send + Sync>`.
///
/// Nothing in this crate forces it: each service keeps its own error type.
/// It is here for stacks where one catch-all error is the simplest choice,
/// for example `svc.map_err(BoxError::from)`; callers get the original
/// error back with [`downcast_ref`](std::error::Error#method.downcast_ref).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
