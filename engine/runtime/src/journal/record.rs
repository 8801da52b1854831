//! The journal record format: framing, encoding one shard wake-up into a record, and finding
//! frames in the bytes of a segment (telling a torn tail from corruption in the middle). It
//! owns only byte layouts; files are the segment module's business. Commands are encoded with
//! the wire codec ([`crate::protocol::encode_command`]) so the journal and the TCP protocol
//! share one definition of a command's bytes; it must not grow a second command codec.
//!
//! A frame, all integers big-endian:
//! ```text
//! len     u32   bytes of payload that follow the 8-byte frame header
//! crc     u32   CRC32C over the 4 len bytes followed by the payload
//! payload:
//!   seq     u64   per-shard record sequence, 1, 2, 3, … with no gaps
//!   now_ms  u64   the time the shard applied the commands at
//!   count   u32   commands that follow
//!   count × command (opcode u8 + fields, as on the wire)
//! ```

use bytes::{BufMut, BytesMut};

use crate::protocol::{decode_command, encode_command};
use crate::types::Command;

pub const FRAME_HEADER_LEN: usize = 8;
pub const RECORD_HEADER_LEN: usize = 8 + 8 + 4;
/// Largest payload a record may have; a length above it is not a record.
pub const MAX_PAYLOAD_LEN: u32 = 64 << 20;

/// The CRC a frame carries: CRC32C over the length bytes and the payload, so a corrupted
/// length is caught as surely as a corrupted payload.
pub fn frame_crc(len_bytes: [u8; 4], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload)
}

/// Appends one framed record holding `commands` to `out`; returns how many were written.
pub fn append_record<'a>(
    out: &mut BytesMut,
    seq: u64,
    now_ms: u64,
    commands: impl IntoIterator<Item = &'a Command>,
) -> u32 {
    let mut record = RecordBuilder::begin(out, seq, now_ms);
    for command in commands {
        record.push(out, command);
    }
    record.finish(out)
}

/// Builds one record in place at the end of a buffer, a command at a time, so the shard can
/// encode while it applies.
#[derive(Debug)]
pub struct RecordBuilder {
    start: usize,
    count: u32,
}

impl RecordBuilder {
    pub fn begin(out: &mut BytesMut, seq: u64, now_ms: u64) -> RecordBuilder {
        let start = out.len();
        out.put_u64(0); // frame header, patched by `finish`
        out.put_u64(seq);
        out.put_u64(now_ms);
        out.put_u32(0); // count, patched by `finish`
        RecordBuilder { start, count: 0 }
    }

    pub fn push(&mut self, out: &mut BytesMut, command: &Command) {
        encode_command(command, out);
        self.count += 1;
    }

    /// Completes the frame and returns how many commands it holds. A record of no commands is
    /// removed from `out` again (there is nothing to replay).
    pub fn finish(self, out: &mut BytesMut) -> u32 {
        let start = self.start;
        if self.count == 0 {
            out.truncate(start);
            return 0;
        }
        let count_at = start + FRAME_HEADER_LEN + 16;
        out[count_at..count_at + 4].copy_from_slice(&self.count.to_be_bytes());
        let payload_len = (out.len() - start - FRAME_HEADER_LEN) as u32;
        let len_bytes = payload_len.to_be_bytes();
        let crc = frame_crc(len_bytes, &out[start + FRAME_HEADER_LEN..]);
        out[start..start + 4].copy_from_slice(&len_bytes);
        out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
        self.count
    }
}

/// A record's fixed fields; the commands are decoded on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub seq: u64,
    pub now_ms: u64,
    pub count: u32,
}

/// Reads a payload's header. The payload's CRC has been checked already.
pub fn record_header(payload: &[u8]) -> Result<RecordHeader, String> {
    if payload.len() < RECORD_HEADER_LEN {
        return Err(format!(
            "payload of {} bytes is shorter than a record header ({RECORD_HEADER_LEN})",
            payload.len()
        ));
    }
    let u64_at = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&payload[at..at + 8]);
        u64::from_be_bytes(bytes)
    };
    let mut count = [0u8; 4];
    count.copy_from_slice(&payload[16..20]);
    Ok(RecordHeader {
        seq: u64_at(0),
        now_ms: u64_at(8),
        count: u32::from_be_bytes(count),
    })
}

/// Decodes a payload's commands into `out` (cleared first). The error says what was wrong and
/// at which byte of the payload.
pub fn decode_record_commands(
    payload: &[u8],
    header: &RecordHeader,
    out: &mut Vec<Command>,
) -> Result<(), (usize, String)> {
    out.clear();
    out.reserve(header.count as usize);
    let mut at = RECORD_HEADER_LEN;
    for index in 0..header.count {
        let (command, used) = decode_command(&payload[at..])
            .map_err(|e| (at, format!("command {index} of {}: {e}", header.count)))?;
        if !command.is_mutation() {
            return Err((at, format!("command {index} is a query: not journaled")));
        }
        out.push(command);
        at += used;
    }
    if at != payload.len() {
        return Err((
            at,
            format!("{} bytes left after the last command", payload.len() - at),
        ));
    }
    Ok(())
}

/// What [`next_frame`] found at an offset.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A frame whose CRC matches; the next frame starts at `next`.
    Record { payload: &'a [u8], next: usize },
    /// The end of the records, exactly at a frame boundary: the end of the bytes, or zeros
    /// to the end (the writer keeps segments zero-filled ahead of the data).
    End,
    /// A partly written last frame (or a zero-filled tail): everything from the offset on is
    /// garbage left by a crash, and no valid frame follows it.
    TornTail { reason: String },
    /// A bad frame that is not the tail: valid data follows, so this is corruption.
    Corrupt { reason: String },
}

/// Looks at the frame starting at `offset` of `bytes`. `next_seq` is the sequence the next
/// record should carry; it lets a bad frame be told apart from a torn tail by searching for a
/// later valid record.
pub fn next_frame(bytes: &[u8], offset: usize, next_seq: u64) -> Frame<'_> {
    let rest = &bytes[offset.min(bytes.len())..];
    if rest.iter().all(|&b| b == 0) {
        return Frame::End;
    }
    let bad = |reason: String| match find_valid_frame(bytes, offset + 1, next_seq) {
        Some(found) => Frame::Corrupt {
            reason: format!("{reason}; a valid record follows at byte offset {found}"),
        },
        None => Frame::TornTail { reason },
    };
    if rest.len() < FRAME_HEADER_LEN {
        return bad(format!("{} bytes: a partial frame header", rest.len()));
    }
    let len_bytes = [rest[0], rest[1], rest[2], rest[3]];
    let len = u32::from_be_bytes(len_bytes);
    let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len < RECORD_HEADER_LEN as u32 || len > MAX_PAYLOAD_LEN {
        return bad(format!("frame length {len} is not a record length"));
    }
    let end = FRAME_HEADER_LEN + len as usize;
    if end > rest.len() {
        return bad(format!(
            "frame of {end} bytes but only {} bytes remain: a partial record",
            rest.len()
        ));
    }
    let payload = &rest[FRAME_HEADER_LEN..end];
    if frame_crc(len_bytes, payload) != crc {
        return bad("CRC mismatch".to_string());
    }
    Frame::Record {
        payload,
        next: offset + end,
    }
}

/// The offset of the first valid frame at or after `from` whose sequence is at least
/// `min_seq`. Candidates are filtered by a plausible length and sequence before the CRC is
/// computed, so scanning garbage stays cheap.
fn find_valid_frame(bytes: &[u8], from: usize, min_seq: u64) -> Option<usize> {
    let mut at = from;
    while at + FRAME_HEADER_LEN + RECORD_HEADER_LEN <= bytes.len() {
        let rest = &bytes[at..];
        let len_bytes = [rest[0], rest[1], rest[2], rest[3]];
        let len = u32::from_be_bytes(len_bytes);
        let end = FRAME_HEADER_LEN + len as usize;
        if len >= RECORD_HEADER_LEN as u32 && len <= MAX_PAYLOAD_LEN && end <= rest.len() {
            let payload = &rest[FRAME_HEADER_LEN..end];
            let seq_ok = record_header(payload).is_ok_and(|header| {
                header.seq >= min_seq && header.seq < min_seq.saturating_add(1 << 32)
            });
            let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
            if seq_ok && frame_crc(len_bytes, payload) == crc {
                return Some(at);
            }
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands() -> Vec<Command> {
        vec![
            Command::Reserve {
                order_id: 7,
                user_id: 8,
                sku_id: 9,
                qty: 1,
            },
            Command::Pay {
                order_id: 7,
                user_id: 8,
            },
        ]
    }

    #[test]
    fn a_record_round_trips() {
        let mut out = BytesMut::new();
        assert_eq!(append_record(&mut out, 5, 1234, &commands()), 2);
        let Frame::Record { payload, next } = next_frame(&out, 0, 5) else {
            panic!("not a record");
        };
        assert_eq!(next, out.len());
        let header = record_header(payload).unwrap();
        assert_eq!(
            header,
            RecordHeader {
                seq: 5,
                now_ms: 1234,
                count: 2
            }
        );
        let mut decoded = Vec::new();
        decode_record_commands(payload, &header, &mut decoded).unwrap();
        assert_eq!(decoded, commands());
        assert_eq!(next_frame(&out, next, 6), Frame::End);
    }

    #[test]
    fn every_truncation_of_a_last_record_is_a_torn_tail() {
        let mut out = BytesMut::new();
        append_record(&mut out, 1, 10, &commands());
        let first_len = out.len();
        append_record(&mut out, 2, 11, &commands());
        for cut in first_len + 1..out.len() {
            match next_frame(&out[..cut], first_len, 2) {
                Frame::TornTail { .. } => {}
                // The first bytes of a big-endian length are zeros: a cut inside them leaves
                // nothing but zeros, which is the end (the next write goes over them).
                Frame::End if out[first_len..cut].iter().all(|&b| b == 0) => {}
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_flipped_bit_before_a_valid_record_is_corruption() {
        let mut out = BytesMut::new();
        append_record(&mut out, 1, 10, &commands());
        append_record(&mut out, 2, 11, &commands());
        let mut bytes = out.to_vec();
        bytes[FRAME_HEADER_LEN + 3] ^= 0x10;
        match next_frame(&bytes, 0, 1) {
            Frame::Corrupt { reason } => assert!(reason.contains("CRC"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // The same flip in the last record is a torn tail: nothing valid follows it.
        let mut bytes = out.to_vec();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x10;
        let Frame::Record { next, .. } = next_frame(&bytes, 0, 1) else {
            panic!("first record should be intact");
        };
        assert!(matches!(
            next_frame(&bytes, next, 2),
            Frame::TornTail { .. }
        ));
    }

    #[test]
    fn zeros_after_the_last_record_are_the_end_but_zeros_before_a_record_are_corruption() {
        let mut out = BytesMut::new();
        append_record(&mut out, 1, 10, &commands());
        let mut bytes = out.to_vec();
        let end = bytes.len();
        bytes.resize(end + 4096, 0);
        assert_eq!(next_frame(&bytes, end, 2), Frame::End);
        // A record that lands after a stretch of zeros means lost writes in the middle.
        let mut later = BytesMut::new();
        append_record(&mut later, 2, 11, &commands());
        bytes.extend_from_slice(&later);
        assert!(matches!(next_frame(&bytes, end, 2), Frame::Corrupt { .. }));
        // A torn record followed by the zero-filled rest is a torn tail.
        let mut torn = out.to_vec();
        torn.extend_from_slice(&later[..later.len() / 2]);
        torn.resize(torn.len() + 4096, 0);
        assert!(matches!(next_frame(&torn, end, 2), Frame::TornTail { .. }));
    }
}
