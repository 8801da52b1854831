//! flashsale-wire: flashsale's byte formats and the client that speaks them.
//!
//! It owns the binary codec ([`protocol`]: frames, handshake, commands and outcomes; its
//! frame-free command encoding is also the journal's), the trace format ([`trace`], `.fst`:
//! one streaming writer and reader shared by the server's capture and the load generator's
//! record and replay) and the async pipelined TCP [`client`]. Byte layouts are in
//! `docs/protocol.md` and `docs/trace-format.md`.
//!
//! It must not know the engine or the server: the codec and the trace are pure functions over
//! bytes and readers, and the client only connects, encodes and matches replies. It depends
//! on `flashsale-core` for the types and on nothing of the runtime.

pub mod client;
pub mod protocol;
pub mod trace;
