//! strata-rt
