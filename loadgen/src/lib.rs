//! flashsale-loadgen: the open-loop load generator for flashsale. It owns traffic models
//! (`scenario`, `schedule`), the open-loop `driver`, latency recording (`recorder`), invariant
//! checks (`verify`), reports (`report`) and SLO gates (`slo`), and the `run` orchestration
//! shared by the binary and the tests; it must never reach into the engine's internals, only
//! its public submit API and network contracts.

pub mod driver;
pub mod recorder;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod slo;
pub mod target;
pub mod verify;
