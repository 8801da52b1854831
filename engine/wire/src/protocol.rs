//! The binary wire codec: byte-exact encoding of [`Command`]s, [`Outcome`]s, the handshake and
//! the length-prefixed request/reply frames of the TCP protocol (specified in
//! `docs/protocol.md`). It owns nothing but pure functions over byte slices and `BytesMut`: no
//! I/O, no state, no clock, no engine. The command encoding (`encode_command` /
//! `decode_command`) is deliberately frame-free so the journal can reuse it. Decoding never
//! panics on any input; every malformed input is a typed [`ProtocolError`].
//!
//! All integers are big-endian.

use bytes::{BufMut, BytesMut};

use flashsale_core::types::{
    Command, CommandKind, OrderStatus, OrderView, Outcome, OutcomeCode, Reject, SkuConfig, SkuView,
};

/// The four bytes that open every handshake, in both directions.
pub const MAGIC: [u8; 4] = *b"FSLE";
/// The protocol version this codec speaks.
pub const VERSION: u16 = 1;
/// Bytes of a handshake, in both directions.
pub const HANDSHAKE_LEN: usize = 8;
/// Largest frame body (the bytes after the length prefix) either side accepts.
pub const MAX_FRAME_LEN: u32 = 4096;
/// Smallest request body: request id (4) + opcode (1).
pub const MIN_REQUEST_LEN: u32 = 5;
/// Longest admin token an `Auth` request may carry.
pub const MAX_TOKEN_LEN: usize = 1024;

/// Opcode of the `Auth` request (the command opcodes are in the command table,
/// [`CommandKind::spec`]).
pub const OP_AUTH: u8 = 0x20;
const _: () = assert!(
    CommandKind::from_opcode(OP_AUTH).is_none(),
    "a command kind uses the auth opcode"
);

/// Reply tags.
pub const TAG_CREATED: u8 = 1;
pub const TAG_ORDER: u8 = 2;
pub const TAG_SKU_CREATED: u8 = 3;
pub const TAG_SKU: u8 = 4;
pub const TAG_REJECTED: u8 = 5;
pub const TAG_AUTH_OK: u8 = 0x20;
pub const TAG_ERROR: u8 = 0x21;

const SKU_CONFIG_LEN: usize = 4 + 8 + 4 + 8 + 8 + 1 + 8 + 8;
const ORDER_VIEW_LEN: usize = 8 + 8 + 4 + 4 + 1 + 8;
const SKU_VIEW_LEN: usize = SKU_CONFIG_LEN + 8 + 8 + 8;

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("unknown opcode {0:#04x}")]
    UnknownOpcode(u8),
    #[error("unknown reply tag {0:#04x}")]
    UnknownTag(u8),
    #[error("invalid field value: {0}")]
    InvalidValue(&'static str),
    #[error("frame length {0} is below the minimum")]
    FrameTooShort(u32),
    #[error("frame length {len} exceeds the maximum of {max}")]
    FrameTooLarge { len: u32, max: u32 },
    #[error("{0} trailing bytes after the payload")]
    TrailingBytes(usize),
    #[error("bad handshake magic")]
    BadMagic,
}

/// Server-side errors carried by an `Error` reply. Codes are stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// The opcode is not one this server knows; the connection stays open.
    UnknownOpcode = 1,
    /// The frame could not be decoded; the server closes the connection after this reply.
    MalformedFrame = 2,
    /// The length prefix exceeds [`MAX_FRAME_LEN`]; the server closes the connection.
    FrameTooLarge = 3,
    /// An admin command on a connection that has not authenticated, or a wrong token.
    Unauthorized = 4,
    /// The per-user rate limit refused the command.
    RateLimited = 5,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 5] = [
        ErrorCode::UnknownOpcode,
        ErrorCode::MalformedFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::Unauthorized,
        ErrorCode::RateLimited,
    ];

    /// The code the error is answered and counted under, in the outcome table.
    pub const fn outcome_code(self) -> OutcomeCode {
        match self {
            ErrorCode::UnknownOpcode => OutcomeCode::UnknownOpcode,
            ErrorCode::MalformedFrame => OutcomeCode::MalformedFrame,
            ErrorCode::FrameTooLarge => OutcomeCode::FrameTooLarge,
            ErrorCode::Unauthorized => OutcomeCode::Unauthorized,
            ErrorCode::RateLimited => OutcomeCode::RateLimited,
        }
    }

    pub fn code(self) -> &'static str {
        self.outcome_code().as_str()
    }

    pub fn from_u8(value: u8) -> Option<ErrorCode> {
        ErrorCode::ALL
            .get(usize::from(value).checked_sub(1)?)
            .copied()
    }
}

/// Handshake status the server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum HandshakeStatus {
    Ok = 0,
    BadMagic = 1,
    UnsupportedVersion = 2,
    /// The server is at its connection limit (or shutting down); retry later.
    Busy = 3,
}

impl HandshakeStatus {
    pub fn from_u16(value: u16) -> Option<HandshakeStatus> {
        match value {
            0 => Some(HandshakeStatus::Ok),
            1 => Some(HandshakeStatus::BadMagic),
            2 => Some(HandshakeStatus::UnsupportedVersion),
            3 => Some(HandshakeStatus::Busy),
            _ => None,
        }
    }
}

/// The client's opening 8 bytes.
pub fn client_handshake() -> [u8; HANDSHAKE_LEN] {
    let mut out = [0u8; HANDSHAKE_LEN];
    out[..4].copy_from_slice(&MAGIC);
    out[4..6].copy_from_slice(&VERSION.to_be_bytes());
    out
}

/// The server's 8-byte answer to a handshake.
pub fn server_handshake(status: HandshakeStatus) -> [u8; HANDSHAKE_LEN] {
    let mut out = [0u8; HANDSHAKE_LEN];
    out[..4].copy_from_slice(&MAGIC);
    out[4..6].copy_from_slice(&VERSION.to_be_bytes());
    out[6..8].copy_from_slice(&(status as u16).to_be_bytes());
    out
}

/// Checks a client's handshake; answers the status the server should send.
pub fn check_client_handshake(bytes: &[u8; HANDSHAKE_LEN]) -> HandshakeStatus {
    if bytes[..4] != MAGIC {
        HandshakeStatus::BadMagic
    } else if u16::from_be_bytes([bytes[4], bytes[5]]) != VERSION {
        HandshakeStatus::UnsupportedVersion
    } else {
        HandshakeStatus::Ok
    }
}

/// Reads a server's handshake answer: `Ok(status)` or `BadMagic`/`InvalidValue`.
pub fn parse_server_handshake(
    bytes: &[u8; HANDSHAKE_LEN],
) -> Result<HandshakeStatus, ProtocolError> {
    if bytes[..4] != MAGIC {
        return Err(ProtocolError::BadMagic);
    }
    HandshakeStatus::from_u16(u16::from_be_bytes([bytes[6], bytes[7]]))
        .ok_or(ProtocolError::InvalidValue("handshake status"))
}

/// A bounds-checked big-endian reader over a slice. Never panics.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let end = self.pos.checked_add(N).ok_or(ProtocolError::Truncated {
            needed: usize::MAX,
            available: self.bytes.len(),
        })?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(ProtocolError::Truncated {
                needed: end,
                available: self.bytes.len(),
            })?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        self.pos = end;
        Ok(out)
    }

    fn need(&self, len: usize) -> Result<(), ProtocolError> {
        let needed = self.pos + len;
        if needed > self.bytes.len() {
            Err(ProtocolError::Truncated {
                needed,
                available: self.bytes.len(),
            })
        } else {
            Ok(())
        }
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(u16::from_be_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_be_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, ProtocolError> {
        Ok(u64::from_be_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, ProtocolError> {
        Ok(i64::from_be_bytes(self.take()?))
    }
    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.pos.min(self.bytes.len())..];
        self.pos = self.bytes.len();
        rest
    }
}

/// Bytes the payload of a command of `kind` takes (after its opcode).
pub fn command_payload_len(kind: CommandKind) -> usize {
    match kind {
        CommandKind::UpsertSku => SKU_CONFIG_LEN,
        CommandKind::Restock => 4 + 8,
        CommandKind::Reserve => 8 + 8 + 4 + 4,
        CommandKind::Pay | CommandKind::Cancel => 8 + 8,
        CommandKind::QueryOrder => 8,
        CommandKind::QuerySku => 4,
    }
}

fn encode_sku_config(config: &SkuConfig, out: &mut BytesMut) {
    out.put_u32(config.sku_id);
    out.put_u64(config.stock_total);
    out.put_u32(config.per_user_limit);
    out.put_u64(config.hold_ttl_ms);
    out.put_u64(config.price_cents);
    let flags =
        u8::from(config.sale_start_ms.is_some()) | (u8::from(config.sale_end_ms.is_some()) << 1);
    out.put_u8(flags);
    out.put_u64(config.sale_start_ms.unwrap_or(0));
    out.put_u64(config.sale_end_ms.unwrap_or(0));
}

fn decode_sku_config(reader: &mut Reader<'_>) -> Result<SkuConfig, ProtocolError> {
    reader.need(SKU_CONFIG_LEN)?;
    let sku_id = reader.u32()?;
    let stock_total = reader.u64()?;
    let per_user_limit = reader.u32()?;
    let hold_ttl_ms = reader.u64()?;
    let price_cents = reader.u64()?;
    let flags = reader.u8()?;
    if flags > 0b11 {
        return Err(ProtocolError::InvalidValue(
            "sku flags has unknown bits set",
        ));
    }
    let start = reader.u64()?;
    let end = reader.u64()?;
    let optional = |present: bool, value: u64, name: &'static str| {
        if present {
            Ok(Some(value))
        } else if value == 0 {
            Ok(None)
        } else {
            Err(ProtocolError::InvalidValue(name))
        }
    };
    Ok(SkuConfig {
        sku_id,
        stock_total,
        per_user_limit,
        hold_ttl_ms,
        sale_start_ms: optional(
            flags & 1 != 0,
            start,
            "sale_start_ms must be 0 when its flag is clear",
        )?,
        sale_end_ms: optional(
            flags & 2 != 0,
            end,
            "sale_end_ms must be 0 when its flag is clear",
        )?,
        price_cents,
    })
}

/// Appends a command's opcode and payload (no frame, no request id).
pub fn encode_command(command: &Command, out: &mut BytesMut) {
    out.reserve(1 + SKU_CONFIG_LEN);
    out.put_u8(command.kind().opcode());
    match *command {
        Command::UpsertSku(config) => encode_sku_config(&config, out),
        Command::Restock { sku_id, delta } => {
            out.put_u32(sku_id);
            out.put_i64(delta);
        }
        Command::Reserve {
            order_id,
            user_id,
            sku_id,
            qty,
        } => {
            out.put_u64(order_id);
            out.put_u64(user_id);
            out.put_u32(sku_id);
            out.put_u32(qty);
        }
        Command::Pay { order_id, user_id } | Command::Cancel { order_id, user_id } => {
            out.put_u64(order_id);
            out.put_u64(user_id);
        }
        Command::QueryOrder { order_id } => out.put_u64(order_id),
        Command::QuerySku { sku_id } => out.put_u32(sku_id),
    }
}

/// Decodes one command from the start of `bytes`; answers it and the bytes it took.
pub fn decode_command(bytes: &[u8]) -> Result<(Command, usize), ProtocolError> {
    let mut reader = Reader::new(bytes);
    let opcode = reader.u8()?;
    let kind = CommandKind::from_opcode(opcode).ok_or(ProtocolError::UnknownOpcode(opcode))?;
    reader.need(command_payload_len(kind))?;
    let command = match kind {
        CommandKind::UpsertSku => Command::UpsertSku(decode_sku_config(&mut reader)?),
        CommandKind::Restock => Command::Restock {
            sku_id: reader.u32()?,
            delta: reader.i64()?,
        },
        CommandKind::Reserve => Command::Reserve {
            order_id: reader.u64()?,
            user_id: reader.u64()?,
            sku_id: reader.u32()?,
            qty: reader.u32()?,
        },
        CommandKind::Pay => Command::Pay {
            order_id: reader.u64()?,
            user_id: reader.u64()?,
        },
        CommandKind::Cancel => Command::Cancel {
            order_id: reader.u64()?,
            user_id: reader.u64()?,
        },
        CommandKind::QueryOrder => Command::QueryOrder {
            order_id: reader.u64()?,
        },
        CommandKind::QuerySku => Command::QuerySku {
            sku_id: reader.u32()?,
        },
    };
    Ok((command, reader.pos))
}

fn encode_order_view(view: &OrderView, out: &mut BytesMut) {
    out.put_u64(view.order_id);
    out.put_u64(view.user_id);
    out.put_u32(view.sku_id);
    out.put_u32(view.qty);
    out.put_u8(view.status as u8);
    out.put_u64(view.expires_at_ms);
}

fn decode_order_view(reader: &mut Reader<'_>) -> Result<OrderView, ProtocolError> {
    reader.need(ORDER_VIEW_LEN)?;
    Ok(OrderView {
        order_id: reader.u64()?,
        user_id: reader.u64()?,
        sku_id: reader.u32()?,
        qty: reader.u32()?,
        status: match reader.u8()? {
            0 => OrderStatus::Held,
            1 => OrderStatus::Paid,
            2 => OrderStatus::Cancelled,
            3 => OrderStatus::Expired,
            _ => return Err(ProtocolError::InvalidValue("order status")),
        },
        expires_at_ms: reader.u64()?,
    })
}

fn encode_sku_view(view: &SkuView, out: &mut BytesMut) {
    encode_sku_config(&view.config, out);
    out.put_u64(view.available);
    out.put_u64(view.held);
    out.put_u64(view.sold);
}

fn decode_sku_view(reader: &mut Reader<'_>) -> Result<SkuView, ProtocolError> {
    reader.need(SKU_VIEW_LEN)?;
    Ok(SkuView {
        config: decode_sku_config(reader)?,
        available: reader.u64()?,
        held: reader.u64()?,
        sold: reader.u64()?,
    })
}

/// Appends an outcome's tag and payload.
pub fn encode_outcome(outcome: &Outcome, out: &mut BytesMut) {
    out.reserve(1 + SKU_VIEW_LEN);
    match outcome {
        Outcome::Created(view) => {
            out.put_u8(TAG_CREATED);
            encode_order_view(view, out);
        }
        Outcome::Order(view) => {
            out.put_u8(TAG_ORDER);
            encode_order_view(view, out);
        }
        Outcome::SkuCreated(view) => {
            out.put_u8(TAG_SKU_CREATED);
            encode_sku_view(view, out);
        }
        Outcome::Sku(view) => {
            out.put_u8(TAG_SKU);
            encode_sku_view(view, out);
        }
        Outcome::Rejected(reject) => {
            out.put_u8(TAG_REJECTED);
            out.put_u8(*reject as u8);
        }
    }
}

/// Decodes one outcome from the start of `bytes`; answers it and the bytes it took.
pub fn decode_outcome(bytes: &[u8]) -> Result<(Outcome, usize), ProtocolError> {
    let mut reader = Reader::new(bytes);
    let outcome = decode_outcome_from(&mut reader)?;
    Ok((outcome, reader.pos))
}

fn decode_outcome_from(reader: &mut Reader<'_>) -> Result<Outcome, ProtocolError> {
    Ok(match reader.u8()? {
        TAG_CREATED => Outcome::Created(decode_order_view(reader)?),
        TAG_ORDER => Outcome::Order(decode_order_view(reader)?),
        TAG_SKU_CREATED => Outcome::SkuCreated(Box::new(decode_sku_view(reader)?)),
        TAG_SKU => Outcome::Sku(Box::new(decode_sku_view(reader)?)),
        TAG_REJECTED => Outcome::Rejected(
            Reject::from_u8(reader.u8()?).ok_or(ProtocolError::InvalidValue("reject code"))?,
        ),
        tag => return Err(ProtocolError::UnknownTag(tag)),
    })
}

/// What a client may ask on a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Command(Command),
    /// Authenticate the connection for admin commands.
    Auth(Vec<u8>),
}

/// What the server answers to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Outcome(Outcome),
    AuthOk,
    Error { code: ErrorCode, detail: String },
}

/// Splits the first complete frame off `buf`. `Ok(None)`: more bytes are needed. `Ok(Some((body,
/// consumed)))`: `body` is the frame without its length prefix. A length prefix outside
/// `min_len..=max_len` is an error: the stream cannot be trusted after it.
pub fn split_frame(
    buf: &[u8],
    min_len: u32,
    max_len: u32,
) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    if len > max_len {
        return Err(ProtocolError::FrameTooLarge { len, max: max_len });
    }
    if len < min_len {
        return Err(ProtocolError::FrameTooShort(len));
    }
    let end = 4 + len as usize;
    Ok(buf.get(4..end).map(|body| (body, end)))
}

/// A request body that could not be turned into a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("request {request_id}: {error}")]
pub struct RequestError {
    /// The id the failing frame carried (its first four bytes), so the error can be answered.
    pub request_id: u32,
    pub error: ProtocolError,
}

impl RequestError {
    /// An unknown opcode is answered and the stream goes on; anything else closes it.
    pub fn is_fatal(&self) -> bool {
        !matches!(self.error, ProtocolError::UnknownOpcode(_))
    }
}

/// Appends a whole request frame (length prefix included).
pub fn encode_request(request_id: u32, request: &Request, out: &mut BytesMut) {
    let start = out.len();
    out.put_u32(0);
    out.put_u32(request_id);
    match request {
        Request::Command(command) => encode_command(command, out),
        Request::Auth(token) => {
            out.put_u8(OP_AUTH);
            out.put_slice(token);
        }
    }
    patch_len(out, start);
}

fn patch_len(out: &mut BytesMut, start: usize) {
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Decodes a request frame body (as returned by [`split_frame`]).
pub fn decode_request(body: &[u8]) -> Result<(u32, Request), RequestError> {
    let mut reader = Reader::new(body);
    let request_id = reader.u32().map_err(|error| RequestError {
        request_id: 0,
        error,
    })?;
    let fail = |error| RequestError { request_id, error };
    let rest = &body[4..];
    match rest.first() {
        None => Err(fail(ProtocolError::Truncated {
            needed: 5,
            available: body.len(),
        })),
        Some(&OP_AUTH) => {
            let token = &rest[1..];
            if token.is_empty() || token.len() > MAX_TOKEN_LEN {
                return Err(fail(ProtocolError::InvalidValue(
                    "auth token must be 1 to 1024 bytes",
                )));
            }
            Ok((request_id, Request::Auth(token.to_vec())))
        }
        Some(_) => {
            let (command, used) = decode_command(rest).map_err(fail)?;
            if used != rest.len() {
                return Err(fail(ProtocolError::TrailingBytes(rest.len() - used)));
            }
            Ok((request_id, Request::Command(command)))
        }
    }
}

/// Appends a whole reply frame carrying an outcome (the server's hot path).
#[inline]
pub fn encode_outcome_reply(request_id: u32, outcome: &Outcome, out: &mut BytesMut) {
    let start = out.len();
    out.put_u32(0);
    out.put_u32(request_id);
    encode_outcome(outcome, out);
    patch_len(out, start);
}

/// Appends a whole reply frame.
pub fn encode_reply(request_id: u32, reply: &Reply, out: &mut BytesMut) {
    match reply {
        Reply::Outcome(outcome) => encode_outcome_reply(request_id, outcome, out),
        Reply::AuthOk => {
            out.put_u32(5);
            out.put_u32(request_id);
            out.put_u8(TAG_AUTH_OK);
        }
        Reply::Error { code, detail } => {
            let start = out.len();
            out.put_u32(0);
            out.put_u32(request_id);
            out.put_u8(TAG_ERROR);
            out.put_u8(*code as u8);
            // Details are short sentences; cut at a char boundary to stay within a frame.
            let mut cut = detail.len().min(1024);
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            out.put_u16(cut as u16);
            out.put_slice(&detail.as_bytes()[..cut]);
            patch_len(out, start);
        }
    }
}

/// Decodes a reply frame body (as returned by [`split_frame`]).
pub fn decode_reply(body: &[u8]) -> Result<(u32, Reply), ProtocolError> {
    let mut reader = Reader::new(body);
    let request_id = reader.u32()?;
    let tag = *body.get(4).ok_or(ProtocolError::Truncated {
        needed: 5,
        available: body.len(),
    })?;
    let reply = match tag {
        TAG_AUTH_OK => {
            reader.u8()?;
            Reply::AuthOk
        }
        TAG_ERROR => {
            reader.u8()?;
            let code = ErrorCode::from_u8(reader.u8()?)
                .ok_or(ProtocolError::InvalidValue("error code"))?;
            let len = usize::from(reader.u16()?);
            reader.need(len)?;
            let rest = reader.rest();
            if rest.len() != len {
                return Err(ProtocolError::TrailingBytes(rest.len() - len));
            }
            let detail = std::str::from_utf8(rest)
                .map_err(|_| ProtocolError::InvalidValue("error detail is not UTF-8"))?;
            Reply::Error {
                code,
                detail: detail.to_owned(),
            }
        }
        _ => Reply::Outcome(decode_outcome_from(&mut reader)?),
    };
    let trailing = body.len() - reader.pos.min(body.len());
    if trailing != 0 {
        return Err(ProtocolError::TrailingBytes(trailing));
    }
    Ok((request_id, reply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sku_config() -> impl Strategy<Value = SkuConfig> {
        (
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            any::<u64>(),
        )
            .prop_map(
                |(sku_id, stock_total, per_user_limit, hold_ttl_ms, start, end, price)| SkuConfig {
                    sku_id,
                    stock_total,
                    per_user_limit,
                    hold_ttl_ms,
                    sale_start_ms: start,
                    sale_end_ms: end,
                    price_cents: price,
                },
            )
    }

    fn command() -> impl Strategy<Value = Command> {
        prop_oneof![
            sku_config().prop_map(Command::UpsertSku),
            (any::<u32>(), any::<i64>())
                .prop_map(|(sku_id, delta)| Command::Restock { sku_id, delta }),
            (any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>()).prop_map(
                |(order_id, user_id, sku_id, qty)| Command::Reserve {
                    order_id,
                    user_id,
                    sku_id,
                    qty
                }
            ),
            (any::<u64>(), any::<u64>())
                .prop_map(|(order_id, user_id)| Command::Pay { order_id, user_id }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(order_id, user_id)| Command::Cancel { order_id, user_id }),
            any::<u64>().prop_map(|order_id| Command::QueryOrder { order_id }),
            any::<u32>().prop_map(|sku_id| Command::QuerySku { sku_id }),
        ]
    }

    fn order_view() -> impl Strategy<Value = OrderView> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            0u8..4,
            any::<u64>(),
        )
            .prop_map(|(order_id, user_id, sku_id, qty, status, expires_at_ms)| {
                OrderView {
                    order_id,
                    user_id,
                    sku_id,
                    qty,
                    status: [
                        OrderStatus::Held,
                        OrderStatus::Paid,
                        OrderStatus::Cancelled,
                        OrderStatus::Expired,
                    ][usize::from(status)],
                    expires_at_ms,
                }
            })
    }

    fn sku_view() -> impl Strategy<Value = SkuView> {
        (sku_config(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(config, available, held, sold)| SkuView {
                config,
                available,
                held,
                sold,
            },
        )
    }

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            order_view().prop_map(Outcome::Created),
            order_view().prop_map(Outcome::Order),
            sku_view().prop_map(|view| Outcome::SkuCreated(Box::new(view))),
            sku_view().prop_map(|view| Outcome::Sku(Box::new(view))),
            proptest::sample::select(Reject::ALL.to_vec()).prop_map(Outcome::Rejected),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn commands_round_trip(command in command()) {
            let mut buf = BytesMut::new();
            encode_command(&command, &mut buf);
            buf.extend_from_slice(b"tail");
            let (decoded, used) = decode_command(&buf).unwrap();
            prop_assert_eq!(decoded, command);
            prop_assert_eq!(used, buf.len() - 4);
            // Every strict prefix is truncated, never a wrong command.
            for cut in 0..used {
                prop_assert!(decode_command(&buf[..cut]).is_err());
            }
        }

        #[test]
        fn outcomes_round_trip(outcome in outcome(), request_id in any::<u32>()) {
            let mut buf = BytesMut::new();
            encode_outcome(&outcome, &mut buf);
            let (decoded, used) = decode_outcome(&buf).unwrap();
            prop_assert_eq!(&decoded, &outcome);
            prop_assert_eq!(used, buf.len());
            let mut frame = BytesMut::new();
            encode_outcome_reply(request_id, &outcome, &mut frame);
            let (body, consumed) = split_frame(&frame, 5, MAX_FRAME_LEN).unwrap().unwrap();
            prop_assert_eq!(consumed, frame.len());
            prop_assert_eq!(decode_reply(body).unwrap(), (request_id, Reply::Outcome(outcome)));
        }

        #[test]
        fn requests_round_trip(command in command(), request_id in any::<u32>()) {
            let mut frame = BytesMut::new();
            encode_request(request_id, &Request::Command(command), &mut frame);
            let (body, consumed) =
                split_frame(&frame, MIN_REQUEST_LEN, MAX_FRAME_LEN).unwrap().unwrap();
            prop_assert_eq!(consumed, frame.len());
            prop_assert_eq!(decode_request(body).unwrap(), (request_id, Request::Command(command)));
        }

        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_command(&bytes);
            let _ = decode_outcome(&bytes);
            let _ = decode_request(&bytes);
            let _ = decode_reply(&bytes);
            let _ = split_frame(&bytes, MIN_REQUEST_LEN, MAX_FRAME_LEN);
        }
    }

    #[test]
    fn every_command_kind_round_trips_under_its_table_opcode() {
        for kind in CommandKind::ALL {
            let command = flashsale_core::types::example_command(kind);
            let mut buf = BytesMut::new();
            encode_command(&command, &mut buf);
            assert_eq!(buf[0], kind.opcode(), "{kind:?}");
            assert_eq!(buf.len(), 1 + command_payload_len(kind), "{kind:?}");
            assert_eq!(decode_command(&buf), Ok((command, buf.len())), "{kind:?}");
            let mut frame = BytesMut::new();
            encode_request(5, &Request::Command(command), &mut frame);
            let (body, _) = split_frame(&frame, MIN_REQUEST_LEN, MAX_FRAME_LEN)
                .unwrap()
                .unwrap();
            assert_eq!(decode_request(body), Ok((5, Request::Command(command))));
        }
        for opcode in (0..=u8::MAX).filter(|&op| CommandKind::from_opcode(op).is_none()) {
            assert_eq!(
                decode_command(&[opcode; 64]),
                Err(ProtocolError::UnknownOpcode(opcode))
            );
        }
    }

    #[test]
    fn error_and_auth_replies_round_trip() {
        for reply in [
            Reply::AuthOk,
            Reply::Error {
                code: ErrorCode::RateLimited,
                detail: "slow down".into(),
            },
        ] {
            let mut frame = BytesMut::new();
            encode_reply(9, &reply, &mut frame);
            let (body, _) = split_frame(&frame, 5, MAX_FRAME_LEN).unwrap().unwrap();
            assert_eq!(decode_reply(body).unwrap(), (9, reply));
        }
        let mut frame = BytesMut::new();
        encode_request(3, &Request::Auth(b"secret".to_vec()), &mut frame);
        let (body, _) = split_frame(&frame, 5, MAX_FRAME_LEN).unwrap().unwrap();
        assert_eq!(
            decode_request(body).unwrap(),
            (3, Request::Auth(b"secret".to_vec()))
        );
    }

    #[test]
    fn frame_limits_are_enforced() {
        assert_eq!(
            split_frame(&[0xff, 0xff, 0xff, 0xff, 0], 5, MAX_FRAME_LEN),
            Err(ProtocolError::FrameTooLarge {
                len: u32::MAX,
                max: MAX_FRAME_LEN
            })
        );
        assert_eq!(
            split_frame(&[0, 0, 0, 0], 5, MAX_FRAME_LEN),
            Err(ProtocolError::FrameTooShort(0))
        );
        assert_eq!(split_frame(&[0, 0, 0, 9, 1, 2], 5, MAX_FRAME_LEN), Ok(None));
        let unknown = decode_request(&[0, 0, 0, 7, 0x7f]).unwrap_err();
        assert_eq!(unknown.request_id, 7);
        assert!(!unknown.is_fatal());
        let short = decode_request(&[0, 0, 0, 7, 3, 1, 2]).unwrap_err();
        assert!(short.is_fatal());
        let mut long = BytesMut::new();
        encode_request(
            1,
            &Request::Command(Command::QuerySku { sku_id: 1 }),
            &mut long,
        );
        long.extend_from_slice(&[0]);
        assert!(matches!(
            decode_request(&long[4..]).unwrap_err().error,
            ProtocolError::TrailingBytes(1)
        ));
    }

    #[test]
    fn handshakes() {
        assert_eq!(
            check_client_handshake(&client_handshake()),
            HandshakeStatus::Ok
        );
        assert_eq!(
            check_client_handshake(b"GET / HT"),
            HandshakeStatus::BadMagic
        );
        let mut wrong_version = client_handshake();
        wrong_version[5] = 9;
        assert_eq!(
            check_client_handshake(&wrong_version),
            HandshakeStatus::UnsupportedVersion
        );
        assert_eq!(
            parse_server_handshake(&server_handshake(HandshakeStatus::Busy)),
            Ok(HandshakeStatus::Busy)
        );
    }
}
