//! flashsale-engine: a flash-sale order engine.
//!
//! Stock lives in single-writer [`Shard`]s — pure state machines that take commands and a time
//! and return outcomes. The [`Engine`] runtime runs one thread per shard, routes batches to them
//! over bounded channels, answers sold-out floods from a lock-free [`AvailabilityMirror`], and
//! hands each batch's outcomes back in order. See `docs/ARCHITECTURE.md` for the whole picture.

pub mod client;
mod directory;
pub mod journal;
pub mod mirror;
#[cfg(any(test, feature = "testing"))]
pub mod model;
pub mod protocol;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod shard;
mod slot_index;
pub mod trace;
pub mod types;

pub use mirror::AvailabilityMirror;
pub use routing::{Applied, Linearisation, Stream};
pub use runtime::{Clock, Engine, EngineConfig, EngineError, EngineStats, shard_of_sku};
pub use shard::Shard;
pub use types::*;
