//! The binary TCP target: `--connections` pipelined connections of the engine's own async
//! client (`flashsale_engine::client`), on a tokio runtime of its own. Batches go round-robin
//! over the connections, many in flight per connection; the catalog is created on a separate
//! connection that authenticates with the admin token. It maps replies to outcomes (a
//! `rate_limited` or other server error is a per-request failure) and must not retry.

use super::{Completion, Done, Failure, Target, TargetError, TargetOptions};
use flashsale_engine::client::{Client, ClientError};
use flashsale_engine::protocol::{ErrorCode, Reply};
use flashsale_engine::{Command, Outcome, Reject, SkuConfig, SkuId, SkuView};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Requests per pipelined batch: small enough that service time stays per-request-ish, large
/// enough to amortise a frame write.
const MAX_BATCH: usize = 64;
const ADMIN_CHUNK: usize = 1024;

pub struct Tcp {
    spec: String,
    addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    clients: Vec<Client>,
    next: AtomicUsize,
    token: Option<String>,
    timeout: Duration,
}

fn failure_of(e: &ClientError) -> Failure {
    match e {
        ClientError::Io(_) | ClientError::Closed(_) | ClientError::Handshake(_) => {
            Failure::Transport
        }
        ClientError::Protocol(_) => Failure::Protocol,
        ClientError::Server { code, .. } if *code == ErrorCode::RateLimited => Failure::RateLimited,
        ClientError::Server { .. } => Failure::Server,
    }
}

/// A batch's outcomes and its per-request failures, as `Completion` carries them.
type Mapped = (Result<Vec<Outcome>, Failure>, Vec<(usize, Failure)>);

/// Replies to outcomes; server errors become per-request failures.
fn map_replies(replies: Vec<Reply>, expected: usize) -> Mapped {
    if replies.len() != expected {
        return (Err(Failure::Protocol), Vec::new());
    }
    let mut failed = Vec::new();
    let outcomes = replies
        .into_iter()
        .enumerate()
        .map(|(i, reply)| match reply {
            Reply::Outcome(o) => o,
            Reply::Error { code, .. } => {
                let f = if code == ErrorCode::RateLimited {
                    Failure::RateLimited
                } else {
                    Failure::Server
                };
                failed.push((i, f));
                Outcome::Rejected(Reject::Busy)
            }
            Reply::AuthOk => {
                failed.push((i, Failure::Protocol));
                Outcome::Rejected(Reject::Busy)
            }
        })
        .collect();
    (Ok(outcomes), failed)
}

impl Tcp {
    /// Opens `options.connections` connections to `tcp://HOST:PORT`.
    pub fn connect(spec: &str, options: &TargetOptions) -> Result<Tcp, TargetError> {
        let net = |detail: String| TargetError::Network {
            target: spec.to_string(),
            detail,
        };
        let host_port = spec
            .strip_prefix("tcp://")
            .filter(|r| !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| TargetError::Spec(spec.to_string()))?;
        let addr = host_port
            .to_socket_addrs()
            .map_err(|e| net(format!("cannot resolve {host_port}: {e}")))?
            .next()
            .ok_or_else(|| net(format!("{host_port} resolves to no address")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("loadgen-tcp")
            .enable_all()
            .build()
            .map_err(|e| net(format!("cannot start the I/O runtime: {e}")))?;
        let timeout = Duration::from_millis(options.request_timeout_ms);
        let clients = runtime.block_on(async {
            let mut clients = Vec::with_capacity(options.connections);
            for _ in 0..options.connections.max(1) {
                let client = tokio::time::timeout(timeout, Client::connect(addr))
                    .await
                    .map_err(|_| net("connect timed out".into()))?
                    .map_err(|e| net(format!("cannot connect: {e}")))?;
                clients.push(client);
            }
            Ok::<_, TargetError>(clients)
        })?;
        Ok(Tcp {
            spec: spec.to_string(),
            addr,
            runtime,
            clients,
            next: AtomicUsize::new(0),
            token: options.admin_token.clone(),
            timeout,
        })
    }

    fn net(&self, detail: String) -> TargetError {
        TargetError::Network {
            target: self.spec.clone(),
            detail,
        }
    }

    /// A fresh connection, authenticated when a token is known.
    fn admin(&self) -> Result<Client, TargetError> {
        self.runtime.block_on(async {
            let client = Client::connect(self.addr)
                .await
                .map_err(|e| self.net(format!("cannot connect: {e}")))?;
            if let Some(token) = &self.token {
                client
                    .authenticate(token)
                    .await
                    .map_err(|e| self.net(format!("admin token refused: {e}")))?;
            }
            Ok(client)
        })
    }
}

impl Target for Tcp {
    fn describe(&self) -> String {
        format!(
            "{} ({} pipelined connections)",
            self.spec,
            self.clients.len()
        )
    }
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }
    fn keeps_state(&self) -> bool {
        true
    }
    fn is_remote(&self) -> bool {
        true
    }

    fn setup(&self, catalog: &[SkuConfig]) -> Result<(), TargetError> {
        if self.token.is_none() {
            return Err(self.net(
                "FLASHSALE_ADMIN_TOKEN is not set: it is needed to create the catalog".into(),
            ));
        }
        let admin = self.admin()?;
        for chunk in catalog.chunks(ADMIN_CHUNK) {
            let commands = chunk.iter().map(|c| Command::UpsertSku(*c)).collect();
            let replies = self
                .runtime
                .block_on(admin.execute_batch(commands))
                .map_err(|e| self.net(format!("catalog upload failed: {e}")))?;
            for (config, reply) in chunk.iter().zip(replies) {
                match reply {
                    Reply::Outcome(Outcome::SkuCreated(_) | Outcome::Sku(_)) => {}
                    Reply::Outcome(other) => {
                        return Err(TargetError::Setup {
                            sku_id: config.sku_id,
                            detail: format!("engine answered {}", other.label()),
                        });
                    }
                    Reply::Error { code, detail } => {
                        return Err(TargetError::Setup {
                            sku_id: config.sku_id,
                            detail: format!("server error {}: {detail}", code.code()),
                        });
                    }
                    Reply::AuthOk => {
                        return Err(TargetError::Setup {
                            sku_id: config.sku_id,
                            detail: "unexpected auth reply".into(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn submit(&self, commands: Vec<Command>, done: Done) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        let client = self.clients[i].clone();
        let timeout = self.timeout;
        self.runtime.spawn(async move {
            let sent_at = Instant::now();
            let expected = commands.len();
            let (result, failed) =
                match tokio::time::timeout(timeout, client.execute_batch(commands)).await {
                    Ok(Ok(replies)) => map_replies(replies, expected),
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

    fn query_skus(&self, sku_ids: &[SkuId]) -> Result<Vec<Option<SkuView>>, TargetError> {
        let client = self.admin()?;
        let mut views = Vec::with_capacity(sku_ids.len());
        for chunk in sku_ids.chunks(ADMIN_CHUNK) {
            let commands = chunk
                .iter()
                .map(|&sku_id| Command::QuerySku { sku_id })
                .collect();
            let replies = self
                .runtime
                .block_on(client.execute_batch(commands))
                .map_err(|e| self.net(format!("SKU query failed: {e}")))?;
            for (&sku_id, reply) in chunk.iter().zip(replies) {
                match reply {
                    Reply::Outcome(Outcome::Sku(v) | Outcome::SkuCreated(v)) => {
                        views.push(Some(*v))
                    }
                    Reply::Outcome(Outcome::Rejected(Reject::UnknownSku)) => views.push(None),
                    other => {
                        return Err(TargetError::Query {
                            sku_id,
                            detail: format!("unexpected reply {other:?}"),
                        });
                    }
                }
            }
        }
        Ok(views)
    }

    fn shutdown(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_per_request_failures() {
        let replies = vec![
            Reply::Outcome(Outcome::Rejected(Reject::SoldOut)),
            Reply::Error {
                code: ErrorCode::RateLimited,
                detail: String::new(),
            },
        ];
        let (result, failed) = map_replies(replies, 2);
        assert_eq!(result.unwrap()[0], Outcome::Rejected(Reject::SoldOut));
        assert_eq!(failed, vec![(1, Failure::RateLimited)]);
        let (result, _) = map_replies(Vec::new(), 1);
        assert_eq!(result, Err(Failure::Protocol));
    }
}
