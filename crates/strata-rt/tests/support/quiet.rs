//! Silencing the panics a test causes on purpose. Also included by path
//! from other crates' tests.

/// Silences the panics the tests cause on purpose (their messages start
/// with `test:`); others are reported as usual.
pub fn quiet() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if !msg.starts_with("test:") {
            default(info);
        }
    }));
}
