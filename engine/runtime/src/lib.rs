//! flashsale-engine: the flash-sale order engine as a library — the [`Engine`] runtime around
//! the pure shards of `flashsale-core`.
//!
//! It owns the clock, the shard threads and their bounded channels, routing with batch split
//! and reassembly (`routing`), the order directory, the lock-free [`AvailabilityMirror`] that
//! answers sold-out floods, the journal (`journal`: records, segments, group commit, snapshots,
//! recovery) and the catalog file (`catalog`). It decides no business rule (that is
//! [`Shard`]'s) and knows no network: no HTTP, no TCP listener, no CLI — those live in
//! `flashsale-server`, which depends on this crate, never the other way round.
//!
//! It is also the one crate callers name: the contract types and the shard of `flashsale-core`
//! and the codecs and client of `flashsale-wire` are re-exported here under their module
//! names (`flashsale_engine::Command`, `flashsale_engine::protocol`, …). See
//! `docs/ARCHITECTURE.md` for the whole picture.

pub mod catalog;
mod directory;
mod inbox;
pub mod journal;
pub mod mirror;
pub mod routing;
pub mod runtime;

#[cfg(feature = "testing")]
pub use flashsale_core::model;
pub use flashsale_core::{shard, types};
pub use flashsale_wire::{client, protocol, trace};

pub use mirror::AvailabilityMirror;
pub use routing::{Applied, Linearisation, Stream};
pub use runtime::{Clock, Engine, EngineConfig, EngineError, EngineStats, shard_of_sku};
pub use shard::Shard;
pub use types::*;
