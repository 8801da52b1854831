//! How to start an engine: [`EngineConfig`], its defaults, [`EngineError`] and the one place a
//! configuration is validated ([`EngineConfig::validate`]). It must not start anything.

use std::sync::Arc;

use crate::journal::{Durability, JournalError, SyncMode};
use crate::routing::Linearisation;

use super::Clock;

/// How to start an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Shard threads. SKUs are spread over them by hash.
    pub shards: usize,
    /// Batches each shard's queue holds before submitters are answered `Busy`.
    pub queue_capacity_batches: usize,
    /// The least time between two idle wake-ups of a shard. With the system clock an idle
    /// shard wakes only when its next hold falls due (no holds: never); with a manual clock,
    /// which moves unseen, it looks at the clock this often.
    pub tick_interval_ms: u64,
    pub clock: Clock,
    /// SKUs the availability mirror can hold (beyond that, no fast path for the extra SKUs).
    pub mirror_capacity_skus: usize,
    /// At most this many queued batches are taken by a shard thread in one go.
    pub max_batches_per_wakeup: usize,
    /// Orders each shard (and the order directory) allocates room for at start, so a sale does not
    /// pause to grow a table of millions of entries. Reserved memory is paid for in page faults
    /// as orders first touch it; past this capacity tables grow by doubling, with a pause
    /// proportional to their size on that shard. Size it for the sale's expected orders.
    pub orders_capacity_per_shard: usize,
    /// Whether (and how) applied commands are journaled to disk; see [`crate::journal`].
    pub durability: Durability,
    /// For tests: records the order every command was applied in (see [`Linearisation`]).
    pub linearisation: Option<Arc<Linearisation>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            shards: 2,
            queue_capacity_batches: 4096,
            tick_interval_ms: 10,
            clock: Clock::System,
            mirror_capacity_skus: 1 << 16,
            max_batches_per_wakeup: 64,
            orders_capacity_per_shard: 1 << 16,
            durability: Durability::Memory,
            linearisation: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid engine config: {0}")]
    InvalidConfig(&'static str),
    #[error("could not start shard thread {shard}: {source}")]
    Spawn {
        shard: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("durability: {0}")]
    Journal(#[from] JournalError),
}

impl EngineConfig {
    /// The one check of a configuration, before anything is opened or started.
    pub(crate) fn validate(&self) -> Result<(), EngineError> {
        if self.shards == 0 || self.shards > 1024 {
            return Err(EngineError::InvalidConfig(
                "shards must be between 1 and 1024",
            ));
        }
        if self.queue_capacity_batches == 0 {
            return Err(EngineError::InvalidConfig(
                "queue_capacity_batches must be at least 1",
            ));
        }
        if self.tick_interval_ms == 0 {
            return Err(EngineError::InvalidConfig(
                "tick_interval_ms must be at least 1",
            ));
        }
        if let Durability::Journal(settings) = &self.durability
            && let SyncMode::Async { fsync_interval_ms } = settings.mode
            && fsync_interval_ms == 0
        {
            return Err(EngineError::InvalidConfig(
                "fsync_interval_ms must be at least 1",
            ));
        }
        Ok(())
    }
}
