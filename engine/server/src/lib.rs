//! flashsale-server: the network front doors around the engine, and the `flashsale-engine`
//! binary (`src/main.rs`).
//!
//! [`serve`] starts an [`Engine`], creates the catalog's SKUs, and serves the HTTP/JSON API
//! ([`http`], through the batching [`gateway`]) and the binary TCP protocol ([`tcp`]) until
//! told to stop, then stops accepting, drains what is in flight and shuts the engine down. It
//! owns the listeners, connection limits and timeouts ([`limits`], [`io`]), the Prometheus
//! [`metrics`], the request [`capture`] and the shutdown sequence.
//!
//! Every business decision stays in the engine: this crate must not reach into shards, the
//! runtime's internals or the types' rules — it sees `flashsale-engine`'s public API, the
//! tables of `flashsale-core` and the codec of `flashsale-wire`, and nothing depends on it
//! (the load generator neither: it reads catalogs through `flashsale_engine::catalog`).
//!
//! [`serve`] is what the binary runs and what integration tests call (bind to port 0, read the
//! bound addresses off the [`RunningServer`]).

pub mod capture;
pub mod gateway;
pub mod http;
pub mod io;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod tcp;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use flashsale_core::types::{Command, Outcome, SkuConfig, SkuView};
use flashsale_engine::journal::{Durability, SyncMode};
use flashsale_engine::runtime::{Engine, EngineConfig, EngineError};
use gateway::Gateway;
use limits::{AdminToken, UserRateLimiter};
use metrics::{EngineSnapshot, Metrics};

/// Everything the server needs to start. `Default` binds both ports on 127.0.0.1:0.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub http_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    pub engine: EngineConfig,
    /// Without a token the admin endpoints answer 401.
    pub admin_token: AdminToken,
    /// SKUs to create at start.
    pub catalog: Vec<SkuConfig>,
    /// Open connections per transport; more are refused at once.
    pub max_connections: usize,
    /// A connection that sends nothing (and takes nothing) for this long is closed.
    pub idle_timeout_ms: u64,
    /// An HTTP request's headers, a TCP handshake, and each TCP frame (from its first byte)
    /// must arrive within this, however slowly their bytes trickle in.
    pub header_read_timeout_ms: u64,
    /// An HTTP request body must arrive within this.
    pub body_read_timeout_ms: u64,
    /// How long an HTTP connection being closed keeps reading (and dropping) what its client
    /// still sends, so that an early answer (413) is read instead of lost to a reset.
    pub lingering_close_ms: u64,
    /// Largest HTTP request body; larger ones answer 413.
    pub max_body_bytes: usize,
    /// On shutdown, connections get this long to finish what is in flight.
    pub drain_timeout_ms: u64,
    /// Commands pending in the HTTP gateway batcher or in the engine through it before it
    /// answers busy.
    pub gateway_queue_capacity: usize,
    /// Largest engine batch the gateway submits.
    pub gateway_max_batch: usize,
    /// TCP read buffer per connection (bytes read per syscall at most).
    pub tcp_read_buffer_bytes: usize,
    /// Batches a TCP connection may have in the engine before it stops reading.
    pub tcp_max_inflight_batches: usize,
    /// Requests per second per user id (reserve, pay, cancel); `None` disables.
    pub user_rate_limit_per_s: Option<u32>,
    /// Users the rate limiter tracks before it forgets full buckets.
    pub rate_limit_max_users: usize,
    /// SKUs (the lowest ids) that get their own gauges in `/metrics` (`serve --metrics-sku-limit`).
    pub metrics_sku_limit: usize,
    /// Records every command the front doors hand to the engine (`serve --capture`).
    pub capture: Option<Arc<capture::Capture>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        ServerConfig {
            http_addr: local,
            tcp_addr: local,
            engine: EngineConfig::default(),
            admin_token: AdminToken::default(),
            catalog: Vec::new(),
            max_connections: 10_000,
            idle_timeout_ms: 60_000,
            header_read_timeout_ms: 5_000,
            body_read_timeout_ms: 10_000,
            lingering_close_ms: 2_000,
            max_body_bytes: 16 * 1024,
            drain_timeout_ms: 10_000,
            gateway_queue_capacity: 65_536,
            gateway_max_batch: 1024,
            tcp_read_buffer_bytes: 64 * 1024,
            tcp_max_inflight_batches: 16,
            user_rate_limit_per_s: None,
            rate_limit_max_users: 1 << 20,
            metrics_sku_limit: 64,
            capture: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("catalog sku {sku_id} was refused by the engine: {code}")]
    Catalog { sku_id: u32, code: &'static str },
    #[error("invalid server config: {0}")]
    Config(&'static str),
}

/// State every connection shares.
pub(crate) struct Shared {
    pub engine: Engine,
    pub gateway: Gateway,
    pub metrics: Arc<Metrics>,
    pub admin_token: AdminToken,
    pub rate_limiter: Option<UserRateLimiter>,
    pub config: ServerConfig,
}

impl Shared {
    /// Hands commands that just arrived to the capture, if one is running (never blocks).
    pub fn capture(&self, commands: &[Command]) {
        if let Some(capture) = &self.config.capture {
            capture.record(commands);
        }
    }

    /// Reads the engine's figures for `/metrics`: stats plus every SKU's view, queried in one
    /// batch.
    pub async fn engine_snapshot(&self) -> EngineSnapshot {
        let stats = self.engine.stats();
        let queries: Vec<Command> = self
            .engine
            .published_availability()
            .into_iter()
            .map(|(sku_id, _)| Command::QuerySku { sku_id })
            .collect();
        let skus: Vec<SkuView> = if queries.is_empty() {
            Vec::new()
        } else {
            self.engine
                .submit_async(queries)
                .await
                .into_iter()
                .filter_map(|outcome| outcome.sku().copied())
                .collect()
        };
        EngineSnapshot {
            busy_rejections: stats.busy_rejections,
            fast_sold_out: stats.fast_sold_out,
            fast_unknown_order: stats.fast_unknown_order,
            expired_holds: stats.expired_holds,
            queue_depths: stats.queue_depths,
            queue_capacity: self.config.engine.queue_capacity_batches,
            order_capacity_per_shard: self.config.engine.orders_capacity_per_shard,
            durability_mode: durability_mode(&self.config.engine.durability),
            skus,
            per_sku_limit: self.config.metrics_sku_limit,
            capture: self
                .config
                .capture
                .as_ref()
                .map(|c| (c.records(), c.dropped())),
            durability_failure: self.engine.durability_failure(),
        }
    }
}

/// The `mode` label of `flashsale_durability_mode`.
fn durability_mode(durability: &Durability) -> &'static str {
    match durability {
        Durability::Memory => "memory",
        Durability::Journal(config) => match config.mode {
            SyncMode::Sync => "sync",
            SyncMode::Async { .. } => "async",
        },
    }
}

/// Tells a running server to stop. Cheap to clone.
#[derive(Clone)]
pub struct ShutdownHandle {
    sender: Arc<watch::Sender<bool>>,
}

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.sender.send_replace(true);
    }
}

/// A server that is accepting connections.
pub struct RunningServer {
    pub http_addr: SocketAddr,
    pub tcp_addr: SocketAddr,
    engine: Engine,
    metrics: Arc<Metrics>,
    shutdown: ShutdownHandle,
    task: JoinHandle<()>,
}

impl RunningServer {
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Waits until the server has stopped (after a shutdown was asked for).
    pub async fn wait(self) {
        // A panicked server task has already reported itself; there is nothing left to stop.
        let _ = self.task.await;
    }

    /// Stops accepting, drains in-flight requests, shuts the engine down.
    pub async fn shutdown(self) {
        self.shutdown.shutdown();
        self.wait().await;
    }
}

/// Starts the engine and both listeners. Returns once they are bound.
pub async fn serve(config: ServerConfig) -> Result<RunningServer, ServerError> {
    if config.max_connections == 0 || config.tcp_max_inflight_batches == 0 {
        return Err(ServerError::Config(
            "max_connections and tcp_max_inflight_batches must be at least 1",
        ));
    }
    if config.tcp_read_buffer_bytes < 1024 {
        return Err(ServerError::Config(
            "tcp_read_buffer_bytes must be at least 1024",
        ));
    }
    let engine = Engine::start(config.engine.clone())?;
    match start(engine.clone(), config).await {
        Ok(server) => Ok(server),
        Err(error) => {
            let engine_to_stop = engine.clone();
            let _ = tokio::task::spawn_blocking(move || engine_to_stop.shutdown()).await;
            Err(error)
        }
    }
}

async fn start(engine: Engine, config: ServerConfig) -> Result<RunningServer, ServerError> {
    if !config.catalog.is_empty() {
        // The catalog seeds SKUs the engine does not have. One recovered from a journal is kept
        // as recovered: upserting the file's settings again would undo the restocks and changes
        // made through the admin API before the restart.
        let queries = config
            .catalog
            .iter()
            .map(|sku| Command::QuerySku { sku_id: sku.sku_id })
            .collect::<Vec<_>>();
        let existing = engine.submit_async(queries).await;
        let mut missing = Vec::with_capacity(config.catalog.len());
        for (sku, outcome) in config.catalog.iter().zip(existing) {
            if matches!(outcome, Outcome::Sku(_)) {
                tracing::info!(
                    sku_id = sku.sku_id,
                    "catalog sku already exists (recovered): kept as recovered; change it through the admin API"
                );
            } else {
                missing.push(*sku);
            }
        }
        let commands = missing
            .iter()
            .map(|sku| Command::UpsertSku(*sku))
            .collect::<Vec<_>>();
        if let Some(capture) = &config.capture {
            capture.record(&commands);
        }
        let outcomes = if commands.is_empty() {
            Vec::new()
        } else {
            engine.submit_async(commands).await
        };
        for (sku, outcome) in missing.iter().zip(outcomes) {
            if let Outcome::Rejected(reject) = outcome {
                return Err(ServerError::Catalog {
                    sku_id: sku.sku_id,
                    code: reject.code(),
                });
            }
        }
    }
    let http_listener = TcpListener::bind(config.http_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.http_addr,
            source,
        })?;
    let tcp_listener =
        TcpListener::bind(config.tcp_addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.tcp_addr,
                source,
            })?;
    let local = |listener: &TcpListener, addr| {
        listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })
    };
    let http_addr = local(&http_listener, config.http_addr)?;
    let tcp_addr = local(&tcp_listener, config.tcp_addr)?;

    let gateway = Gateway::new(
        engine.clone(),
        config.gateway_queue_capacity,
        config.gateway_max_batch,
    );
    let metrics = Arc::new(Metrics::new());
    let shared = Arc::new(Shared {
        engine: engine.clone(),
        gateway,
        metrics: metrics.clone(),
        admin_token: config.admin_token.clone(),
        rate_limiter: config
            .user_rate_limit_per_s
            .map(|rate| UserRateLimiter::new(rate, config.rate_limit_max_users)),
        config: config.clone(),
    });
    let (sender, receiver) = watch::channel(false);
    let http_task = tokio::spawn(http::run(
        http_listener,
        shared.clone(),
        Arc::new(Semaphore::new(config.max_connections)),
        receiver.clone(),
    ));
    let tcp_task = tokio::spawn(tcp::run(
        tcp_listener,
        shared.clone(),
        Arc::new(Semaphore::new(config.max_connections)),
        receiver,
    ));
    drop(shared);
    tracing::info!(%http_addr, %tcp_addr, shards = engine.shard_count(), "flashsale server listening");
    let engine_for_task = engine.clone();
    let task = tokio::spawn(async move {
        // Each acceptor returns after it stopped accepting and its connections drained.
        let _ = tokio::join!(http_task, tcp_task);
        let _ = tokio::task::spawn_blocking(move || engine_for_task.shutdown()).await;
        tracing::info!("flashsale server stopped");
    });
    Ok(RunningServer {
        http_addr,
        tcp_addr,
        engine,
        metrics,
        shutdown: ShutdownHandle {
            sender: Arc::new(sender),
        },
        task,
    })
}
