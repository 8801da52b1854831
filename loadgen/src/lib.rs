//! flashsale-loadgen: the open-loop load generator for flashsale. It owns traffic models
//! (`scenario`, `schedule`), the open-loop driver, latency recording, reports and SLO gates; it
//! must never reach into the engine's internals, only its public submit API and network clients.

pub mod scenario;
pub mod schedule;
