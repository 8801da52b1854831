//! The clock: where the runtime reads the time it hands to the shards (wall clock, or a manual
//! clock for tests and simulations). It owns only reading and moving time; it must not know
//! shards, queues or the journal.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the runtime reads the time it hands to the shards.
#[derive(Clone, Debug)]
pub enum Clock {
    /// Wall-clock epoch milliseconds.
    System,
    /// A clock that only moves when told: for tests and deterministic simulations.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub fn system() -> Clock {
        Clock::System
    }

    pub fn manual(start_ms: u64) -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(start_ms)))
    }

    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis() as u64),
            Clock::Manual(now) => now.load(Ordering::Acquire),
        }
    }

    /// Moves a manual clock to `now_ms`; a system clock ignores it.
    pub fn set_ms(&self, now_ms: u64) {
        if let Clock::Manual(now) = self {
            now.store(now_ms, Ordering::Release);
        }
    }

    /// Moves a manual clock forward by `delta_ms`; a system clock ignores it.
    pub fn advance_ms(&self, delta_ms: u64) {
        if let Clock::Manual(now) = self {
            now.fetch_add(delta_ms, Ordering::AcqRel);
        }
    }
}
