//! strata-codec: turning byte streams into frames and back.
#![forbid(unsafe_code)]
