//! The embedded engine target: starts a `flashsale_engine::Engine` in this process and hands it
//! whole batches through its non-blocking batch API. A thin adapter; it must not add queues or
//! threads of its own.
//!
//! The engine shares the machine with the generator, so its threads start on the CPUs
//! [`Placement`] sets aside for it (on two CPUs: the one the pacer does not have), and the
//! default shard count is [`Placement::inproc_shards`] (one per CPU left to the engine).

use super::{Answers, Completion, Done, Exchange, Target, TargetError};
use crate::placement::{self, Placement};
use flashsale_engine::{Command, Engine, EngineConfig, Outcome, SkuConfig, SkuId, SkuView};
use std::time::Instant;

pub struct InProc {
    engine: Engine,
    shards: usize,
}

impl InProc {
    /// `orders_capacity_per_shard`: room for the orders the run can create, so the engine does
    /// not stop mid-peak to grow its tables (`None`: the engine's default).
    pub fn start(
        shards: usize,
        orders_capacity_per_shard: Option<usize>,
    ) -> Result<InProc, TargetError> {
        let defaults = EngineConfig::default();
        let config = EngineConfig {
            shards,
            // SKUs beyond the mirror's capacity lose the fast sold-out path only.
            mirror_capacity_skus: 1 << 17,
            orders_capacity_per_shard: orders_capacity_per_shard
                .unwrap_or(defaults.orders_capacity_per_shard),
            ..defaults
        };
        let cpus = Placement::for_this_machine(true).engine_cpus;
        let engine = placement::spawning_on(&cpus, || Engine::start(config))?;
        Ok(InProc { engine, shards })
    }
}

impl Target for InProc {
    fn describe(&self) -> String {
        format!("inproc ({} shards)", self.shards)
    }
    fn max_batch(&self) -> usize {
        8192
    }
    fn keeps_state(&self) -> bool {
        true
    }
    fn setup(&self, catalog: &[SkuConfig]) -> Result<(), TargetError> {
        for chunk in catalog.chunks(4096) {
            let commands = chunk.iter().map(|c| Command::UpsertSku(*c)).collect();
            let outcomes = self.engine.submit_wait(commands);
            for (config, outcome) in chunk.iter().zip(outcomes) {
                match outcome {
                    Outcome::SkuCreated(_) | Outcome::Sku(_) => {}
                    other => {
                        return Err(TargetError::Setup {
                            sku_id: config.sku_id,
                            detail: format!("engine answered {}", other.label()),
                        });
                    }
                }
            }
        }
        Ok(())
    }
    fn submit(&self, commands: Vec<Command>, done: Done) {
        let sent_at = Instant::now();
        self.engine.submit(commands, move |outcomes| {
            done(Completion {
                result: Ok(outcomes),
                failed: Vec::new(),
                sent_at,
                done_at: Instant::now(),
            })
        });
    }
    /// The engine's batch API takes its own command vector and answers in one of its own (both
    /// freed on its side), so the exchange's buffers are copied into and out of those: two
    /// allocations per batch that only an engine API taking a lent buffer would remove.
    fn submit_exchange(&self, mut exchange: Exchange, answers: &Answers) {
        let answers = answers.clone();
        let commands = exchange.commands.clone();
        exchange.sent_at = Instant::now();
        self.engine.submit(commands, move |outcomes| {
            exchange.done_at = Instant::now();
            exchange.outcomes.clear();
            exchange.outcomes.extend(outcomes);
            exchange.failure = None;
            answers.deliver(exchange);
        });
    }
    fn runs_in_process(&self) -> bool {
        true
    }
    fn query_skus(&self, sku_ids: &[SkuId]) -> Result<Vec<Option<SkuView>>, TargetError> {
        let mut views = Vec::with_capacity(sku_ids.len());
        for chunk in sku_ids.chunks(4096) {
            let commands = chunk
                .iter()
                .map(|&sku_id| Command::QuerySku { sku_id })
                .collect();
            for (sku_id, outcome) in chunk.iter().zip(self.engine.submit_wait(commands)) {
                match outcome {
                    Outcome::Sku(v) | Outcome::SkuCreated(v) => views.push(Some(*v)),
                    Outcome::Rejected(flashsale_engine::Reject::UnknownSku) => views.push(None),
                    other => {
                        return Err(TargetError::Query {
                            sku_id: *sku_id,
                            detail: format!("engine answered {}", other.label()),
                        });
                    }
                }
            }
        }
        Ok(views)
    }
    fn shutdown(&self) {
        self.engine.shutdown();
    }
}
