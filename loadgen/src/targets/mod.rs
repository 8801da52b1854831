//! What the driver sends requests to. A `Target` takes batches of engine commands without
//! blocking and answers each batch once, with the instants it actually sent and finished it.
//! Implementations: `noop` (answers at once, to measure the generator), `inproc` (an embedded
//! engine, via its batch API), `http` (the HTTP/JSON contract), `tcp` (the binary protocol),
//! `redis` (the Redis + Lua baseline, same contract). This module owns the adapter layer only:
//! the trait, the [`Exchange`] a batch travels in and the [`Answers`] it comes back through; it
//! must not pace, record or decide anything about the workload.
//!
//! The driver lends each batch as an [`Exchange`] whose buffers come from a pool and go back to
//! it once recorded, so its hot loop allocates nothing per batch. A target either fills the
//! exchange in place (`submit_exchange`: noop, inproc) or keeps the simpler `submit` with a
//! callback, which the default `submit_exchange` adapts (one allocation per batch: fine for a
//! network client, which allocates to serialise anyway).

use crate::driver::schedule::Meta;
use crossbeam_channel::{Sender, TrySendError};
use flashsale_engine::{Command, Outcome, OutcomeCode, SkuConfig, SkuId, SkuView};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

pub mod http;
pub mod inproc;
pub mod limited;
pub mod noop;
pub mod redis;
pub mod tcp;

/// Why a whole batch got no outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// Connection refused, reset or closed.
    Transport,
    /// No answer within the client's timeout.
    Timeout,
    /// An answer the client could not understand.
    Protocol,
    /// The server's per-user rate limit refused the request.
    RateLimited,
    /// The server answered with an error of its own protocol (not an engine outcome).
    Server,
}

impl Failure {
    pub const ALL: [Failure; 5] = [
        Failure::Transport,
        Failure::Timeout,
        Failure::Protocol,
        Failure::RateLimited,
        Failure::Server,
    ];

    /// The engine's outcome code for a failure that is a server answer of the outcome table.
    pub const fn outcome_code(self) -> Option<OutcomeCode> {
        match self {
            Failure::RateLimited => Some(OutcomeCode::RateLimited),
            Failure::Transport | Failure::Timeout | Failure::Protocol | Failure::Server => None,
        }
    }

    pub const fn label(self) -> &'static str {
        match self {
            Failure::Transport => "transport_error",
            Failure::Timeout => "timeout",
            Failure::Protocol => "protocol_error",
            Failure::RateLimited => OutcomeCode::RateLimited.as_str(),
            Failure::Server => "server_error",
        }
    }
}

/// One batch's answer.
#[derive(Debug)]
pub struct Completion {
    /// One outcome per command in input order, or why there is none.
    pub result: Result<Vec<Outcome>, Failure>,
    /// Requests of an otherwise answered batch that got no outcome (index, why); their slot
    /// in `result` holds a placeholder that must be ignored. Sorted by index; usually empty.
    pub failed: Vec<(usize, Failure)>,
    /// When the batch actually left (after any wait for a connection).
    pub sent_at: Instant,
    pub done_at: Instant,
}

/// Called once per submitted batch, on whatever thread finished it: keep it cheap.
pub type Done = Box<dyn FnOnce(Completion) + Send + 'static>;

/// One batch's round trip: the commands to send and room for their answer. The driver lends it
/// to [`Target::submit_exchange`]; the target fills `outcomes` (or `failure`), `failed`,
/// `sent_at` and `done_at`, and hands it to [`Answers::deliver`] exactly once. Every buffer
/// keeps its capacity from one batch to the next, so a reused exchange allocates nothing.
#[derive(Debug)]
pub struct Exchange {
    pub commands: Vec<Command>,
    /// One outcome per command in input order (empty when `failure` is set).
    pub outcomes: Vec<Outcome>,
    /// Why the whole batch got no outcome.
    pub failure: Option<Failure>,
    /// As [`Completion::failed`]: requests of an answered batch that got no outcome.
    pub failed: Vec<(usize, Failure)>,
    pub sent_at: Instant,
    pub done_at: Instant,
    /// The driver's record of each request (intended time, origin); targets leave it alone.
    pub(crate) metas: Vec<Meta>,
    /// Filled by the recorder on the way back: the follow-ups this batch's answers caused.
    pub(crate) follow_ups: Vec<Meta>,
}

impl Exchange {
    /// An empty exchange with room for `capacity` requests in every buffer, its memory written
    /// once so that first use does not fault pages in.
    pub(crate) fn with_capacity(capacity: usize) -> Exchange {
        let now = Instant::now();
        let mut exchange = Exchange {
            commands: Vec::with_capacity(capacity),
            outcomes: Vec::with_capacity(capacity),
            failure: None,
            failed: Vec::new(),
            sent_at: now,
            done_at: now,
            metas: Vec::with_capacity(capacity),
            follow_ups: Vec::with_capacity(capacity),
        };
        let filler = Meta::default();
        exchange.metas.resize(capacity, filler);
        exchange.follow_ups.resize(capacity, filler);
        exchange
            .commands
            .resize(capacity, Command::QuerySku { sku_id: 0 });
        exchange
            .outcomes
            .resize(capacity, Outcome::Rejected(flashsale_engine::Reject::Busy));
        exchange.clear();
        exchange.follow_ups.clear();
        exchange
    }

    /// Empties the batch and its answer (not the follow-ups), keeping every buffer's capacity.
    pub(crate) fn clear(&mut self) {
        self.commands.clear();
        self.outcomes.clear();
        self.failure = None;
        self.failed.clear();
        self.metas.clear();
    }

    /// Takes a callback-style answer into this exchange's own buffers.
    pub fn complete(&mut self, completion: Completion) {
        self.outcomes.clear();
        self.failure = None;
        match completion.result {
            Ok(outcomes) => self.outcomes.extend(outcomes),
            Err(failure) => self.failure = Some(failure),
        }
        self.failed.clear();
        self.failed.extend_from_slice(&completion.failed);
        self.sent_at = completion.sent_at;
        self.done_at = completion.done_at;
    }

    /// Requests in the batch.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

/// Where targets hand answered exchanges back (to the driver's recorder). Cheap to clone.
///
/// Two lanes: a bounded queue, allocated once, that every answer takes while the recorder keeps
/// up, and an unbounded overflow taken only when that queue is full, so a target (or the pacer,
/// for a target that answers at once) never blocks on a slow recorder and nothing is dropped.
#[derive(Clone)]
pub struct Answers {
    queue: Sender<Exchange>,
    overflow: Sender<Exchange>,
    /// Requests delivered so far (the recorder's backlog is this minus what it recorded).
    delivered: Arc<AtomicU64>,
}

impl Answers {
    pub(crate) fn new(
        queue: Sender<Exchange>,
        overflow: Sender<Exchange>,
        delivered: Arc<AtomicU64>,
    ) -> Answers {
        Answers {
            queue,
            overflow,
            delivered,
        }
    }

    /// Hands an answered exchange to the recorder. After the run's recorder has stopped (past
    /// the drain timeout) the answer is dropped: it counts as unanswered.
    pub fn deliver(&self, exchange: Exchange) {
        self.delivered
            .fetch_add(exchange.metas.len() as u64, Ordering::Release);
        match self.queue.try_send(exchange) {
            Ok(()) => {}
            Err(TrySendError::Full(exchange)) => {
                let _ = self.overflow.send(exchange);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Setting up or querying a target failed.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "invalid target `{0}`: expected inproc, noop, limited:RATE, http://HOST:PORT, tcp://HOST:PORT or redis://HOST:PORT"
    )]
    Spec(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("engine failed to start: {0}")]
    Engine(#[from] flashsale_engine::EngineError),
    #[error("catalog setup failed for SKU {sku_id}: {detail}")]
    Setup { sku_id: SkuId, detail: String },
    #[error("query of SKU {sku_id} failed: {detail}")]
    Query { sku_id: SkuId, detail: String },
    #[error("network target {target}: {detail}")]
    Network { target: String, detail: String },
}

/// A system under load.
pub trait Target: Send + Sync {
    /// A short description for reports (`inproc (2 shards)`, `http://127.0.0.1:8080`).
    fn describe(&self) -> String;
    /// Largest batch `submit` should be given (1 for request/response protocols).
    fn max_batch(&self) -> usize;
    /// Whether the target keeps sale state that can be verified after the run.
    fn keeps_state(&self) -> bool;
    /// Creates (or replaces) the catalog before the run.
    fn setup(&self, catalog: &[SkuConfig]) -> Result<(), TargetError>;
    /// Sends a batch; never blocks for the answer (it may wait for a free connection).
    fn submit(&self, commands: Vec<Command>, done: Done);
    /// Sends `exchange.commands` and, once answered, fills the exchange and hands it to
    /// `answers`; never blocks for the answer. The default goes through [`Target::submit`]
    /// (a copy of the commands and a boxed callback per batch); targets on the hot path fill
    /// the exchange in place instead.
    fn submit_exchange(&self, mut exchange: Exchange, answers: &Answers) {
        let commands = exchange.commands.clone();
        let answers = answers.clone();
        self.submit(
            commands,
            Box::new(move |completion| {
                exchange.complete(completion);
                answers.deliver(exchange);
            }),
        );
    }
    /// Whether the target runs threads of its own in this process (the embedded engine), which
    /// the generator's threads then share the machine with; see [`crate::placement`].
    fn runs_in_process(&self) -> bool {
        false
    }
    /// Whether the target is reached over the network (its server may share this machine, so
    /// the pacer must not take a whole CPU from it by spinning between ticks).
    fn is_remote(&self) -> bool {
        false
    }
    /// Current state of each SKU (None: the target does not know it).
    fn query_skus(&self, sku_ids: &[SkuId]) -> Result<Vec<Option<SkuView>>, TargetError>;
    /// Stops the target's own threads (a no-op for remote targets).
    fn shutdown(&self);
}

/// Options that shape a target.
#[derive(Clone, Debug)]
pub struct TargetOptions {
    pub connections: usize,
    pub admin_token: Option<String>,
    pub inproc_shards: usize,
    /// Orders each embedded shard allocates room for up front (see
    /// `EngineConfig::orders_capacity_per_shard`); `None` keeps the engine's default.
    pub inproc_orders_capacity_per_shard: Option<usize>,
    pub request_timeout_ms: u64,
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            connections: 64,
            admin_token: None,
            inproc_shards: crate::placement::Placement::for_this_machine(true).inproc_shards,
            inproc_orders_capacity_per_shard: None,
            request_timeout_ms: 10_000,
        }
    }
}

/// Builds a target from its command-line spelling.
pub fn from_spec(spec: &str, options: &TargetOptions) -> Result<Arc<dyn Target>, TargetError> {
    if spec == "inproc" {
        return Ok(Arc::new(inproc::InProc::start(
            options.inproc_shards,
            options.inproc_orders_capacity_per_shard,
        )?));
    }
    if spec == "noop" {
        return Ok(Arc::new(noop::Noop));
    }
    if let Some(rate) = spec.strip_prefix("limited:") {
        let rate = limited::parse_rate(rate).ok_or_else(|| TargetError::Spec(spec.to_string()))?;
        return Ok(Arc::new(limited::Limited::start(rate)?));
    }
    if let Some(rest) = spec.strip_prefix("http://") {
        if rest.is_empty() || rest.contains('/') {
            return Err(TargetError::Spec(spec.to_string()));
        }
        return Ok(Arc::new(http::Http::connect(spec, options)?));
    }
    if spec.starts_with("tcp://") {
        return Ok(Arc::new(tcp::Tcp::connect(spec, options)?));
    }
    if spec.starts_with("redis://") {
        return Ok(Arc::new(redis::Redis::connect(spec, options)?));
    }
    Err(TargetError::Spec(spec.to_string()))
}
