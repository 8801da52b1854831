//! An async, pipelined client for the binary TCP protocol (`docs/protocol.md`). One
//! connection carries many requests in flight: callers hand in batches, a writer task encodes
//! every batch waiting into one buffer and writes it with one `write_all`, and a reader task
//! matches replies to batches in order (the server answers in request order; the request id is
//! checked too). Cheap to clone: clones share the connection. It owns only its connection and
//! must not depend on the server's internals — only on `crate::protocol` and the types.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use crate::protocol::{
    self, ErrorCode, HANDSHAKE_LEN, HandshakeStatus, MAX_FRAME_LEN, ProtocolError, Reply, Request,
};
use flashsale_core::types::{Command, Outcome};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server refused the handshake: {0:?}")]
    Handshake(HandshakeStatus),
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("server error {}: {detail}", code.code())]
    Server { code: ErrorCode, detail: String },
    #[error("the connection is closed: {0}")]
    Closed(String),
}

type BatchReply = oneshot::Sender<Result<Vec<Reply>, ClientError>>;

struct Job {
    requests: Vec<Request>,
    reply: BatchReply,
}

/// A batch sent and waiting for its replies.
struct InFlight {
    first_id: u32,
    count: usize,
    replies: Vec<Reply>,
    reply: BatchReply,
}

/// Batches awaiting replies, and why the connection closed once it has.
#[derive(Default)]
struct InFlightState {
    queue: VecDeque<InFlight>,
    closed: Option<String>,
}

type InFlightQueue = Arc<Mutex<InFlightState>>;

/// A connection to a flashsale server. See the module documentation.
#[derive(Clone)]
pub struct Client {
    jobs: mpsc::Sender<Job>,
}

impl Client {
    /// Connects and performs the handshake. At most `max_queued_batches` batches wait to be
    /// written (callers wait beyond that).
    pub async fn connect(addr: SocketAddr) -> Result<Client, ClientError> {
        Client::connect_with(addr, 1024).await
    }

    pub async fn connect_with(
        addr: SocketAddr,
        max_queued_batches: usize,
    ) -> Result<Client, ClientError> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        stream.write_all(&protocol::client_handshake()).await?;
        let mut answer = [0u8; HANDSHAKE_LEN];
        stream.read_exact(&mut answer).await?;
        let status = protocol::parse_server_handshake(&answer)?;
        if status != HandshakeStatus::Ok {
            return Err(ClientError::Handshake(status));
        }
        let (reader, writer) = stream.into_split();
        let in_flight: InFlightQueue = Arc::new(Mutex::new(InFlightState::default()));
        let (jobs, receiver) = mpsc::channel(max_queued_batches.max(1));
        tokio::spawn(write_loop(writer, receiver, in_flight.clone()));
        tokio::spawn(read_loop(reader, in_flight));
        Ok(Client { jobs })
    }

    /// Sends requests as one pipelined batch; answers one reply per request, in order.
    pub async fn send(&self, requests: Vec<Request>) -> Result<Vec<Reply>, ClientError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { requests, reply })
            .await
            .map_err(|_| ClientError::Closed("the connection's writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| ClientError::Closed("the connection closed before answering".into()))?
    }

    /// Runs commands as one batch; each reply is an outcome or a server error (e.g.
    /// `rate_limited`).
    pub async fn execute_batch(&self, commands: Vec<Command>) -> Result<Vec<Reply>, ClientError> {
        self.send(commands.into_iter().map(Request::Command).collect())
            .await
    }

    /// Runs one command.
    pub async fn execute(&self, command: Command) -> Result<Outcome, ClientError> {
        let reply = self
            .send(vec![Request::Command(command)])
            .await?
            .pop()
            .ok_or_else(|| ClientError::Closed("no reply".into()))?;
        match reply {
            Reply::Outcome(outcome) => Ok(outcome),
            Reply::Error { code, detail } => Err(ClientError::Server { code, detail }),
            Reply::AuthOk => Err(ClientError::Protocol(ProtocolError::InvalidValue(
                "auth reply to a command",
            ))),
        }
    }

    /// Authenticates this connection for admin commands.
    pub async fn authenticate(&self, token: &str) -> Result<(), ClientError> {
        let reply = self
            .send(vec![Request::Auth(token.as_bytes().to_vec())])
            .await?
            .pop();
        match reply {
            Some(Reply::AuthOk) => Ok(()),
            Some(Reply::Error { code, detail }) => Err(ClientError::Server { code, detail }),
            _ => Err(ClientError::Protocol(ProtocolError::InvalidValue(
                "unexpected reply to auth",
            ))),
        }
    }
}

/// Marks the connection closed and fails every batch waiting on it.
fn fail_all(in_flight: &InFlightQueue, why: &str) {
    let drained: Vec<InFlight> = {
        let mut state = in_flight.lock().unwrap_or_else(|e| e.into_inner());
        state.closed.get_or_insert_with(|| why.to_owned());
        state.queue.drain(..).collect()
    };
    for batch in drained {
        let _ = batch.reply.send(Err(ClientError::Closed(why.to_owned())));
    }
}

async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut receiver: mpsc::Receiver<Job>,
    in_flight: InFlightQueue,
) {
    let mut next_id: u32 = 1;
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut jobs = Vec::with_capacity(64);
    while receiver.recv_many(&mut jobs, 256).await > 0 {
        {
            let mut state = in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(why) = &state.closed {
                // The reader has stopped: nothing sent now could ever be answered.
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(ClientError::Closed(why.clone())));
                }
                return;
            }
            for job in jobs.drain(..) {
                let first_id = next_id;
                for request in &job.requests {
                    protocol::encode_request(next_id, request, &mut out);
                    next_id = next_id.wrapping_add(1);
                }
                state.queue.push_back(InFlight {
                    first_id,
                    count: job.requests.len(),
                    replies: Vec::with_capacity(job.requests.len()),
                    reply: job.reply,
                });
            }
        }
        if let Err(error) = writer.write_all(&out).await {
            fail_all(&in_flight, &error.to_string());
            return;
        }
        out.clear();
    }
    let _ = writer.shutdown().await;
}

async fn read_loop(mut reader: OwnedReadHalf, in_flight: InFlightQueue) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let why = loop {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        match reader.read_buf(&mut buf).await {
            Ok(0) => break "the server closed the connection".to_owned(),
            Err(error) => break error.to_string(),
            Ok(_) => {}
        }
        let mut consumed = 0;
        let mut failure = None;
        {
            let mut state = in_flight.lock().unwrap_or_else(|e| e.into_inner());
            let queue = &mut state.queue;
            loop {
                let (body, used) = match protocol::split_frame(&buf[consumed..], 5, MAX_FRAME_LEN) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(error) => {
                        failure = Some(error.to_string());
                        break;
                    }
                };
                consumed += used;
                let (request_id, reply) = match protocol::decode_reply(body) {
                    Ok(decoded) => decoded,
                    Err(error) => {
                        failure = Some(error.to_string());
                        break;
                    }
                };
                let Some(front) = queue.front_mut() else {
                    failure = Some(format!("reply {request_id} to no request"));
                    break;
                };
                let expected = front.first_id.wrapping_add(front.replies.len() as u32);
                if request_id != expected {
                    // A frame-level error (id 0) comes before the server closes the stream.
                    failure = Some(match reply {
                        Reply::Error { code, detail } => format!("{}: {detail}", code.code()),
                        _ => format!("reply id {request_id}, expected {expected}"),
                    });
                    break;
                }
                front.replies.push(reply);
                if front.replies.len() == front.count
                    && let Some(done) = queue.pop_front()
                {
                    let _ = done.reply.send(Ok(done.replies));
                }
            }
        }
        if let Some(why) = failure {
            break why;
        }
        bytes::Buf::advance(&mut buf, consumed);
    };
    fail_all(&in_flight, &why);
}
