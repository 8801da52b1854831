//! The `flashsale-engine` binary: parses the command line, sets up logging and the tokio
//! runtime, loads the catalog, runs [`flashsale_engine::server::serve`] and stops it cleanly
//! on SIGINT/SIGTERM (exit code 0 after the drain). It owns no server logic of its own and must
//! never log the admin token.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use flashsale_engine::server::catalog::load_catalog;
use flashsale_engine::server::limits::AdminToken;
use flashsale_engine::server::{ServerConfig, serve};
use flashsale_engine::{Clock, EngineConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "flashsale-engine",
    version,
    about = "Flash-sale order engine server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP/JSON API and the binary TCP protocol.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Binary TCP protocol listen address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    tcp: SocketAddr,
    /// Shard threads.
    #[arg(long, default_value_t = 2)]
    shards: usize,
    /// Admin bearer token; without one the admin endpoints answer 401.
    #[arg(long, env = "FLASHSALE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// SKUs to create at start (TOML, see docs/catalog.example.toml).
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Requests per second per user id (reserve, pay, cancel); off when absent.
    #[arg(long)]
    user_rate_limit: Option<u32>,
    /// Open connections allowed per transport.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Close a connection idle for this long.
    #[arg(long, default_value_t = 60_000)]
    idle_timeout_ms: u64,
    /// Batches each shard queue holds before answering busy.
    #[arg(long, default_value_t = 4096)]
    queue_capacity_batches: usize,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    worker_threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let Cli {
        command: Command::Serve(args),
    } = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all().thread_name("flashsale-io");
    if let Some(threads) = args.worker_threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build().context("cannot start the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let catalog = match &args.catalog {
        Some(path) => load_catalog(path)?,
        None => Vec::new(),
    };
    let admin_token = AdminToken::new(args.admin_token);
    if !admin_token.is_configured() {
        tracing::warn!("no admin token: admin endpoints will answer 401");
    }
    let config = ServerConfig {
        http_addr: args.http,
        tcp_addr: args.tcp,
        engine: EngineConfig {
            shards: args.shards,
            queue_capacity_batches: args.queue_capacity_batches,
            clock: Clock::system(),
            ..EngineConfig::default()
        },
        admin_token,
        catalog,
        max_connections: args.max_connections,
        idle_timeout_ms: args.idle_timeout_ms,
        user_rate_limit_per_s: args.user_rate_limit,
        ..ServerConfig::default()
    };
    let skus = config.catalog.len();
    let server = serve(config).await.context("cannot start the server")?;
    tracing::info!(
        http = %server.http_addr,
        tcp = %server.tcp_addr,
        catalog_skus = skus,
        "ready"
    );
    let handle = server.shutdown_handle();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
    }
    handle.shutdown();
    server.wait().await;
    Ok(())
}
