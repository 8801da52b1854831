//! The flashsale trace format (`.fst`, specified byte by byte in `docs/trace-format.md`): a
//! versioned header, CRC-checked blocks of (varint delta timestamp, protocol command encoding)
//! records, and a trailer with counts, dropped records and an order-request hash. It owns the
//! streaming [`TraceWriter`] and [`TraceReader`] shared by the server's `--capture` and the load
//! generator's `record` / `replay` / `trace` commands. Commands are encoded with
//! [`crate::protocol::encode_command`] (never a second encoding). It does no threading, no
//! clocks and no I/O beyond the `Read` / `Write` it is given; reading never panics on any input:
//! a malformed or truncated file is a [`TraceError`] naming the byte offset.
//!
//! All fixed-width integers are big-endian, like the wire protocol.

use std::io::{self, Read, Write};

use bytes::BytesMut;

use crate::protocol::{ProtocolError, decode_command, encode_command};
use flashsale_core::types::{Command, CommandKind};

/// First four bytes of every trace.
pub const MAGIC: [u8; 4] = *b"FSTR";
/// The version this build writes and reads.
pub const VERSION: u16 = 1;
/// The trace holds only open-loop arrivals (fresh reserves and client duplicates, as
/// scheduled); a replayer regenerates pays, cancels and bot retries from the provenance.
pub const FLAG_OPEN_LOOP: u16 = 1;
/// The trace was captured at a server: every request as it arrived, follow-ups included.
pub const FLAG_SERVER_CAPTURE: u16 = 2;
/// Records per block the writer aims for.
pub const BLOCK_RECORDS: usize = 4096;
/// Largest record count and payload a reader accepts in one block.
pub const MAX_BLOCK_RECORDS: u32 = 1 << 16;
pub const MAX_BLOCK_PAYLOAD_BYTES: u32 = 1 << 24;
/// Largest provenance text a reader accepts.
pub const MAX_PROVENANCE_BYTES: u32 = 1 << 20;

const TAG_BLOCK: u8 = b'B';
const TAG_END: u8 = b'E';
const HEADER_FIXED_LEN: usize = 4 + 2 + 2 + 8 + 8 + 4;
const BLOCK_HEADER_LEN: usize = 1 + 4 + 4 + 8;
const TRAILER_LEN: usize = 1 + 8 * 6;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Why a trace could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("not a flashsale trace: bad magic at byte offset 0")]
    BadMagic,
    #[error("unsupported trace version {0} (this build reads version {VERSION})")]
    Version(u16),
    #[error("trace truncated at byte offset {offset}: {what}")]
    Truncated { offset: u64, what: &'static str },
    #[error("corrupt trace at byte offset {offset}: {what}")]
    Corrupt { offset: u64, what: String },
    #[error("record timestamp {at_ns} ns is before the previous one ({previous_ns} ns)")]
    Backwards { at_ns: u64, previous_ns: u64 },
    #[error("provenance is {0} bytes; at most {MAX_PROVENANCE_BYTES} allowed")]
    ProvenanceTooLong(usize),
}

/// What a trace says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceHeader {
    pub version: u16,
    pub flags: u16,
    /// Wall-clock time of timestamp 0, ns since the Unix epoch (0: unknown).
    pub start_epoch_ns: u64,
    /// The generator's seed (0 for captures and imports).
    pub seed: u64,
    /// Free UTF-8 text: where the trace came from (a TOML document by convention).
    pub provenance: String,
}

impl TraceHeader {
    pub fn new(flags: u16, start_epoch_ns: u64, seed: u64, provenance: String) -> TraceHeader {
        TraceHeader {
            version: VERSION,
            flags,
            start_epoch_ns,
            seed,
            provenance,
        }
    }
}

/// One request: when, relative to the trace's start, and what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    pub at_ns: u64,
    pub command: Command,
}

/// The summary written after the last block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceTrailer {
    pub records: u64,
    /// Records the producer could not write (a capture writer that fell behind).
    pub dropped: u64,
    /// Timestamp of the last record (0 for an empty trace).
    pub last_at_ns: u64,
    /// Smallest and largest order id of any order command (`u64::MAX` / 0 when none).
    pub min_order_id: u64,
    pub max_order_id: u64,
    /// [`OrderHash`] of every reserve / pay / cancel record, in order.
    pub order_hash: u64,
}

/// FNV-1a 64 over the protocol encodings of order commands (reserve, pay, cancel) in order;
/// timestamps excluded, so a replay at any speed hashes the same. Other commands are ignored.
#[derive(Clone, Debug)]
pub struct OrderHash {
    state: u64,
    scratch: BytesMut,
    count: u64,
}

impl Default for OrderHash {
    fn default() -> Self {
        OrderHash {
            state: FNV_OFFSET,
            scratch: BytesMut::with_capacity(64),
            count: 0,
        }
    }
}

impl OrderHash {
    pub fn add(&mut self, command: &Command) {
        if !is_order_command(command.kind()) {
            return;
        }
        self.scratch.clear();
        encode_command(command, &mut self.scratch);
        for &b in self.scratch.iter() {
            self.state = (self.state ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        self.count += 1;
    }
    pub fn value(&self) -> u64 {
        self.state
    }
    /// Order commands hashed so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// An order command, as the trace counts and hashes them: one that changes an order
/// (reserve, pay, cancel), from the command table.
pub fn is_order_command(kind: CommandKind) -> bool {
    let spec = kind.spec();
    spec.mutates && spec.ids.order
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes a LEB128 varint (at most 10 bytes) from the start of `bytes`.
fn get_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let part = u64::from(b & 0x7f);
        if i == 9 && part > 1 {
            return None;
        }
        v |= part << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Writes a trace to any `Write` (wrap files in a `BufWriter`). Records must come in
/// non-decreasing time order. [`TraceWriter::finish`] writes the trailer: a trace without it
/// is reported as truncated by the reader.
pub struct TraceWriter<W: Write> {
    out: W,
    payload: Vec<u8>,
    scratch: BytesMut,
    block_records: u32,
    block_base_ns: u64,
    last_ns: u64,
    records: u64,
    min_order_id: u64,
    max_order_id: u64,
    hash: OrderHash,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the header.
    pub fn new(mut out: W, header: &TraceHeader) -> Result<TraceWriter<W>, TraceError> {
        let provenance = header.provenance.as_bytes();
        if provenance.len() > MAX_PROVENANCE_BYTES as usize {
            return Err(TraceError::ProvenanceTooLong(provenance.len()));
        }
        let mut head = Vec::with_capacity(HEADER_FIXED_LEN + provenance.len() + 4);
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&VERSION.to_be_bytes());
        head.extend_from_slice(&header.flags.to_be_bytes());
        head.extend_from_slice(&header.start_epoch_ns.to_be_bytes());
        head.extend_from_slice(&header.seed.to_be_bytes());
        head.extend_from_slice(&(provenance.len() as u32).to_be_bytes());
        head.extend_from_slice(provenance);
        let crc = crc32fast::hash(&head);
        head.extend_from_slice(&crc.to_be_bytes());
        out.write_all(&head)?;
        Ok(TraceWriter {
            out,
            payload: Vec::with_capacity(BLOCK_RECORDS * 32),
            scratch: BytesMut::with_capacity(64),
            block_records: 0,
            block_base_ns: 0,
            last_ns: 0,
            records: 0,
            min_order_id: u64::MAX,
            max_order_id: 0,
            hash: OrderHash::default(),
        })
    }

    /// Appends one record.
    pub fn push(&mut self, at_ns: u64, command: &Command) -> Result<(), TraceError> {
        if at_ns < self.last_ns {
            return Err(TraceError::Backwards {
                at_ns,
                previous_ns: self.last_ns,
            });
        }
        if self.block_records == 0 {
            self.block_base_ns = at_ns;
            put_varint(0, &mut self.payload);
        } else {
            put_varint(at_ns - self.last_ns, &mut self.payload);
        }
        self.scratch.clear();
        encode_command(command, &mut self.scratch);
        self.payload.extend_from_slice(&self.scratch);
        self.last_ns = at_ns;
        self.block_records += 1;
        self.records += 1;
        if let Some(id) = command.order_id() {
            self.min_order_id = self.min_order_id.min(id);
            self.max_order_id = self.max_order_id.max(id);
        }
        self.hash.add(command);
        if self.block_records as usize >= BLOCK_RECORDS {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn flush_block(&mut self) -> Result<(), TraceError> {
        if self.block_records == 0 {
            return Ok(());
        }
        let mut head = [0u8; BLOCK_HEADER_LEN];
        head[0] = TAG_BLOCK;
        head[1..5].copy_from_slice(&self.block_records.to_be_bytes());
        head[5..9].copy_from_slice(&(self.payload.len() as u32).to_be_bytes());
        head[9..17].copy_from_slice(&self.block_base_ns.to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(&self.payload);
        self.out.write_all(&head)?;
        self.out.write_all(&self.payload)?;
        self.out.write_all(&crc.finalize().to_be_bytes())?;
        self.payload.clear();
        self.block_records = 0;
        Ok(())
    }

    /// Writes the last block and the trailer, flushes, and returns the output and the trailer.
    pub fn finish(mut self, dropped: u64) -> Result<(W, TraceTrailer), TraceError> {
        self.flush_block()?;
        let trailer = TraceTrailer {
            records: self.records,
            dropped,
            last_at_ns: self.last_ns,
            min_order_id: self.min_order_id,
            max_order_id: self.max_order_id,
            order_hash: self.hash.value(),
        };
        let mut bytes = Vec::with_capacity(TRAILER_LEN + 4);
        bytes.push(TAG_END);
        for v in [
            trailer.records,
            trailer.dropped,
            trailer.last_at_ns,
            trailer.min_order_id,
            trailer.max_order_id,
            trailer.order_hash,
        ] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        self.out.write_all(&bytes)?;
        self.out.flush()?;
        Ok((self.out, trailer))
    }
}

/// Reads a trace record by record (one block in memory at a time). Every block's CRC is checked
/// before its records are handed out; the trailer's counts and hash are checked against what was
/// read.
pub struct TraceReader<R: Read> {
    input: R,
    header: TraceHeader,
    offset: u64,
    block: Vec<u8>,
    block_offset: u64,
    pos: usize,
    left_in_block: u32,
    at_ns: u64,
    records: u64,
    hash: OrderHash,
    trailer: Option<TraceTrailer>,
}

fn read_exact_at<R: Read>(
    input: &mut R,
    buf: &mut [u8],
    offset: u64,
    what: &'static str,
) -> Result<(), TraceError> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(TraceError::Truncated {
                    offset: offset + filled as u64,
                    what,
                });
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

impl<R: Read> TraceReader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<TraceReader<R>, TraceError> {
        let mut fixed = [0u8; HEADER_FIXED_LEN];
        read_exact_at(&mut input, &mut fixed[..4], 0, "in the header")?;
        if fixed[..4] != MAGIC {
            return Err(TraceError::BadMagic);
        }
        read_exact_at(&mut input, &mut fixed[4..], 4, "in the header")?;
        let version = u16::from_be_bytes([fixed[4], fixed[5]]);
        if version != VERSION {
            return Err(TraceError::Version(version));
        }
        let provenance_len = be_u32(&fixed[24..28]);
        if provenance_len > MAX_PROVENANCE_BYTES {
            return Err(TraceError::Corrupt {
                offset: 24,
                what: format!("provenance length {provenance_len} exceeds {MAX_PROVENANCE_BYTES}"),
            });
        }
        let mut rest = vec![0u8; provenance_len as usize + 4];
        read_exact_at(
            &mut input,
            &mut rest,
            HEADER_FIXED_LEN as u64,
            "in the header",
        )?;
        let (provenance, crc) = rest.split_at(provenance_len as usize);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&fixed);
        hasher.update(provenance);
        let crc_offset = (HEADER_FIXED_LEN + provenance.len()) as u64;
        if hasher.finalize() != be_u32(crc) {
            return Err(TraceError::Corrupt {
                offset: crc_offset,
                what: "header checksum mismatch".into(),
            });
        }
        let provenance =
            String::from_utf8(provenance.to_vec()).map_err(|_| TraceError::Corrupt {
                offset: HEADER_FIXED_LEN as u64,
                what: "provenance is not UTF-8".into(),
            })?;
        Ok(TraceReader {
            input,
            header: TraceHeader {
                version,
                flags: u16::from_be_bytes([fixed[6], fixed[7]]),
                start_epoch_ns: be_u64(&fixed[8..16]),
                seed: be_u64(&fixed[16..24]),
                provenance,
            },
            offset: crc_offset + 4,
            block: Vec::new(),
            block_offset: 0,
            pos: 0,
            left_in_block: 0,
            at_ns: 0,
            records: 0,
            hash: OrderHash::default(),
            trailer: None,
        })
    }

    pub fn header(&self) -> &TraceHeader {
        &self.header
    }

    /// The trailer, once the last record has been read.
    pub fn trailer(&self) -> Option<&TraceTrailer> {
        self.trailer.as_ref()
    }

    /// Byte offset of the next unread block (or trailer).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record; `None` after the trailer was read and checked.
    pub fn next_record(&mut self) -> Result<Option<TraceRecord>, TraceError> {
        while self.left_in_block == 0 {
            if self.trailer.is_some() {
                return Ok(None);
            }
            self.read_block()?;
        }
        let record_offset = self.block_offset + self.pos as u64;
        let corrupt = |what: String| TraceError::Corrupt {
            offset: record_offset,
            what,
        };
        let Some((delta, used)) = get_varint(&self.block[self.pos..]) else {
            return Err(corrupt("bad timestamp varint".into()));
        };
        self.pos += used;
        let (command, used) = decode_command(&self.block[self.pos..]).map_err(|e| match e {
            ProtocolError::Truncated { .. } => corrupt("record runs past its block".into()),
            other => corrupt(format!("bad command: {other}")),
        })?;
        self.pos += used;
        self.at_ns = self
            .at_ns
            .checked_add(delta)
            .ok_or_else(|| corrupt("timestamp overflows".into()))?;
        self.left_in_block -= 1;
        if self.left_in_block == 0 && self.pos != self.block.len() {
            return Err(corrupt(format!(
                "{} bytes left in the block after its last record",
                self.block.len() - self.pos
            )));
        }
        self.records += 1;
        self.hash.add(&command);
        Ok(Some(TraceRecord {
            at_ns: self.at_ns,
            command,
        }))
    }

    fn read_block(&mut self) -> Result<(), TraceError> {
        let start = self.offset;
        let mut tag = [0u8; 1];
        read_exact_at(
            &mut self.input,
            &mut tag,
            start,
            "no trailer (the writer did not finish)",
        )?;
        match tag[0] {
            TAG_BLOCK => {
                let mut head = [0u8; BLOCK_HEADER_LEN];
                head[0] = TAG_BLOCK;
                read_exact_at(
                    &mut self.input,
                    &mut head[1..],
                    start + 1,
                    "in a block header",
                )?;
                let count = be_u32(&head[1..5]);
                let len = be_u32(&head[5..9]);
                let base = be_u64(&head[9..17]);
                if count == 0 || count > MAX_BLOCK_RECORDS || len > MAX_BLOCK_PAYLOAD_BYTES {
                    return Err(TraceError::Corrupt {
                        offset: start,
                        what: format!("implausible block: {count} records in {len} bytes"),
                    });
                }
                if base < self.at_ns {
                    return Err(TraceError::Corrupt {
                        offset: start + 9,
                        what: format!(
                            "block starts at {base} ns, before the previous record ({} ns)",
                            self.at_ns
                        ),
                    });
                }
                self.block.resize(len as usize + 4, 0);
                let payload_offset = start + BLOCK_HEADER_LEN as u64;
                read_exact_at(
                    &mut self.input,
                    &mut self.block,
                    payload_offset,
                    "in a block",
                )?;
                let crc = be_u32(&self.block[len as usize..]);
                self.block.truncate(len as usize);
                let mut hasher = crc32fast::Hasher::new();
                hasher.update(&head);
                hasher.update(&self.block);
                if hasher.finalize() != crc {
                    return Err(TraceError::Corrupt {
                        offset: start,
                        what: "block checksum mismatch".into(),
                    });
                }
                self.offset = payload_offset + u64::from(len) + 4;
                self.block_offset = payload_offset;
                self.pos = 0;
                self.left_in_block = count;
                self.at_ns = base;
                Ok(())
            }
            TAG_END => {
                let mut bytes = [0u8; TRAILER_LEN + 4];
                bytes[0] = TAG_END;
                read_exact_at(
                    &mut self.input,
                    &mut bytes[1..],
                    start + 1,
                    "in the trailer",
                )?;
                if crc32fast::hash(&bytes[..TRAILER_LEN]) != be_u32(&bytes[TRAILER_LEN..]) {
                    return Err(TraceError::Corrupt {
                        offset: start,
                        what: "trailer checksum mismatch".into(),
                    });
                }
                let field = |i: usize| be_u64(&bytes[1 + 8 * i..]);
                let trailer = TraceTrailer {
                    records: field(0),
                    dropped: field(1),
                    last_at_ns: field(2),
                    min_order_id: field(3),
                    max_order_id: field(4),
                    order_hash: field(5),
                };
                if trailer.records != self.records || trailer.order_hash != self.hash.value() {
                    return Err(TraceError::Corrupt {
                        offset: start,
                        what: format!(
                            "trailer says {} records (hash {:016x}), {} were read (hash {:016x})",
                            trailer.records,
                            trailer.order_hash,
                            self.records,
                            self.hash.value()
                        ),
                    });
                }
                self.offset = start + bytes.len() as u64;
                let mut extra = [0u8; 1];
                loop {
                    match self.input.read(&mut extra) {
                        Ok(0) => break,
                        Ok(_) => {
                            return Err(TraceError::Corrupt {
                                offset: self.offset,
                                what: "bytes after the trailer".into(),
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                self.trailer = Some(trailer);
                Ok(())
            }
            other => Err(TraceError::Corrupt {
                offset: start,
                what: format!("unknown block tag {other:#04x}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashsale_core::types::SkuConfig;

    fn sample() -> Vec<TraceRecord> {
        let mut out = vec![TraceRecord {
            at_ns: 0,
            command: Command::UpsertSku(SkuConfig::simple(7, 100, 2, 60_000)),
        }];
        for i in 0..10_000u64 {
            let command = match i % 3 {
                0 => Command::Reserve {
                    order_id: 1 << 40 | i,
                    user_id: i * 7,
                    sku_id: 7,
                    qty: 1 + (i % 2) as u32,
                },
                1 => Command::Pay {
                    order_id: 1 << 40 | i,
                    user_id: i,
                },
                _ => Command::Cancel {
                    order_id: 1 << 40 | i,
                    user_id: i,
                },
            };
            out.push(TraceRecord {
                at_ns: i * 1_234 + (i % 5) * 1_000_000_000,
                command,
            });
        }
        out.sort_by_key(|r| r.at_ns);
        out
    }

    fn write(records: &[TraceRecord]) -> Vec<u8> {
        let header = TraceHeader::new(FLAG_SERVER_CAPTURE, 42, 9, "source = \"test\"".into());
        let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
        for r in records {
            w.push(r.at_ns, &r.command).unwrap();
        }
        w.finish(3).unwrap().0
    }

    fn read_all(bytes: &[u8]) -> Result<(TraceHeader, Vec<TraceRecord>, TraceTrailer), TraceError> {
        let mut r = TraceReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push(rec);
        }
        Ok((r.header().clone(), out, *r.trailer().unwrap()))
    }

    #[test]
    fn round_trip_is_exact() {
        let records = sample();
        let bytes = write(&records);
        let (header, back, trailer) = read_all(&bytes).unwrap();
        assert_eq!(back, records);
        assert_eq!(header.seed, 9);
        assert_eq!(header.start_epoch_ns, 42);
        assert_eq!(header.provenance, "source = \"test\"");
        assert_eq!(trailer.records, records.len() as u64);
        assert_eq!(trailer.dropped, 3);
        assert_eq!(trailer.min_order_id, 1 << 40);
        assert_eq!(trailer.max_order_id, 1 << 40 | 9_999);
        // Compact: varint deltas + protocol encodings (reserve 25 bytes, pay/cancel 17).
        assert!(bytes.len() < records.len() * 28, "{} bytes", bytes.len());
    }

    #[test]
    fn every_truncation_is_an_error_naming_an_offset() {
        let bytes = write(&sample()[..300]);
        for cut in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
            let err = read_all(&bytes[..cut]).unwrap_err();
            match err {
                TraceError::Truncated { offset, .. } => assert!(offset <= cut as u64),
                TraceError::BadMagic if cut < 4 => {}
                other => panic!("cut at {cut}: unexpected {other}"),
            }
        }
    }

    #[test]
    fn a_flipped_byte_is_a_checksum_error_not_garbage() {
        let bytes = write(&sample()[..300]);
        for at in (4..bytes.len()).step_by(13) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(read_all(&bad).is_err(), "flip at {at} went unnoticed");
        }
    }

    #[test]
    fn backwards_timestamps_are_refused() {
        let header = TraceHeader::new(0, 0, 0, String::new());
        let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
        w.push(10, &Command::QuerySku { sku_id: 1 }).unwrap();
        assert!(matches!(
            w.push(9, &Command::QuerySku { sku_id: 1 }),
            Err(TraceError::Backwards { .. })
        ));
    }

    #[test]
    fn varints_round_trip_and_reject_overlong() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(v, &mut out);
            assert_eq!(get_varint(&out), Some((v, out.len())));
        }
        assert_eq!(get_varint(&[0xff; 11]), None);
        assert_eq!(get_varint(&[0x80]), None);
    }
}
