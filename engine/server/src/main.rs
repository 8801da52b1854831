//! The `flashsale-engine` binary: parses the command line, sets up logging and the tokio
//! runtime, loads the catalog, runs [`flashsale_server::serve`] and stops it cleanly
//! on SIGINT/SIGTERM (exit code 0 after the drain). It owns no server logic of its own and must
//! never log the admin token.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use flashsale_core::units::{parse_positive_duration, parse_rate_u32};
use flashsale_engine::catalog::load_catalog;
use flashsale_engine::journal::Durability;
use flashsale_engine::{Clock, EngineConfig};
use flashsale_server::capture::Capture;
use flashsale_server::limits::AdminToken;
use flashsale_server::{ServerConfig, serve};

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
    Serve(Box<ServeArgs>),
    /// Read a data directory's journal and snapshots (read-only).
    #[command(subcommand)]
    Journal(JournalCommand),
}

#[derive(Subcommand)]
enum JournalCommand {
    /// Print every snapshot and record readably.
    Inspect { dir: PathBuf },
    /// Check every CRC, sequence and snapshot; report the first problem with file and offset.
    Verify { dir: PathBuf },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DurabilityArg {
    /// A reply is sent only after its commands are on disk (group commit).
    Sync,
    /// Written at once, fsynced every --fsync-interval; replies do not wait.
    Async,
    /// No journal: a restart forgets everything.
    Memory,
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
    /// Requests per second per user id (reserve, pay, cancel), e.g. 20, 10k, 1.5M/s; off when
    /// absent.
    #[arg(long, value_name = "RATE", value_parser = parse_rate_u32, allow_hyphen_values = true)]
    user_rate_limit: Option<u32>,
    /// Open connections allowed per transport.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Close a connection idle for this long (e.g. 60s, 1m30s, 500ms).
    #[arg(long, value_name = "DURATION", value_parser = millis, allow_hyphen_values = true, default_value = "60s")]
    idle_timeout: u64,
    /// Old spelling of --idle-timeout: a plain number of milliseconds.
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "idle_timeout")]
    idle_timeout_ms: Option<u64>,
    /// An HTTP request's headers, a TCP handshake and each TCP frame (from its first byte) must
    /// arrive within this, however slowly their bytes trickle in (e.g. 5s, 250ms).
    #[arg(long, value_name = "DURATION", value_parser = millis, allow_hyphen_values = true, default_value = "5s")]
    header_timeout: u64,
    /// Old spelling of --header-timeout: a plain number of milliseconds.
    #[arg(
        long,
        hide = true,
        value_name = "MS",
        conflicts_with = "header_timeout"
    )]
    header_timeout_ms: Option<u64>,
    /// An HTTP request body must arrive within this, 408 otherwise (e.g. 10s, 1m).
    #[arg(long, value_name = "DURATION", value_parser = millis, allow_hyphen_values = true, default_value = "10s")]
    body_timeout: u64,
    /// Old spelling of --body-timeout: a plain number of milliseconds.
    #[arg(long, hide = true, value_name = "MS", conflicts_with = "body_timeout")]
    body_timeout_ms: Option<u64>,
    /// Batches each shard queue holds before answering busy.
    #[arg(long, default_value_t = 4096)]
    queue_capacity_batches: usize,
    /// Orders each shard (and the order directory) reserves room for at start. Size it for the
    /// sale's expected orders: past it, tables grow with a pause proportional to their size.
    #[arg(long, default_value_t = 1 << 20)]
    orders_capacity_per_shard: usize,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Journal and snapshot directory; with it the default durability is `sync`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// sync | async | memory (default: sync with --data-dir, memory without).
    #[arg(long, value_enum)]
    durability: Option<DurabilityArg>,
    /// In async mode, how often the journal is fsynced (e.g. 10ms, 1s).
    #[arg(long, value_name = "DURATION", value_parser = millis, allow_hyphen_values = true, default_value = "10ms")]
    fsync_interval: u64,
    /// Old spelling of --fsync-interval: a plain number of milliseconds.
    #[arg(
        long,
        hide = true,
        value_name = "MS",
        conflicts_with = "fsync_interval"
    )]
    fsync_interval_ms: Option<u64>,
    /// Snapshot each shard after this many journaled commands (0: only at a clean stop).
    #[arg(long, default_value_t = 2_000_000)]
    snapshot_every_commands: u64,
    /// Record every request the server receives, with its arrival time, into this trace file
    /// (docs/trace-format.md). Never blocks requests: a writer that falls behind drops records
    /// and counts them (`flashsale_capture_dropped_total`, the trace's trailer).
    #[arg(long)]
    capture: Option<PathBuf>,
    /// SKUs (the lowest ids) that get their own `flashsale_sku_stock_units` gauges in /metrics;
    /// 0 for none. Each costs three series per scrape.
    #[arg(long, value_name = "N", default_value_t = 64)]
    metrics_sku_limit: usize,
}

impl ServeArgs {
    fn idle_timeout_ms(&self) -> u64 {
        self.idle_timeout_ms.unwrap_or(self.idle_timeout)
    }

    fn header_timeout_ms(&self) -> u64 {
        self.header_timeout_ms.unwrap_or(self.header_timeout)
    }

    fn body_timeout_ms(&self) -> u64 {
        self.body_timeout_ms.unwrap_or(self.body_timeout)
    }

    fn fsync_interval_ms(&self) -> u64 {
        self.fsync_interval_ms.unwrap_or(self.fsync_interval)
    }
}

/// A positive duration (the shared `units` parser), in whole milliseconds: at least 1 ms.
fn millis(text: &str) -> Result<u64, String> {
    let duration = parse_positive_duration(text).map_err(|e| e.to_string())?;
    let ms = duration.as_millis();
    if ms == 0 {
        return Err(format!(
            "`{text}` is shorter than the 1ms this flag counts in"
        ));
    }
    u64::try_from(ms).map_err(|_| format!("`{text}` is too large"))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let args = match Cli::parse().command {
        Command::Serve(args) => *args,
        Command::Journal(command) => return journal_tool(command),
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all().thread_name("flashsale-io");
    if let Some(threads) = args.worker_threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build().context("cannot start the tokio runtime")?;
    runtime.block_on(run(args))
}

/// `journal inspect|verify DIR`. Verify exits 0 when clean (a torn tail, which recovery
/// truncates, is reported but clean) and 1 with the first problem otherwise.
fn journal_tool(command: JournalCommand) -> anyhow::Result<()> {
    use flashsale_engine::journal::tools;
    match command {
        JournalCommand::Inspect { dir } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            tools::inspect(&dir, &mut out)?;
            std::io::Write::flush(&mut out)?;
        }
        JournalCommand::Verify { dir } => {
            for shard in tools::verify(&dir)? {
                println!(
                    "shard {}: ok, snapshot at {:?}, {} records ({} commands) after it checked, next sequence {}",
                    shard.index, shard.snapshot_seq, shard.records, shard.commands, shard.next_seq
                );
                if let Some(torn) = shard.torn {
                    println!(
                        "shard {}: torn tail in {} at byte offset {}: {} (recovery truncates it)",
                        shard.index,
                        torn.path.display(),
                        torn.offset,
                        torn.reason
                    );
                }
            }
        }
    }
    Ok(())
}

fn durability(args: &ServeArgs) -> anyhow::Result<Durability> {
    use flashsale_engine::journal::{JournalConfig, SyncMode};
    let mode = match (args.durability, &args.data_dir) {
        (Some(DurabilityArg::Memory), _) | (None, None) => return Ok(Durability::Memory),
        (Some(DurabilityArg::Sync), Some(_)) | (None, Some(_)) => SyncMode::Sync,
        (Some(DurabilityArg::Async), Some(_)) => SyncMode::Async {
            fsync_interval_ms: args.fsync_interval_ms(),
        },
        (Some(_), None) => anyhow::bail!("--durability sync|async needs --data-dir"),
    };
    let dir = args.data_dir.clone().context("--data-dir")?;
    let mut config = JournalConfig::new(dir, mode);
    config.snapshot_every_commands = args.snapshot_every_commands;
    Ok(Durability::Journal(config))
}

async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let catalog = match &args.catalog {
        Some(path) => load_catalog(path)?,
        None => Vec::new(),
    };
    let durability = durability(&args)?;
    let admin_token = AdminToken::new(args.admin_token.clone());
    if !admin_token.is_configured() {
        tracing::warn!("no admin token: admin endpoints will answer 401");
    }
    let capture = match &args.capture {
        Some(path) => Some(
            Capture::create(path, 65_536)
                .with_context(|| format!("cannot create capture file {}", path.display()))?,
        ),
        None => None,
    };
    let config = ServerConfig {
        http_addr: args.http,
        tcp_addr: args.tcp,
        engine: EngineConfig {
            shards: args.shards,
            queue_capacity_batches: args.queue_capacity_batches,
            orders_capacity_per_shard: args.orders_capacity_per_shard,
            clock: Clock::system(),
            durability,
            ..EngineConfig::default()
        },
        admin_token,
        catalog,
        max_connections: args.max_connections,
        idle_timeout_ms: args.idle_timeout_ms(),
        header_read_timeout_ms: args.header_timeout_ms(),
        body_read_timeout_ms: args.body_timeout_ms(),
        metrics_sku_limit: args.metrics_sku_limit,
        user_rate_limit_per_s: args.user_rate_limit,
        capture: capture.clone(),
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
    if let Some(capture) = capture {
        let trailer = capture
            .finish()
            .with_context(|| format!("capture {} failed", capture.path().display()))?;
        tracing::info!(
            path = %capture.path().display(),
            records = trailer.records,
            dropped = trailer.dropped,
            "capture written"
        );
    }
    Ok(())
}
