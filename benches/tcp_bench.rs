//! Pipelined TCP throughput bench: N connections, each with `depth` batches of `batch` reserve
//! commands in flight, against a running `flashsale-engine serve`. Creates its own SKUs (needs
//! the admin token) with stock that cannot run out, so every reserve is a real new hold.
//!
//! cargo run --release -p flashsale --example tcp_bench -- \
//!     --addr 127.0.0.1:7070 --token T --connections 4 --depth 8 --batch 512 --seconds 10

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flashsale_engine::client::Client;
use flashsale_engine::protocol::Reply;
use flashsale_engine::{Command, Outcome, SkuConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    addr: SocketAddr,
    token: String,
    connections: usize,
    depth: usize,
    batch: usize,
    seconds: u64,
    skus: u32,
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:7070".parse().map_err(|e| format!("{e}"))?,
        token: std::env::var("FLASHSALE_ADMIN_TOKEN").unwrap_or_default(),
        connections: 4,
        depth: 8,
        batch: 512,
        seconds: 10,
        skus: 64,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag}: {e}");
        match flag.as_str() {
            "--addr" => args.addr = value.parse().map_err(|e| bad(&e))?,
            "--token" => args.token = value,
            "--connections" => args.connections = value.parse().map_err(|e| bad(&e))?,
            "--depth" => args.depth = value.parse().map_err(|e| bad(&e))?,
            "--batch" => args.batch = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => args.seconds = value.parse().map_err(|e| bad(&e))?,
            "--skus" => args.skus = value.parse().map_err(|e| bad(&e))?,
            "--threads" => args.threads = value.parse().map_err(|e| bad(&e))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let admin = Client::connect(args.addr).await?;
    admin.authenticate(&args.token).await?;
    // A fresh id range per run so repeated runs against one server create new orders.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as u64
        * 1_000_000;
    let sku_base = (base / 1_000_000 % 1_000_000) as u32 * 1000;
    let upserts = (0..args.skus)
        .map(|i| {
            Command::UpsertSku(SkuConfig::simple(
                sku_base + i,
                1 << 40,
                u32::MAX,
                3_600_000,
            ))
        })
        .collect();
    for reply in admin.execute_batch(upserts).await? {
        if !matches!(
            reply,
            Reply::Outcome(Outcome::SkuCreated(_) | Outcome::Sku(_))
        ) {
            return Err(format!("upsert failed: {reply:?}").into());
        }
    }
    let next_id = Arc::new(AtomicU64::new(base));
    let held = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let client = Client::connect(args.addr).await?;
        for _ in 0..args.depth {
            let (client, next_id, held, other, stop) = (
                client.clone(),
                next_id.clone(),
                held.clone(),
                other.clone(),
                stop.clone(),
            );
            let (batch, skus) = (args.batch as u64, u64::from(args.skus));
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let first = next_id.fetch_add(batch, Ordering::Relaxed);
                    let commands = (first..first + batch)
                        .map(|order_id| Command::Reserve {
                            order_id,
                            user_id: order_id,
                            sku_id: sku_base + (order_id % skus) as u32,
                            qty: 1,
                        })
                        .collect();
                    let Ok(replies) = client.execute_batch(commands).await else {
                        break;
                    };
                    let created = replies
                        .iter()
                        .filter(|r| matches!(r, Reply::Outcome(Outcome::Created(_))))
                        .count() as u64;
                    held.fetch_add(created, Ordering::Relaxed);
                    other.fetch_add(batch - created, Ordering::Relaxed);
                }
            }));
        }
    }
    let started = Instant::now();
    let mut last = (started, 0u64);
    while started.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = (Instant::now(), held.load(Ordering::Relaxed));
        let rate = (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64();
        println!(
            "{:>6.1}s  {:>12.0} orders/s",
            started.elapsed().as_secs_f64(),
            rate
        );
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for task in tasks {
        let _ = task.await;
    }
    let held = held.load(Ordering::Relaxed);
    println!(
        "total: {held} orders held in {elapsed:.1}s = {:.0} orders/s; {} other replies (busy etc.)",
        held as f64 / elapsed,
        other.load(Ordering::Relaxed)
    );
    Ok(())
}
