//! Root package of the flashsale workspace. It owns no code of its own: it exists so that the
//! cross-crate integration tests in `tests/` and the criterion benchmarks in `benches/` can
//! depend on both `flashsale-engine` and `flashsale-loadgen`. It must not grow logic; anything
//! reusable belongs in one of the two crates.

pub use flashsale_engine as engine;
pub use flashsale_loadgen as loadgen;
