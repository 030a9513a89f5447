//! strata-service: the Service trait and middleware.
