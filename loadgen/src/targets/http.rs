//! The HTTP/JSON target: speaks the server's REST contract (`PUT /v1/skus/{id}`, `POST
//! /v1/orders`, `POST /v1/orders/{id}/pay|cancel`, `GET /v1/skus/{id}`) on its own tokio
//! runtime. The run's requests go over `connections` keep-alive connections, one task each,
//! that take requests from one queue ([`wire`]); at most `connections` requests are in flight,
//! and a request waiting for a free connection is not yet sent (so its wait shows in corrected
//! latency, not in service time). Catalog setup and the after-run queries use a general HTTP
//! client (reqwest). It maps answers to engine outcomes and must not retry.

mod wire;

use super::{Answers, Done, Exchange, Failure, Target, TargetError, TargetOptions};
use flashsale_engine::{
    OrderStatus, OrderView, Outcome, OutcomeCode, Reject, SkuConfig, SkuId, SkuView,
};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Batches the queue has room for before it grows (the driver's exchange pool holds 4096).
const QUEUE_CAPACITY: usize = 4096;

pub struct Http {
    base: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    connections: usize,
    queue: Arc<wire::Queue>,
    token: Option<String>,
}

/// Runtime worker threads: what the machine leaves beside the pacer's CPU, at least one.
fn worker_threads() -> usize {
    let cpus = crate::placement::usable_cpus().len();
    cpus.saturating_sub(1).max(1)
}

#[derive(Deserialize)]
struct OrderJson {
    order_id: u64,
    user_id: u64,
    sku_id: u32,
    qty: u32,
    status: String,
    expires_at_ms: u64,
}

#[derive(Deserialize)]
struct ErrorJson {
    error: String,
}

#[derive(Deserialize)]
struct SkuJson {
    sku_id: u32,
    stock_total: u64,
    available: u64,
    held: u64,
    sold: u64,
    per_user_limit: u32,
    hold_ttl_ms: u64,
    #[serde(default)]
    sale_start_ms: Option<u64>,
    #[serde(default)]
    sale_end_ms: Option<u64>,
    #[serde(default)]
    price_cents: Option<u64>,
}

fn status_of(s: &str) -> Option<OrderStatus> {
    Some(match s {
        "held" => OrderStatus::Held,
        "paid" => OrderStatus::Paid,
        "cancelled" => OrderStatus::Cancelled,
        "expired" => OrderStatus::Expired,
        _ => return None,
    })
}

/// Maps one answer of the order endpoints to an outcome.
fn order_outcome(status: u16, body: &[u8]) -> Result<Outcome, Failure> {
    match status {
        200 | 201 => {
            let o: OrderJson = serde_json::from_slice(body).map_err(|_| Failure::Protocol)?;
            let view = OrderView {
                order_id: o.order_id,
                user_id: o.user_id,
                sku_id: o.sku_id,
                qty: o.qty,
                status: status_of(&o.status).ok_or(Failure::Protocol)?,
                expires_at_ms: o.expires_at_ms,
            };
            Ok(if status == 201 {
                Outcome::Created(view)
            } else {
                Outcome::Order(view)
            })
        }
        _ => {
            let e: ErrorJson = serde_json::from_slice(body).map_err(|_| Failure::Protocol)?;
            if let Some(reject) = Reject::from_code(&e.error) {
                return Ok(Outcome::Rejected(reject));
            }
            // A server answer of its own (outcome table) is not an engine outcome.
            Err(match OutcomeCode::from_code(&e.error) {
                Some(OutcomeCode::RateLimited) => Failure::RateLimited,
                Some(_) => Failure::Server,
                None => Failure::Protocol,
            })
        }
    }
}

impl Http {
    /// `base` is `http://HOST:PORT`. Nothing is contacted until `setup`.
    pub fn connect(base: &str, options: &TargetOptions) -> Result<Http, TargetError> {
        let net = |detail: String| TargetError::Network {
            target: base.to_string(),
            detail,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads())
            .thread_name("loadgen-http")
            .enable_all()
            .build()
            .map_err(|e| net(format!("cannot start the I/O runtime: {e}")))?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(options.connections)
            .pool_idle_timeout(Duration::from_secs(90))
            .timeout(Duration::from_millis(options.request_timeout_ms))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| net(format!("cannot build the HTTP client: {e}")))?;
        let base = base.trim_end_matches('/').to_string();
        let connections = options.connections.max(1);
        let queue = Arc::new(wire::Queue::with_capacity(QUEUE_CAPACITY));
        let endpoint = Arc::new(wire::Endpoint {
            host_port: base.trim_start_matches("http://").to_string(),
            timeout: Duration::from_millis(options.request_timeout_ms),
        });
        for _ in 0..connections {
            runtime.spawn(wire::serve(queue.clone(), endpoint.clone()));
        }
        Ok(Http {
            base,
            client,
            runtime,
            connections,
            queue,
            token: options.admin_token.clone(),
        })
    }

    fn net(&self, detail: String) -> TargetError {
        TargetError::Network {
            target: self.base.clone(),
            detail,
        }
    }
}

impl Target for Http {
    fn describe(&self) -> String {
        format!("{} ({} connections)", self.base, self.connections)
    }
    fn max_batch(&self) -> usize {
        1
    }
    fn keeps_state(&self) -> bool {
        true
    }
    fn is_remote(&self) -> bool {
        true
    }

    fn setup(&self, catalog: &[SkuConfig]) -> Result<(), TargetError> {
        let token = self.token.clone().ok_or_else(|| {
            self.net("FLASHSALE_ADMIN_TOKEN is not set: it is needed to create the catalog".into())
        })?;
        let concurrency = self.connections;
        self.runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for config in catalog.iter().copied() {
                if tasks.len() >= concurrency
                    && let Some(r) = tasks.join_next().await
                {
                    r.map_err(|e| self.net(e.to_string()))??;
                }
                let client = self.client.clone();
                let url = format!("{}/v1/skus/{}", self.base, config.sku_id);
                let token = token.clone();
                tasks.spawn(async move {
                    let mut body = serde_json::json!({
                        "stock_total": config.stock_total,
                        "per_user_limit": config.per_user_limit,
                        "hold_ttl_ms": config.hold_ttl_ms,
                        "price_cents": config.price_cents,
                    });
                    if let Some(s) = config.sale_start_ms {
                        body["sale_start_ms"] = s.into();
                    }
                    if let Some(e) = config.sale_end_ms {
                        body["sale_end_ms"] = e.into();
                    }
                    let setup_err = |detail: String| TargetError::Setup {
                        sku_id: config.sku_id,
                        detail,
                    };
                    let response = client
                        .put(url)
                        .bearer_auth(token)
                        .json(&body)
                        .send()
                        .await
                        .map_err(|e| setup_err(e.to_string()))?;
                    let status = response.status();
                    if status.is_success() {
                        Ok(())
                    } else {
                        let text = response.text().await.unwrap_or_default();
                        Err(setup_err(format!("HTTP {status}: {text}")))
                    }
                });
            }
            while let Some(r) = tasks.join_next().await {
                r.map_err(|e| self.net(e.to_string()))??;
            }
            Ok(())
        })
    }

    fn submit(&self, commands: Vec<flashsale_engine::Command>, done: Done) {
        let now = Instant::now();
        let exchange = Exchange {
            commands,
            outcomes: Vec::new(),
            failure: None,
            failed: Vec::new(),
            sent_at: now,
            done_at: now,
            metas: Vec::new(),
            follow_ups: Vec::new(),
        };
        self.queue.push(wire::Job {
            exchange,
            reply: wire::Reply::Done(done),
        });
    }

    fn submit_exchange(&self, exchange: Exchange, answers: &Answers) {
        self.queue.push(wire::Job {
            exchange,
            reply: wire::Reply::Answers(answers.clone()),
        });
    }

    fn query_skus(&self, sku_ids: &[SkuId]) -> Result<Vec<Option<SkuView>>, TargetError> {
        self.runtime.block_on(async {
            let mut views = Vec::with_capacity(sku_ids.len());
            for &sku_id in sku_ids {
                let query_err = |detail: String| TargetError::Query { sku_id, detail };
                let response = self
                    .client
                    .get(format!("{}/v1/skus/{sku_id}", self.base))
                    .send()
                    .await
                    .map_err(|e| query_err(e.to_string()))?;
                if response.status().as_u16() == 404 {
                    views.push(None);
                    continue;
                }
                if !response.status().is_success() {
                    return Err(query_err(format!("HTTP {}", response.status())));
                }
                let s: SkuJson = response
                    .json()
                    .await
                    .map_err(|e| query_err(e.to_string()))?;
                views.push(Some(SkuView {
                    config: SkuConfig {
                        sku_id: s.sku_id,
                        stock_total: s.stock_total,
                        per_user_limit: s.per_user_limit,
                        hold_ttl_ms: s.hold_ttl_ms,
                        sale_start_ms: s.sale_start_ms,
                        sale_end_ms: s.sale_end_ms,
                        price_cents: s.price_cents.unwrap_or(0),
                    },
                    available: s.available,
                    held: s.held,
                    sold: s.sold,
                }));
            }
            Ok(views)
        })
    }

    fn shutdown(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_answers_to_outcomes() {
        let body =
            br#"{"order_id":1,"user_id":2,"sku_id":3,"qty":1,"status":"held","expires_at_ms":9}"#;
        assert!(
            matches!(order_outcome(201, body), Ok(Outcome::Created(v)) if v.status == OrderStatus::Held)
        );
        assert!(matches!(order_outcome(200, body), Ok(Outcome::Order(_))));
        let err = br#"{"error":"sold_out","detail":"none left"}"#;
        assert_eq!(
            order_outcome(409, err),
            Ok(Outcome::Rejected(Reject::SoldOut))
        );
        let busy = br#"{"error":"busy","detail":""}"#;
        assert_eq!(
            order_outcome(503, busy),
            Ok(Outcome::Rejected(Reject::Busy))
        );
        assert_eq!(order_outcome(500, b"oops"), Err(Failure::Protocol));
        assert_eq!(
            order_outcome(409, br#"{"error":"new_code"}"#),
            Err(Failure::Protocol)
        );
        // The server's own answers of the outcome table are failures, not engine outcomes.
        assert_eq!(
            order_outcome(429, br#"{"error":"rate_limited","detail":""}"#),
            Err(Failure::RateLimited)
        );
        assert_eq!(
            order_outcome(413, br#"{"error":"payload_too_large","detail":""}"#),
            Err(Failure::Server)
        );
    }
}
