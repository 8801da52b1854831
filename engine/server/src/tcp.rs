//! The binary TCP front door (byte layout in `docs/protocol.md`, codec in `flashsale_wire::protocol`):
//! accept loop with connection limit, handshake with a timeout, then per connection a reader
//! that decodes everything one read brought and submits it to the engine as one batch, and a
//! writer that answers in request order, coalescing every ready reply into one `write_all`.
//! Per-connection memory is bounded (read buffer, in-flight batches, write buffer). A malformed
//! frame gets an error reply and the connection closes; nothing a client sends reaches another
//! connection. This module must not decide business rules; the engine answers every command.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::Shared;
use super::limits::{Guard, guard};
use super::metrics::{LocalCounts, Op, Transport};
use flashsale_core::types::{Command, Outcome, OutcomeCode, Reject};
use flashsale_engine::routing::Stream;
use flashsale_wire::protocol::{
    self, ErrorCode, HANDSHAKE_LEN, HandshakeStatus, MAX_FRAME_LEN, MIN_REQUEST_LEN, ProtocolError,
    Reply, Request,
};

/// Accepts TCP connections until shutdown, then waits for them to drain.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                tracing::warn!(%error, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            shared.metrics.connection_rejected(Transport::Tcp);
            tokio::spawn(refuse(stream));
            continue;
        };
        connections.spawn(connection(stream, shared.clone(), shutdown.clone(), permit));
    }
    drop(listener);
    let drain = Duration::from_millis(shared.config.drain_timeout_ms);
    let drained = tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("tcp connections still open after the drain timeout; closing them");
        connections.abort_all();
    }
}

async fn refuse(mut stream: TcpStream) {
    let busy = protocol::server_handshake(HandshakeStatus::Busy);
    let write = stream.write_all(&busy);
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// Counts the connection as open for as long as it lives.
struct OpenConnection(Arc<Shared>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.metrics.connection_closed(Transport::Tcp);
    }
}

async fn connection(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    shared.metrics.connection_opened(Transport::Tcp);
    let _open = OpenConnection(shared.clone());
    let _ = stream.set_nodelay(true);
    let mut hello = [0u8; HANDSHAKE_LEN];
    let header_timeout = Duration::from_millis(shared.config.header_read_timeout_ms.max(1));
    match tokio::time::timeout(header_timeout, stream.read_exact(&mut hello)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    let status = protocol::check_client_handshake(&hello);
    let answer_bytes = protocol::server_handshake(status);
    let answer = stream.write_all(&answer_bytes);
    if !matches!(
        tokio::time::timeout(header_timeout, answer).await,
        Ok(Ok(()))
    ) || status != HandshakeStatus::Ok
    {
        return;
    }
    let (reader, writer) = stream.into_split();
    let (sender, receiver) = mpsc::channel(shared.config.tcp_max_inflight_batches);
    let writer_task = tokio::spawn(write_loop(writer, receiver, shared.clone()));
    // One stream per connection: its requests are routed in the order they were sent.
    let stream = shared.engine.stream();
    read_loop(reader, sender, &shared, &stream, shutdown).await;
    let _ = writer_task.await;
}

/// One reply slot, in request order.
#[derive(Clone, Copy)]
struct Slot {
    request_id: u32,
    op: Op,
    /// Index into `Pending::immediate`, or `ENGINE` for the next engine outcome.
    immediate: u32,
}

const ENGINE: u32 = u32::MAX;

/// Everything one read brought: replies in order, some from the engine, some answered here.
struct Pending {
    started: Instant,
    slots: Vec<Slot>,
    immediate: Vec<(Reply, OutcomeCode)>,
    engine_count: usize,
    outcomes: Option<oneshot::Receiver<Vec<Outcome>>>,
}

impl Pending {
    fn answer(&mut self, request_id: u32, op: Op, reply: Reply, label: OutcomeCode) {
        self.slots.push(Slot {
            request_id,
            op,
            immediate: self.immediate.len() as u32,
        });
        self.immediate.push((reply, label));
    }

    /// Answers a request with a server error, counted under the error's code.
    fn refuse(&mut self, request_id: u32, op: Op, code: ErrorCode, detail: impl Into<String>) {
        let reply = Reply::Error {
            code,
            detail: detail.into(),
        };
        self.answer(request_id, op, reply, code.outcome_code());
    }
}

async fn read_loop(
    mut reader: OwnedReadHalf,
    sender: mpsc::Sender<Pending>,
    shared: &Shared,
    stream: &Stream,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_buffer = shared.config.tcp_read_buffer_bytes;
    let idle = Duration::from_millis(shared.config.idle_timeout_ms.max(1));
    let frame_timeout = Duration::from_millis(shared.config.header_read_timeout_ms.max(1));
    let mut target = 8 * 1024.min(max_buffer);
    let mut buf = BytesMut::with_capacity(target);
    let mut authenticated = false;
    // When the incomplete frame at the end of `buf` must be whole: its first byte's read plus
    // the frame timeout, however often bytes of it arrive since.
    let mut frame_deadline: Option<tokio::time::Instant> = None;
    loop {
        // The buffer never holds more than one incomplete frame between reads, so reserving
        // up to `target` keeps it within `max_buffer + MAX_FRAME_LEN`.
        if buf.capacity() - buf.len() < target / 2 {
            buf.reserve(target);
        }
        let spare_before = buf.capacity() - buf.len();
        let wait = frame_deadline.map_or(idle, |deadline| {
            idle.min(deadline.saturating_duration_since(tokio::time::Instant::now()))
        });
        let read = tokio::select! {
            read = tokio::time::timeout(wait, reader.read_buf(&mut buf)) => read,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                if n == spare_before && target < max_buffer {
                    target = (target * 2).min(max_buffer);
                }
            }
        }
        let (pending, close) = decode_batch(&mut buf, shared, stream, &mut authenticated);
        // A frame that began in this read (the buffer was empty, or a frame ended in it) starts
        // its clock now; one that is still incomplete keeps the clock of its first byte.
        frame_deadline = match (buf.is_empty(), frame_deadline) {
            (true, _) => None,
            (false, Some(deadline)) if pending.is_none() => Some(deadline),
            (false, _) => Some(tokio::time::Instant::now() + frame_timeout),
        };
        if let Some(pending) = pending {
            let sent = match sender.try_send(pending) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
                Err(mpsc::error::TrySendError::Full(pending)) => {
                    // Back-pressure: the server, not the client, is slow now, so the wait does
                    // not count against the frame's deadline.
                    let blocked_from = tokio::time::Instant::now();
                    let sent = sender.send(pending).await.is_ok();
                    if let Some(deadline) = frame_deadline.as_mut() {
                        *deadline += blocked_from.elapsed();
                    }
                    sent
                }
            };
            if !sent {
                break;
            }
        }
        if close {
            break;
        }
    }
}

/// Why a command may not reach the engine, if it may not: its guard from the command table
/// (the admin token, the per-user rate limit) is checked here.
fn admission(
    command: &Command,
    shared: &Shared,
    authenticated: bool,
    rate_now: Option<Instant>,
) -> Option<(ErrorCode, &'static str)> {
    match guard(command) {
        Guard::Admin if !authenticated => Some((
            ErrorCode::Unauthorized,
            "admin commands need a successful auth request on this connection",
        )),
        Guard::User(user_id)
            if shared
                .rate_limiter
                .as_ref()
                .zip(rate_now)
                .is_some_and(|(limiter, now)| !limiter.allow(user_id, now)) =>
        {
            Some((
                ErrorCode::RateLimited,
                "this user_id sent too many requests",
            ))
        }
        Guard::Admin | Guard::User(_) | Guard::Open => None,
    }
}

/// Decodes every complete frame in `buf`, submits the commands as one engine batch, and
/// answers the rest here. Returns the pending replies and whether the connection must close.
fn decode_batch(
    buf: &mut BytesMut,
    shared: &Shared,
    stream: &Stream,
    authenticated: &mut bool,
) -> (Option<Pending>, bool) {
    let mut pending = Pending {
        started: Instant::now(),
        slots: Vec::new(),
        immediate: Vec::new(),
        engine_count: 0,
        outcomes: None,
    };
    let mut commands: Vec<Command> = Vec::new();
    let mut close = false;
    let mut consumed = 0usize;
    let rate_now = shared.rate_limiter.as_ref().map(|_| Instant::now());
    loop {
        let (body, used) =
            match protocol::split_frame(&buf[consumed..], MIN_REQUEST_LEN, MAX_FRAME_LEN) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => {
                    let code = if matches!(error, ProtocolError::FrameTooLarge { .. }) {
                        ErrorCode::FrameTooLarge
                    } else {
                        ErrorCode::MalformedFrame
                    };
                    pending.refuse(0, Op::Unknown, code, error.to_string());
                    close = true;
                    break;
                }
            };
        consumed += used;
        match protocol::decode_request(body) {
            Ok((request_id, Request::Command(command))) => {
                let op = Op::Command(command.kind());
                let refusal = admission(&command, shared, *authenticated, rate_now);
                match refusal {
                    Some((code, detail)) => pending.refuse(request_id, op, code, detail),
                    None => {
                        commands.push(command);
                        pending.slots.push(Slot {
                            request_id,
                            op,
                            immediate: ENGINE,
                        });
                    }
                }
            }
            Ok((request_id, Request::Auth(token))) => {
                if shared.admin_token.matches(&token) {
                    *authenticated = true;
                    pending.answer(request_id, Op::Auth, Reply::AuthOk, OutcomeCode::Ok);
                } else {
                    // The connection has the authority of its last auth (docs/protocol.md §2.3).
                    *authenticated = false;
                    pending.refuse(
                        request_id,
                        Op::Auth,
                        ErrorCode::Unauthorized,
                        "wrong token, or the server has no admin token",
                    );
                }
            }
            Err(failure) if !failure.is_fatal() => {
                pending.refuse(
                    failure.request_id,
                    Op::Unknown,
                    ErrorCode::UnknownOpcode,
                    failure.error.to_string(),
                );
            }
            Err(failure) => {
                pending.refuse(
                    failure.request_id,
                    Op::Unknown,
                    ErrorCode::MalformedFrame,
                    failure.error.to_string(),
                );
                close = true;
                break;
            }
        }
    }
    if close {
        buf.clear();
    } else {
        buf.advance(consumed);
    }
    if pending.slots.is_empty() {
        return (None, close);
    }
    if !commands.is_empty() {
        pending.engine_count = commands.len();
        let (reply, outcomes) = oneshot::channel();
        shared.capture(&commands);
        stream.submit(commands, move |outcomes| {
            // The writer may have gone (client disconnected): nothing to deliver then.
            let _ = reply.send(outcomes);
        });
        pending.outcomes = Some(outcomes);
    }
    (Some(pending), close)
}

/// Bytes of replies gathered before a write even if more are ready.
const WRITE_COALESCE_BYTES: usize = 256 * 1024;

async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut receiver: mpsc::Receiver<Pending>,
    shared: Arc<Shared>,
) {
    let idle = Duration::from_millis(shared.config.idle_timeout_ms.max(1));
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut counts = LocalCounts::default();
    loop {
        if queue.is_empty() {
            match receiver.recv().await {
                Some(pending) => queue.push_back(pending),
                None => break,
            }
        }
        while let Ok(pending) = receiver.try_recv() {
            queue.push_back(pending);
        }
        while let Some(front) = queue.front_mut() {
            let outcomes = match front.outcomes.as_mut() {
                None => Vec::new(),
                Some(receiver) => match receiver.try_recv() {
                    Ok(outcomes) => outcomes,
                    Err(oneshot::error::TryRecvError::Empty) if !out.is_empty() => break,
                    Err(oneshot::error::TryRecvError::Empty) => {
                        receiver.await.unwrap_or_else(|_| {
                            vec![Outcome::Rejected(Reject::Busy); front.engine_count]
                        })
                    }
                    Err(oneshot::error::TryRecvError::Closed) => {
                        vec![Outcome::Rejected(Reject::Busy); front.engine_count]
                    }
                },
            };
            let Some(pending) = queue.pop_front() else {
                break;
            };
            encode_pending(pending, outcomes, &mut out, &mut counts, &shared);
            if out.len() >= WRITE_COALESCE_BYTES {
                break;
            }
        }
        if !out.is_empty() {
            match tokio::time::timeout(idle, writer.write_all(&out)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
            out.clear();
            if out.capacity() > 4 * WRITE_COALESCE_BYTES {
                out = BytesMut::with_capacity(16 * 1024);
            }
            counts.flush(&shared.metrics, Transport::Tcp);
        }
    }
    counts.flush(&shared.metrics, Transport::Tcp);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
}

fn encode_pending(
    pending: Pending,
    outcomes: Vec<Outcome>,
    out: &mut BytesMut,
    counts: &mut LocalCounts,
    shared: &Shared,
) {
    let mut per_op = [0u64; Op::COUNT];
    let mut outcomes = outcomes.into_iter();
    for slot in &pending.slots {
        let op = slot.op;
        per_op[op.index()] += 1;
        if slot.immediate == ENGINE {
            let outcome = outcomes.next().unwrap_or(Outcome::Rejected(Reject::Busy));
            counts.add(op, outcome.code());
            protocol::encode_outcome_reply(slot.request_id, &outcome, out);
        } else if let Some((reply, label)) = pending.immediate.get(slot.immediate as usize) {
            counts.add(op, *label);
            protocol::encode_reply(slot.request_id, reply, out);
        }
    }
    let micros = pending.started.elapsed().as_micros() as u64;
    for (op, n) in Op::all().zip(per_op) {
        if n > 0 {
            shared.metrics.observe(Transport::Tcp, op, micros, n);
        }
    }
}
