//! What the driver sends requests to. A `Target` takes batches of engine commands without
//! blocking and answers each batch once through a callback, with the instants it actually sent
//! and finished it. Implementations: `noop` (answers at once, to measure the generator),
//! `inproc` (an embedded engine, via its batch API), `http` (the HTTP/JSON contract), `tcp`
//! (the binary protocol), `redis` (the Redis + Lua baseline, same contract). This
//! module owns the adapter layer only; it must not pace, record or decide anything about the
//! workload.

use flashsale_engine::{Command, Outcome, SkuConfig, SkuId, SkuView};
use std::sync::Arc;
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
    pub fn label(self) -> &'static str {
        match self {
            Failure::Transport => "transport_error",
            Failure::Timeout => "timeout",
            Failure::Protocol => "protocol_error",
            Failure::RateLimited => "rate_limited",
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
            inproc_shards: 2,
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
