//! flashsale-loadgen: the open-loop load generator for flashsale. It owns traffic models
//! (`scenario`, `schedule`), the open-loop `driver`, latency recording (`recorder`), invariant
//! checks (`verify`), reports (`report`) and SLO gates (`slo`), and the `run` orchestration
//! shared by the binary and the tests; capacity planning (`trace` record / info, `import`,
//! `replay`, `sweep`) builds on the same driver; it must never reach into the engine's internals, only
//! its public submit API and network contracts.

pub mod driver;
pub mod health;
pub mod import;
pub mod placement;
pub mod recorder;
pub mod replay;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod slo;
pub mod sweep;
pub mod target;
pub mod trace;
pub mod verify;
