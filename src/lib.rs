//! Root package of the flashsale workspace. It owns no code of its own: it exists so that the
//! cross-crate integration tests in `tests/` and every benchmark of the project in `benches/`
//! can depend on `flashsale-engine` and `flashsale-loadgen` (and, as a dev-dependency, on
//! `flashsale-server`). It must not grow logic; anything reusable belongs in one of the crates.

pub use flashsale_engine as engine;
pub use flashsale_loadgen as loadgen;
