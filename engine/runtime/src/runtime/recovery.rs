//! Recovery at start: opens the data directory, rebuilds every shard from its snapshot and
//! journal (shards in parallel) and starts the engine with each journal continuing. It owns only
//! that orchestration and its log lines; the journal's formats and rules are [`crate::journal`]'s.

use crate::journal::{Durability, JournalStart, RecoveryReport};

use super::{Engine, EngineConfig, EngineError};

impl Engine {
    /// Recovers a journaled engine: opens (or creates) the data directory, rebuilds every
    /// shard from its newest valid snapshot and the journal after it (shards in parallel),
    /// truncates torn tails, and starts with the journal threads continuing each journal.
    /// Fails, naming the file and offset, on a corrupt record in the middle of a journal.
    /// Without a journal configured it is [`Engine::start`] with no reports.
    pub fn recover(config: EngineConfig) -> Result<(Engine, Vec<RecoveryReport>), EngineError> {
        let Durability::Journal(settings) = &config.durability else {
            return Engine::start(config).map(|engine| (engine, Vec::new()));
        };
        config.validate()?;
        let lock = crate::journal::open_data_dir(&settings.dir, config.shards)?;
        let dir = settings.dir.as_path();
        let capacity = config.orders_capacity_per_shard;
        let recovered = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..config.shards)
                .map(|index| {
                    scope.spawn(move || {
                        crate::journal::recover_shard(dir, index, config.shards, capacity)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect::<Vec<_>>()
        });
        let mut shards = Vec::with_capacity(config.shards);
        let mut journals = Vec::with_capacity(config.shards);
        let mut reports = Vec::with_capacity(config.shards);
        for (index, recovery) in recovered.into_iter().enumerate() {
            let recovery = recovery?;
            let start = JournalStart::resume(dir, index, &recovery, settings)?;
            tracing::info!(
                shard = index,
                snapshot = ?recovery.report.snapshot,
                records = recovery.report.records_replayed,
                commands = recovery.report.commands_replayed,
                torn_tail = ?recovery.report.torn_tail,
                "shard recovered"
            );
            for (path, reason) in &recovery.report.invalid_snapshots {
                tracing::warn!(path = %path.display(), %reason, "snapshot skipped: invalid");
            }
            journals.push(start);
            shards.push(recovery.shard);
            reports.push(recovery.report);
        }
        let engine = Engine::start_inner(config, shards, journals, Some(lock))?;
        Ok((engine, reports))
    }
}
