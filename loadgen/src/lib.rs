//! flashsale-loadgen: the open-loop load generator for flashsale. It owns traffic models
//! (`scenario`, `driver::schedule`), the open-loop `driver` and its own `health`, the command line (`cli`), the load `targets`, latency recording
//! (`recorder`), the run's `validity` verdict, invariant checks (`verify`), reports (`report`),
//! SLO gates (`slo`) over the whole run or the phase `windows`, the live Prometheus endpoint
//! (`metrics`), and the `run` orchestration
//! shared by the binary and the tests; capacity planning (`trace` record / info, `import`,
//! `replay`, `sweep`) builds on the same driver; it must never reach into the engine's internals, only
//! its public submit API and network contracts.

pub mod cli;
pub mod driver;
pub mod health;
pub mod import;
pub mod metrics;
pub mod placement;
pub mod recorder;
pub mod replay;
pub mod report;
pub mod run;
pub mod scenario;

pub mod slo;
pub mod sweep;
pub mod targets;
pub mod trace;
pub mod validity;
pub mod verify;
pub mod windows;
