//! Idle means idle (issue 12 #3), on the real binary: `flashsale-engine serve` in each
//! durability mode — `memory`, and `async` and `sync` with a data directory — holding one
//! unpaid hold that falls due long after the test ends, with no client connected, must neither
//! burn CPU nor keep waking up. A shard waits for its next due expiry (or a command), a journal
//! for data, so over a few seconds the whole process (every thread) may use at most
//! `MAX_CPU_PCT` of a core and wake at most `MAX_WAKEUPS_PER_S` times a second. A spinning
//! thread fails the first bound (the async journal's `recv_timeout(0)` used a core), a fixed
//! tick the second (two shards on a 10 ms tick wake 200 times a second).
//!
//! `FLASHSALE_IDLE_BIN` runs another build of the binary (the release figures in
//! docs/benchmarks.md: `FLASHSALE_IDLE_BIN=target/release/flashsale-engine
//! FLASHSALE_IDLE_SECONDS=20 cargo test -p flashsale-server --test idle -- --nocapture`).

use std::path::Path;
use std::time::{Duration, Instant};

mod child_server;
use child_server::ChildServer as Server;

use flashsale_engine::client::Client;
use flashsale_engine::{Command, Outcome};

/// Generous: an idle server measures about 0 here, a spinning thread 100.
const MAX_CPU_PCT: f64 = 5.0;
/// Generous too: an idle server measures a few at most, two shards on a 10 ms tick 200.
const MAX_WAKEUPS_PER_S: f64 = 20.0;
/// The kernel's clock ticks per second in `/proc/*/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

fn binary() -> String {
    std::env::var("FLASHSALE_IDLE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_flashsale-engine").to_string())
}

fn start(mode: &[&str], catalog: &Path) -> Server {
    let mut serve = std::process::Command::new(binary());
    serve
        .arg("serve")
        .args(mode)
        .args(["--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--shards", "2", "--orders-capacity-per-shard", "4096"])
        .arg("--catalog")
        .arg(catalog);
    child_server::spawn_until_ready(serve, Duration::from_secs(30))
}

/// CPU ticks (user + system) the process has used, and how often its threads were switched
/// out (voluntarily: each sleep that ended is one; involuntarily: preempted), all threads.
fn sample(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    // The command name is in parentheses and may hold spaces: fields follow the last `)`.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("stat format") + 1..]
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let mut switches = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("process tasks") {
        let Ok(status) = std::fs::read_to_string(task.unwrap().path().join("status")) else {
            continue; // A thread that ended meanwhile.
        };
        for line in status.lines() {
            if let Some(count) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                switches += count.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    (ticks, switches)
}

/// Starts the server in `mode`, makes one hold due in ten minutes, disconnects, lets it settle,
/// then measures it for `seconds`: (% of a core, wake-ups per second).
fn idle_figures(name: &str, mode: &[&str], dir: &Path, seconds: f64) -> (f64, f64) {
    let catalog = dir.join("catalog.toml");
    std::fs::write(
        &catalog,
        "[[sku]]\nsku_id = 1\nstock_total = 1000\nper_user_limit = 5\nhold_ttl_ms = 600000\n",
    )
    .unwrap();
    let server = start(mode, &catalog);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::connect(server.tcp).await.expect("connect");
        let reserve = Command::Reserve {
            order_id: 1,
            user_id: 1,
            sku_id: 1,
            qty: 1,
        };
        let outcome = client.execute(reserve).await.expect("reserve");
        assert!(matches!(outcome, Outcome::Created(_)), "{outcome:?}");
    });
    drop(runtime);
    // The connection's end, the journal's write and (async) its fsync all settle by then.
    std::thread::sleep(Duration::from_secs(1));
    let pid = server.child.id();
    let (ticks_before, switches_before) = sample(pid);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (ticks_after, switches_after) = sample(pid);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_pct = (ticks_after - ticks_before) as f64 / TICKS_PER_S / elapsed * 100.0;
    let wakeups_per_s = (switches_after - switches_before) as f64 / elapsed;
    eprintln!(
        "idle {name}: {cpu_pct:.2}% of a core ({} ticks), {wakeups_per_s:.1} wake-ups/s over {elapsed:.1} s",
        ticks_after - ticks_before
    );
    (cpu_pct, wakeups_per_s)
}

#[test]
fn an_idle_server_neither_spins_nor_ticks_in_any_durability_mode() {
    let seconds = std::env::var("FLASHSALE_IDLE_SECONDS")
        .ok()
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or(3.0);
    let scratch = std::env::temp_dir().join(format!("flashsale-idle-{}", std::process::id()));
    let mut failures = Vec::new();
    for (name, durability) in [("memory", "memory"), ("async", "async"), ("sync", "sync")] {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let data_dir = dir.join("data");
        let data_dir = data_dir.to_str().unwrap();
        let mut mode = vec!["--durability", durability];
        if durability != "memory" {
            mode.extend(["--data-dir", data_dir]);
        }
        let (cpu_pct, wakeups_per_s) = idle_figures(name, &mode, &dir, seconds);
        if cpu_pct > MAX_CPU_PCT || wakeups_per_s > MAX_WAKEUPS_PER_S {
            failures.push(format!(
                "{name}: {cpu_pct:.2}% of a core, {wakeups_per_s:.1} wake-ups/s"
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        failures.is_empty(),
        "an idle server must stay under {MAX_CPU_PCT}% of a core and {MAX_WAKEUPS_PER_S} wake-ups/s: {failures:?}"
    );
}
