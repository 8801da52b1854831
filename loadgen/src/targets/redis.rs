//! The Redis + Lua baseline target (`redis://HOST:PORT[?pipeline=0|1][&flush=1]`): the same
//! contract as the engine (reserve with a per-user limit and idempotent order ids, pay, cancel,
//! expiry of holds, SKU upsert / restock / queries) implemented the way most published
//! flash-sale systems do it — state in Redis, each operation one Lua script run atomically by
//! redis-server (`redis/*.lua`, loaded once with `SCRIPT LOAD`, called with `EVALSHA`). Two
//! client modes: pipelined (default: `--connections` multiplexed connections, each batch of
//! ≤ 64 requests one pipeline, many batches in flight per connection) and not pipelined
//! (`pipeline=0`: a pool of `--connections` connections, each strictly one request → one
//! reply). This module owns the Redis data model, the scripts and the mapping of their answers
//! to engine outcomes; it must not pace, record or retry, and it must not touch other targets.
//! Data model and reasoning: `docs/notes/redis-baseline-notes.md`.

use super::{Completion, Done, Failure, Target, TargetError, TargetOptions};
use flashsale_engine::{
    Command, OrderStatus, OrderView, Outcome, Reject, SkuConfig, SkuId, SkuView,
};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, RedisError, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// Requests per pipeline in pipelined mode: the TCP target's batch size, for a like-for-like
/// comparison.
const MAX_BATCH: usize = 64;
/// Requests per pipeline for setup and queries.
const ADMIN_CHUNK: usize = 1024;

const PROLOGUE: &str = include_str!("redis/expire.lua");
const RESERVE: &str = include_str!("redis/reserve.lua");
const PAY: &str = include_str!("redis/pay.lua");
const CANCEL: &str = include_str!("redis/cancel.lua");
const QUERY_ORDER: &str = include_str!("redis/order.lua");
const UPSERT: &str = include_str!("redis/upsert.lua");
const RESTOCK: &str = include_str!("redis/restock.lua");
const QUERY_SKU: &str = include_str!("redis/query_sku.lua");

/// The full text of a script: the shared expiry prologue, then the script's body.
pub fn script_source(body: &str) -> String {
    format!("{PROLOGUE}\n{body}")
}

/// SHA1s of the loaded scripts, as `SCRIPT LOAD` answered them.
#[derive(Clone, Debug)]
struct Shas {
    reserve: String,
    pay: String,
    cancel: String,
    query_order: String,
    upsert: String,
    restock: String,
    query_sku: String,
}

/// Options read from the target's URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSpec {
    pub host: String,
    pub port: u16,
    /// Many requests per round trip (true) or one request per round trip per connection.
    pub pipeline: bool,
    /// `FLUSHDB` before creating the catalog (otherwise a non-empty database is an error).
    pub flush: bool,
}

impl RedisSpec {
    /// Parses `redis://HOST:PORT[?pipeline=0|1][&flush=0|1]`.
    pub fn parse(spec: &str) -> Result<RedisSpec, TargetError> {
        let bad = |why: &str| TargetError::Network {
            target: spec.to_string(),
            detail: format!("expected redis://HOST:PORT[?pipeline=0|1][&flush=0|1]: {why}"),
        };
        let rest = spec
            .strip_prefix("redis://")
            .ok_or_else(|| TargetError::Spec(spec.to_string()))?;
        let (host_port, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, port) = host_port
            .rsplit_once(':')
            .ok_or_else(|| bad("missing :PORT"))?;
        if host.is_empty() || host.contains('/') {
            return Err(bad("missing or invalid host"));
        }
        let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
        let mut parsed = RedisSpec {
            host: host.to_string(),
            port,
            pipeline: true,
            flush: false,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let flag = match value {
                "1" | "true" => true,
                "0" | "false" => false,
                _ => return Err(bad(&format!("`{pair}`: expected 0 or 1"))),
            };
            match key {
                "pipeline" => parsed.pipeline = flag,
                "flush" => parsed.flush = flag,
                _ => return Err(bad(&format!("unknown option `{key}`"))),
            }
        }
        Ok(parsed)
    }
}

/// How requests reach redis-server.
enum Mode {
    /// Round-robin over multiplexed connections; a batch is one pipeline.
    Pipelined {
        connections: Vec<MultiplexedConnection>,
        next: AtomicUsize,
    },
    /// A pool: a request takes a free connection, sends, waits for its reply, gives it back.
    OneByOne {
        permits: Arc<Semaphore>,
        pool: Arc<Mutex<Vec<MultiplexedConnection>>>,
    },
}

pub struct Redis {
    spec: String,
    options: RedisSpec,
    runtime: tokio::runtime::Runtime,
    mode: Mode,
    admin: MultiplexedConnection,
    shas: Arc<Shas>,
    timeout: Duration,
}

/// The client's clock, epoch milliseconds: the time every script is told.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn sku_key(sku_id: SkuId) -> String {
    format!("sku:{{{sku_id}}}")
}
fn holds_key(sku_id: SkuId) -> String {
    format!("holds:{{{sku_id}}}")
}
fn order_key(order_id: u64) -> String {
    format!("order:{order_id}")
}
fn units_key(sku_id: SkuId, user_id: u64) -> String {
    format!("units:{{{sku_id}}}:{user_id}")
}

/// The `EVALSHA` call for one command at `now`.
fn command_call(shas: &Shas, command: &Command, now: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    match *command {
        Command::Reserve {
            order_id,
            user_id,
            sku_id,
            qty,
        } => {
            cmd.arg(&shas.reserve)
                .arg(4)
                .arg(sku_key(sku_id))
                .arg(holds_key(sku_id))
                .arg(order_key(order_id))
                .arg(units_key(sku_id, user_id))
                .arg(now)
                .arg(order_id)
                .arg(user_id)
                .arg(sku_id)
                .arg(qty);
        }
        Command::Pay { order_id, user_id } | Command::Cancel { order_id, user_id } => {
            let sha = if matches!(command, Command::Pay { .. }) {
                &shas.pay
            } else {
                &shas.cancel
            };
            cmd.arg(sha)
                .arg(1)
                .arg(order_key(order_id))
                .arg(now)
                .arg(order_id)
                .arg(user_id);
        }
        Command::QueryOrder { order_id } => {
            cmd.arg(&shas.query_order)
                .arg(1)
                .arg(order_key(order_id))
                .arg(now);
        }
        Command::UpsertSku(c) => {
            let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
            cmd.arg(&shas.upsert)
                .arg(2)
                .arg(sku_key(c.sku_id))
                .arg(holds_key(c.sku_id))
                .arg(now)
                .arg(c.sku_id)
                .arg(c.stock_total)
                .arg(c.per_user_limit)
                .arg(c.hold_ttl_ms)
                .arg(opt(c.sale_start_ms))
                .arg(opt(c.sale_end_ms))
                .arg(c.price_cents);
        }
        Command::Restock { sku_id, delta } => {
            cmd.arg(&shas.restock)
                .arg(2)
                .arg(sku_key(sku_id))
                .arg(holds_key(sku_id))
                .arg(now)
                .arg(sku_id)
                .arg(delta);
        }
        Command::QuerySku { sku_id } => {
            cmd.arg(&shas.query_sku)
                .arg(2)
                .arg(sku_key(sku_id))
                .arg(holds_key(sku_id))
                .arg(now)
                .arg(sku_id);
        }
    }
    cmd
}

fn ints(value: &Value) -> Option<Vec<i64>> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::Int(i) => Some(*i),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn status_of(n: i64) -> Option<OrderStatus> {
    Some(match n {
        0 => OrderStatus::Held,
        1 => OrderStatus::Paid,
        2 => OrderStatus::Cancelled,
        3 => OrderStatus::Expired,
        _ => return None,
    })
}

/// A SKU view from the fields of a SKU answer (after its tag).
fn sku_fields(sku_id: SkuId, v: &[i64]) -> Option<SkuView> {
    let [total, limit, ttl, start, end, price, available, held, sold] = *v else {
        return None;
    };
    let opt = |x: i64| u64::try_from(x).ok();
    Some(SkuView {
        config: SkuConfig {
            sku_id,
            stock_total: opt(total)?,
            per_user_limit: u32::try_from(limit).ok()?,
            hold_ttl_ms: opt(ttl)?,
            sale_start_ms: opt(start),
            sale_end_ms: opt(end),
            price_cents: opt(price)?,
        },
        available: opt(available)?,
        held: opt(held)?,
        sold: opt(sold)?,
    })
}

/// A SKU view from a `query_sku` answer; `Ok(None)` for an unknown SKU.
fn sku_view_of(sku_id: SkuId, value: &Value) -> Result<Option<SkuView>, ()> {
    let v = ints(value).ok_or(())?;
    if v.is_empty() {
        return Ok(None);
    }
    if v[0] != 4 {
        return Err(());
    }
    sku_fields(sku_id, &v[1..]).map(Some).ok_or(())
}

/// Maps one script answer to the engine outcome for `command`. `None`: not understood.
fn outcome_of(command: &Command, value: &Value) -> Option<Outcome> {
    let (order_id, user_id) = match *command {
        Command::Reserve {
            order_id, user_id, ..
        }
        | Command::Pay { order_id, user_id }
        | Command::Cancel { order_id, user_id } => (order_id, user_id),
        Command::QueryOrder { order_id } => (order_id, 0),
        Command::QuerySku { sku_id } => {
            return match sku_view_of(sku_id, value).ok()? {
                Some(view) => Some(Outcome::Sku(Box::new(view))),
                None => Some(Outcome::Rejected(Reject::UnknownSku)),
            };
        }
        Command::UpsertSku(_) | Command::Restock { .. } => (0, 0),
    };
    let v = ints(value)?;
    let tag = *v.first()?;
    if tag < 0 {
        return u8::try_from(-tag)
            .ok()
            .and_then(Reject::from_u8)
            .map(Outcome::Rejected);
    }
    match (tag, command) {
        (1 | 2, _) => {
            let [_, status, expires_at_ms, sku_id, qty] = v[..] else {
                return None;
            };
            let view = OrderView {
                order_id,
                // A query does not name the user; the scripts do not return it either, as no
                // caller of this target asks for it.
                user_id,
                sku_id: u32::try_from(sku_id).ok()?,
                qty: u32::try_from(qty).ok()?,
                status: status_of(status)?,
                expires_at_ms: u64::try_from(expires_at_ms).ok()?,
            };
            Some(if tag == 1 {
                Outcome::Created(view)
            } else {
                Outcome::Order(view)
            })
        }
        (3 | 4, Command::UpsertSku(SkuConfig { sku_id, .. }) | Command::Restock { sku_id, .. }) => {
            let view = Box::new(sku_fields(*sku_id, &v[1..])?);
            Some(if tag == 3 {
                Outcome::SkuCreated(view)
            } else {
                Outcome::Sku(view)
            })
        }
        _ => None,
    }
}
fn failure_of(e: &RedisError) -> Failure {
    if e.is_timeout() {
        Failure::Timeout
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        Failure::Transport
    } else {
        Failure::Server
    }
}

/// Outcomes and per-request failures, as `Completion` carries them.
type Mapped = (Result<Vec<Outcome>, Failure>, Vec<(usize, Failure)>);

fn map_replies(commands: &[Command], replies: Vec<Value>) -> Mapped {
    if replies.len() != commands.len() {
        return (Err(Failure::Protocol), Vec::new());
    }
    let mut failed = Vec::new();
    let outcomes = commands
        .iter()
        .zip(&replies)
        .enumerate()
        .map(|(i, (command, reply))| {
            let outcome = match reply {
                Value::ServerError(_) => {
                    failed.push((i, Failure::Server));
                    None
                }
                other => {
                    let o = outcome_of(command, other);
                    if o.is_none() {
                        failed.push((i, Failure::Protocol));
                    }
                    o
                }
            };
            outcome.unwrap_or(Outcome::Rejected(Reject::Busy))
        })
        .collect();
    (Ok(outcomes), failed)
}

/// Sends `commands` as one pipeline (one round trip) and maps the answers.
async fn run_pipeline(
    conn: &mut MultiplexedConnection,
    shas: &Shas,
    commands: &[Command],
) -> Result<Mapped, RedisError> {
    let now = now_ms();
    let mut pipe = redis::pipe();
    for command in commands {
        pipe.add_command(command_call(shas, command, now));
    }
    let replies: Vec<Value> = pipe.ignore_errors().query_async(conn).await?;
    Ok(map_replies(commands, replies))
}

impl Redis {
    /// Connects, loads the scripts and opens the request connections.
    pub fn connect(spec: &str, options: &TargetOptions) -> Result<Redis, TargetError> {
        let parsed = RedisSpec::parse(spec)?;
        let net = |detail: String| TargetError::Network {
            target: spec.to_string(),
            detail,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("loadgen-redis")
            .enable_all()
            .build()
            .map_err(|e| net(format!("cannot start the I/O runtime: {e}")))?;
        let timeout = Duration::from_millis(options.request_timeout_ms);
        let client = redis::Client::open(ConnectionAddr::Tcp(parsed.host.clone(), parsed.port))
            .map_err(|e| net(e.to_string()))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let count = options.connections.max(1);
        let (admin, connections, shas) = runtime.block_on(async {
            let open = || async {
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| net(format!("cannot connect: {e}")))
            };
            let mut admin = open().await?;
            let mut load = async |body: &str| -> Result<String, TargetError> {
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(script_source(body))
                    .query_async(&mut admin)
                    .await
                    .map_err(|e| net(format!("SCRIPT LOAD failed: {e}")))
            };
            let shas = Shas {
                reserve: load(RESERVE).await?,
                pay: load(PAY).await?,
                cancel: load(CANCEL).await?,
                query_order: load(QUERY_ORDER).await?,
                upsert: load(UPSERT).await?,
                restock: load(RESTOCK).await?,
                query_sku: load(QUERY_SKU).await?,
            };
            let mut connections = Vec::with_capacity(count);
            for _ in 0..count {
                connections.push(open().await?);
            }
            Ok::<_, TargetError>((admin, connections, shas))
        })?;
        let mode = if parsed.pipeline {
            Mode::Pipelined {
                connections,
                next: AtomicUsize::new(0),
            }
        } else {
            Mode::OneByOne {
                permits: Arc::new(Semaphore::new(count)),
                pool: Arc::new(Mutex::new(connections)),
            }
        };
        Ok(Redis {
            spec: spec.to_string(),
            options: parsed,
            runtime,
            mode,
            admin,
            shas: Arc::new(shas),
            timeout,
        })
    }

    fn net(&self, detail: String) -> TargetError {
        TargetError::Network {
            target: self.spec.clone(),
            detail,
        }
    }

    /// Runs `commands` on the admin connection in pipelines of `ADMIN_CHUNK`.
    fn admin_batch(&self, commands: &[Command]) -> Result<Vec<Value>, TargetError> {
        let mut conn = self.admin.clone();
        self.runtime.block_on(async {
            let mut replies = Vec::with_capacity(commands.len());
            for chunk in commands.chunks(ADMIN_CHUNK) {
                let now = now_ms();
                let mut pipe = redis::pipe();
                for command in chunk {
                    pipe.add_command(command_call(&self.shas, command, now));
                }
                let mut part: Vec<Value> = pipe
                    .ignore_errors()
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.net(e.to_string()))?;
                replies.append(&mut part);
            }
            Ok(replies)
        })
    }
}

impl Target for Redis {
    fn describe(&self) -> String {
        let (mode, n) = match &self.mode {
            Mode::Pipelined { connections, .. } => ("pipelined", connections.len()),
            Mode::OneByOne { pool, .. } => (
                "one request per round trip",
                pool.lock().map(|p| p.len()).unwrap_or(0),
            ),
        };
        format!(
            "redis + Lua {}:{} ({n} connections, {mode})",
            self.options.host, self.options.port
        )
    }

    fn max_batch(&self) -> usize {
        match self.mode {
            Mode::Pipelined { .. } => MAX_BATCH,
            Mode::OneByOne { .. } => 1,
        }
    }

    fn keeps_state(&self) -> bool {
        true
    }
    fn is_remote(&self) -> bool {
        true
    }

    fn setup(&self, catalog: &[SkuConfig]) -> Result<(), TargetError> {
        let mut conn = self.admin.clone();
        self.runtime.block_on(async {
            if self.options.flush {
                redis::cmd("FLUSHDB")
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| self.net(format!("FLUSHDB failed: {e}")))?;
            }
            let keys: u64 = redis::cmd("DBSIZE")
                .query_async(&mut conn)
                .await
                .map_err(|e| self.net(format!("DBSIZE failed: {e}")))?;
            if keys > 0 {
                return Err(self.net(format!(
                    "the database already holds {keys} keys (orders of an earlier run would \
                     answer as duplicates): use a fresh redis-server or add ?flush=1"
                )));
            }
            Ok(())
        })?;
        for config in catalog {
            if let Err(why) = config.validate() {
                return Err(TargetError::Setup {
                    sku_id: config.sku_id,
                    detail: why.to_string(),
                });
            }
        }
        let commands: Vec<Command> = catalog.iter().map(|c| Command::UpsertSku(*c)).collect();
        let replies = self.admin_batch(&commands)?;
        for (command, reply) in commands.iter().zip(&replies) {
            let Command::UpsertSku(config) = command else {
                unreachable!("only upserts were built");
            };
            match outcome_of(command, reply) {
                Some(Outcome::SkuCreated(_) | Outcome::Sku(_)) => {}
                other => {
                    return Err(TargetError::Setup {
                        sku_id: config.sku_id,
                        detail: format!("redis answered {other:?} ({reply:?})"),
                    });
                }
            }
        }
        Ok(())
    }

    fn submit(&self, commands: Vec<Command>, done: Done) {
        let shas = self.shas.clone();
        let timeout = self.timeout;
        match &self.mode {
            Mode::Pipelined { connections, next } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % connections.len();
                let mut conn = connections[i].clone();
                self.runtime.spawn(async move {
                    let sent_at = Instant::now();
                    let (result, failed) = match tokio::time::timeout(
                        timeout,
                        run_pipeline(&mut conn, &shas, &commands),
                    )
                    .await
                    {
                        Ok(Ok(mapped)) => mapped,
                        Ok(Err(e)) => (Err(failure_of(&e)), Vec::new()),
                        Err(_) => (Err(Failure::Timeout), Vec::new()),
                    };
                    done(Completion {
                        result,
                        failed,
                        sent_at,
                        done_at: Instant::now(),
                    });
                });
            }
            Mode::OneByOne { permits, pool } => {
                let permits = permits.clone();
                let pool = pool.clone();
                self.runtime.spawn(async move {
                    // The semaphore is never closed, so acquiring only waits; holding a permit
                    // guarantees a connection in the pool.
                    let _permit = permits.acquire_owned().await;
                    let mut conn = pool
                        .lock()
                        .expect("pool lock")
                        .pop()
                        .expect("a permit guarantees a free connection");
                    let sent_at = Instant::now();
                    let mut outcomes = Vec::with_capacity(commands.len());
                    let mut failed = Vec::new();
                    let mut failure = None;
                    for (i, command) in commands.iter().enumerate() {
                        let call = command_call(&shas, command, now_ms());
                        let reply =
                            tokio::time::timeout(timeout, call.query_async::<Value>(&mut conn))
                                .await;
                        match reply {
                            Ok(Ok(value)) => match outcome_of(command, &value) {
                                Some(o) => outcomes.push(o),
                                None => {
                                    failed.push((i, Failure::Protocol));
                                    outcomes.push(Outcome::Rejected(Reject::Busy));
                                }
                            },
                            // A script error (e.g. NOSCRIPT after a server restart) is this
                            // request's; a broken connection fails the batch.
                            Ok(Err(e)) if failure_of(&e) == Failure::Server => {
                                failed.push((i, Failure::Server));
                                outcomes.push(Outcome::Rejected(Reject::Busy));
                            }
                            Ok(Err(e)) => {
                                failure = Some(failure_of(&e));
                                break;
                            }
                            Err(_) => {
                                failure = Some(Failure::Timeout);
                                break;
                            }
                        }
                    }
                    pool.lock().expect("pool lock").push(conn);
                    let result = failure.map_or(Ok(outcomes), Err);
                    done(Completion {
                        result,
                        failed,
                        sent_at,
                        done_at: Instant::now(),
                    });
                });
            }
        }
    }

    fn query_skus(&self, sku_ids: &[SkuId]) -> Result<Vec<Option<SkuView>>, TargetError> {
        let commands: Vec<Command> = sku_ids
            .iter()
            .map(|&sku_id| Command::QuerySku { sku_id })
            .collect();
        let replies = self.admin_batch(&commands)?;
        sku_ids
            .iter()
            .zip(&replies)
            .map(|(&sku_id, reply)| {
                sku_view_of(sku_id, reply).map_err(|()| TargetError::Query {
                    sku_id,
                    detail: format!("unexpected reply {reply:?}"),
                })
            })
            .collect()
    }

    fn shutdown(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_url_options() {
        let s = RedisSpec::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.pipeline, s.flush),
            ("127.0.0.1", 6379, true, false)
        );
        let s = RedisSpec::parse("redis://localhost:7000?pipeline=0&flush=1").unwrap();
        assert!(!s.pipeline && s.flush);
        for bad in [
            "redis://127.0.0.1",
            "redis://:6379",
            "redis://h:99999",
            "redis://h:1?pipeline=maybe",
            "redis://h:1?nodelay=1",
        ] {
            assert!(RedisSpec::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn maps_script_answers_to_outcomes() {
        let reserve = Command::Reserve {
            order_id: 9,
            user_id: 5,
            sku_id: 3,
            qty: 2,
        };
        let arr = |v: &[i64]| Value::Array(v.iter().map(|&i| Value::Int(i)).collect());
        let created = outcome_of(&reserve, &arr(&[1, 0, 1_000, 3, 2])).unwrap();
        assert_eq!(
            created,
            Outcome::Created(OrderView {
                order_id: 9,
                user_id: 5,
                sku_id: 3,
                qty: 2,
                status: OrderStatus::Held,
                expires_at_ms: 1_000
            })
        );
        assert_eq!(
            outcome_of(&reserve, &arr(&[-2])),
            Some(Outcome::Rejected(Reject::LimitExceeded))
        );
        assert_eq!(outcome_of(&reserve, &arr(&[-99])), None);
        assert_eq!(outcome_of(&reserve, &arr(&[1, 7, 1, 3, 2])), None);
        let (result, failed) = map_replies(
            &[reserve, reserve],
            vec![
                arr(&[-1]),
                redis::parse_redis_value(b"-NOSCRIPT No matching script.\r\n").unwrap(),
            ],
        );
        assert_eq!(result.unwrap()[0], Outcome::Rejected(Reject::SoldOut));
        assert_eq!(failed, vec![(1, Failure::Server)]);
    }
}
