//! The HTTP target's hot path: a fixed set of keep-alive HTTP/1.1 connections, each one task
//! that takes the next waiting request from a shared queue, writes it (head and JSON body
//! formatted into buffers the connection reuses), reads the answer (head parsed in place with
//! `httparse`, the body handed to the answer mapping) and hands the batch back. A request
//! waiting in the queue is not yet sent: `sent_at` is stamped when a connection takes it. A
//! connection that failed (I/O error, timeout, an answer it cannot frame) is dropped and the
//! next request opens a new one; nothing is retried. Setup and queries do not come here.

use super::order_outcome;
use crate::targets::{Answers, Completion, Done, Exchange, Failure};
use flashsale_engine::{Command, Outcome};
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// A keep-alive connection idle for longer than this is replaced before it is used (a server
/// may close idle connections; writing into one that it closed would fail the request).
const IDLE_REOPEN: Duration = Duration::from_secs(4);
/// Read buffer per connection; grows (rarely: answers are a few hundred bytes) up to the cap.
const READ_BUFFER: usize = 4096;
const MAX_ANSWER: usize = 1 << 20;
/// Headers an answer may carry (the server sends about five).
const MAX_HEADERS: usize = 32;

/// Where a finished batch goes.
pub(super) enum Reply {
    /// The driver's exchange path: the exchange itself goes back.
    Answers(Answers),
    /// The callback path (`Target::submit`).
    Done(Done),
}

/// One batch waiting for (or on) a connection.
pub(super) struct Job {
    pub exchange: Exchange,
    pub reply: Reply,
}

/// Batches waiting for a free connection, oldest first. Its length is bounded by the batches
/// the driver has in flight (its exchange pool); the room for them is allocated up front.
pub(super) struct Queue {
    jobs: Mutex<VecDeque<Job>>,
    ready: Notify,
}

impl Queue {
    pub(super) fn with_capacity(capacity: usize) -> Queue {
        Queue {
            jobs: Mutex::new(VecDeque::with_capacity(capacity)),
            ready: Notify::new(),
        }
    }

    /// Never blocks (beyond the queue's lock, held for a push or a pop).
    pub(super) fn push(&self, job: Job) {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(job);
        self.ready.notify_one();
    }

    fn try_pop(&self) -> Option<Job> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    /// The oldest waiting batch. A connection registers for a wake-up before it looks, so a
    /// push between its look and its wait still wakes it.
    async fn pop(&self) -> Job {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(job) = self.try_pop() {
                return job;
            }
            notified.await;
        }
    }
}

/// What every connection needs to know about the server.
pub(super) struct Endpoint {
    /// `HOST:PORT`, also the `host` header.
    pub host_port: String,
    pub timeout: Duration,
}

/// An answer's head, as far as the target needs it.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    head_len: usize,
    body_len: usize,
    /// The server closes the connection after this answer.
    close: bool,
}

/// Parses an answer's head from the start of `buf`: `Ok(None)` while it is incomplete. Only
/// `content-length` framing is understood (the server frames every answer so); anything else
/// is a protocol failure.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Failure::Protocol),
    };
    let status = response.code.ok_or(Failure::Protocol)?;
    let mut body_len = None;
    let mut close = response.version == Some(0);
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(header.value).map_err(|_| Failure::Protocol)?;
            body_len = Some(text.trim().parse().map_err(|_| Failure::Protocol)?);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Failure::Protocol);
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = header.value.eq_ignore_ascii_case(b"close");
        }
    }
    let body_len = match (body_len, status) {
        (Some(n), _) => n,
        (None, 204 | 304) => 0,
        (None, _) => return Err(Failure::Protocol),
    };
    Ok(Some(Head {
        status,
        head_len,
        body_len,
        close,
    }))
}

fn push_number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes one command as an HTTP request into `out` (cleared first), its body formatted in
/// `body`. Commands the order endpoints do not take are a protocol failure, as before.
fn write_request(
    out: &mut Vec<u8>,
    body: &mut Vec<u8>,
    host: &str,
    command: &Command,
) -> Result<(), Failure> {
    out.clear();
    body.clear();
    out.extend_from_slice(b"POST /v1/orders");
    match *command {
        Command::Reserve {
            order_id,
            user_id,
            sku_id,
            qty,
        } => {
            body.extend_from_slice(b"{\"order_id\":");
            push_number(body, order_id);
            body.extend_from_slice(b",\"user_id\":");
            push_number(body, user_id);
            body.extend_from_slice(b",\"sku_id\":");
            push_number(body, sku_id);
            body.extend_from_slice(b",\"qty\":");
            push_number(body, qty);
            body.push(b'}');
        }
        Command::Pay { order_id, user_id } | Command::Cancel { order_id, user_id } => {
            out.push(b'/');
            push_number(out, order_id);
            out.extend_from_slice(if matches!(command, Command::Pay { .. }) {
                b"/pay"
            } else {
                b"/cancel"
            });
            body.extend_from_slice(b"{\"user_id\":");
            push_number(body, user_id);
            body.push(b'}');
        }
        Command::UpsertSku(_)
        | Command::Restock { .. }
        | Command::QueryOrder { .. }
        | Command::QuerySku { .. } => return Err(Failure::Protocol),
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
    push_number(out, body.len());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    Ok(())
}

/// One keep-alive connection (opened on first use) and its reused buffers.
struct Connection {
    stream: Option<TcpStream>,
    last_used: Instant,
    out: Vec<u8>,
    body: Vec<u8>,
    input: Vec<u8>,
    /// Bytes of `input` read and not yet consumed.
    filled: usize,
}

impl Connection {
    fn new() -> Connection {
        Connection {
            stream: None,
            last_used: Instant::now(),
            out: Vec::with_capacity(256),
            body: Vec::with_capacity(128),
            input: vec![0; READ_BUFFER],
            filled: 0,
        }
    }

    fn close(&mut self) {
        self.stream = None;
        self.filled = 0;
    }

    /// Sends one command and reads its answer. On an error that leaves the connection's
    /// framing unknown the caller closes it.
    async fn round_trip(
        &mut self,
        endpoint: &Endpoint,
        command: &Command,
        now: Instant,
    ) -> Result<Outcome, Failure> {
        write_request(&mut self.out, &mut self.body, &endpoint.host_port, command)?;
        if now.duration_since(self.last_used) > IDLE_REOPEN {
            self.close();
        }
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(endpoint.host_port.as_str())
                    .await
                    .map_err(|_| Failure::Transport)?;
                stream.set_nodelay(true).map_err(|_| Failure::Transport)?;
                self.filled = 0;
                self.stream.insert(stream)
            }
        };
        stream
            .write_all(&self.out)
            .await
            .map_err(|_| Failure::Transport)?;
        let head = loop {
            if let Some(head) = parse_head(&self.input[..self.filled])? {
                if head.head_len + head.body_len > MAX_ANSWER {
                    return Err(Failure::Protocol);
                }
                break head;
            }
            self.read_more(self.filled + 1).await?;
        };
        let end = head.head_len + head.body_len;
        if self.filled < end {
            self.read_more(end).await?;
        }
        let outcome = order_outcome(head.status, &self.input[head.head_len..end]);
        self.input.copy_within(end..self.filled, 0);
        self.filled -= end;
        self.last_used = Instant::now();
        if head.close {
            self.close();
        }
        outcome
    }

    /// Reads until at least `want` bytes are buffered.
    async fn read_more(&mut self, want: usize) -> Result<(), Failure> {
        if want > MAX_ANSWER {
            return Err(Failure::Protocol);
        }
        if self.input.len() < want.max(self.filled + 1) {
            let len = want.next_power_of_two().max(self.input.len() * 2);
            self.input.resize(len, 0);
        }
        let stream = self.stream.as_mut().ok_or(Failure::Transport)?;
        while self.filled < want {
            let n = stream
                .read(&mut self.input[self.filled..])
                .await
                .map_err(|_| Failure::Transport)?;
            if n == 0 {
                return Err(Failure::Transport);
            }
            self.filled += n;
        }
        Ok(())
    }
}

/// One connection's life: take a batch, send its requests one after another, hand it back.
pub(super) async fn serve(queue: std::sync::Arc<Queue>, endpoint: std::sync::Arc<Endpoint>) {
    let mut connection = Connection::new();
    loop {
        let Job {
            mut exchange,
            reply,
        } = queue.pop().await;
        let sent_at = Instant::now();
        exchange.outcomes.clear();
        exchange.failed.clear();
        exchange.failure = None;
        for i in 0..exchange.commands.len() {
            let command = exchange.commands[i];
            let answer = tokio::time::timeout(
                endpoint.timeout,
                connection.round_trip(&endpoint, &command, sent_at),
            )
            .await
            .unwrap_or(Err(Failure::Timeout));
            match answer {
                Ok(outcome) => exchange.outcomes.push(outcome),
                Err(failure) => {
                    // A bad body in a well-framed answer leaves the connection usable; the
                    // connection cannot tell which, so it starts afresh either way.
                    connection.close();
                    exchange.outcomes.clear();
                    exchange.failure = Some(failure);
                    break;
                }
            }
        }
        exchange.sent_at = sent_at;
        exchange.done_at = Instant::now();
        match reply {
            Reply::Answers(answers) => answers.deliver(exchange),
            Reply::Done(done) => done(Completion {
                result: exchange
                    .failure
                    .map_or_else(|| Ok(std::mem::take(&mut exchange.outcomes)), Err),
                failed: Vec::new(),
                sent_at,
                done_at: exchange.done_at,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_the_documented_shapes() {
        let (mut out, mut body) = (Vec::new(), Vec::new());
        let reserve = Command::Reserve {
            order_id: 7,
            user_id: 42,
            sku_id: 3,
            qty: 1,
        };
        write_request(&mut out, &mut body, "h:1", &reserve).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        let b = r#"{"order_id":7,"user_id":42,"sku_id":3,"qty":1}"#;
        assert_eq!(
            text,
            format!(
                "POST /v1/orders HTTP/1.1\r\nhost: h:1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
                b.len()
            )
        );
        let pay = Command::Pay {
            order_id: 18446744073709551615,
            user_id: 5,
        };
        write_request(&mut out, &mut body, "h:1", &pay).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.starts_with("POST /v1/orders/18446744073709551615/pay HTTP/1.1\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with("content-length: 13\r\n\r\n{\"user_id\":5}"),
            "{text}"
        );
        let cancel = Command::Cancel {
            order_id: 9,
            user_id: 5,
        };
        write_request(&mut out, &mut body, "h:1", &cancel).unwrap();
        assert!(out.starts_with(b"POST /v1/orders/9/cancel HTTP/1.1\r\n"));
        assert_eq!(
            write_request(&mut out, &mut body, "h:1", &Command::QuerySku { sku_id: 1 }),
            Err(Failure::Protocol)
        );
    }

    #[test]
    fn heads_are_framed_by_content_length_only() {
        let answer = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(
            parse_head(answer),
            Ok(Some(Head {
                status: 201,
                head_len: answer.len() - 2,
                body_len: 2,
                close: false
            }))
        );
        assert_eq!(parse_head(&answer[..20]), Ok(None));
        let closing = b"HTTP/1.1 503 X\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert!(parse_head(closing).unwrap().unwrap().close);
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(chunked), Err(Failure::Protocol));
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\n\r\n"),
            Err(Failure::Protocol)
        );
        assert_eq!(parse_head(b"garbage\r\n\r\n"), Err(Failure::Protocol));
    }
}
