//! The flashsale load generator (placeholder until the load-generator issue lands). It owns
//! traffic models, the open-loop driver and latency recording; it must never reach into the
//! engine's internals, only its public submit API and network clients.
