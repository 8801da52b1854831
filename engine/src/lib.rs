//! flashsale-engine: a flash-sale order engine. Stock lives in single-writer shards (pure state
//! machines); the runtime routes batches of commands to shard threads over bounded channels.

pub mod types;

pub use types::*;
