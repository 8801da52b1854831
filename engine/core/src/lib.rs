//! flashsale-core: the pure core of flashsale — the contract and the state machine.
//!
//! It owns the contract types ([`types`]: `Command`, `Outcome`, `Reject`, the views, and the
//! two tables everything else derives from — the command table `CommandKind::spec` and the
//! outcome table `OutcomeCode::spec`), the single-writer [`Shard`] (reserve, pay/cancel,
//! expiry; its snapshot codec in `shard/snapshot.rs`), the `slot_index` it stores its orders with,
//! and, behind the `testing` feature, the reference [`model`] the property tests compare it
//! with.
//!
//! It must not touch threads, clocks, files, sockets or logging: time is an argument, and
//! everything is a deterministic function of its inputs. It depends on no async runtime, no
//! HTTP, no CLI and no logging crate (the root test `tests/crate_edges.rs` checks it), so
//! everything else can depend on it.

#[cfg(any(test, feature = "testing"))]
pub mod model;
pub mod shard;
mod slot_index;
pub mod types;
pub mod units;

pub use shard::Shard;
pub use types::*;
