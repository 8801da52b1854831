//! The generator's live Prometheus endpoint (`--metrics-addr`): `GET /metrics` in the text
//! exposition format, so a dashboard shows the generator's offered and achieved rates, its
//! outcomes, its corrected and service latency and its send lag beside the engine's own
//! metrics. The recorder adds each closed interval to [`GeneratorMetrics`] (one short lock a
//! second, on the recorder's thread: the pacer never touches it); the server, hyper on a
//! current-thread tokio runtime of its own thread, renders on every scrape. Counters only grow,
//! across every run of the process (a sweep's steps add up). It must not pace, send or record.

use crate::recorder::{LABELS, N_LABELS, OPS};
use hdrhistogram::Histogram;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Upper bounds of the latency buckets, in seconds: a 1-2-5 ladder from 10 µs to 10 s (the
/// engine's own ladder).
pub const BUCKETS_S: [f64; 19] = [
    10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 100e-3,
    200e-3, 500e-3, 1.0, 2.0, 5.0, 10.0,
];
const N_BUCKETS: usize = BUCKETS_S.len() + 1;

/// A Prometheus histogram: counts per bucket (not cumulative; the last is +Inf), sum, count.
#[derive(Clone, Copy, Debug)]
struct Buckets {
    counts: [u64; N_BUCKETS],
    sum_s: f64,
    count: u64,
}

impl Default for Buckets {
    fn default() -> Buckets {
        Buckets {
            counts: [0; N_BUCKETS],
            sum_s: 0.0,
            count: 0,
        }
    }
}

impl Buckets {
    /// Adds every value of an HdrHistogram (ns): in the bucket of the lowest value its
    /// HdrHistogram bucket holds (so an exact 1 ms is `le="0.001"`), to the sum at its middle.
    fn add(&mut self, h: &Histogram<u64>) {
        for v in h.iter_recorded() {
            let n = v.count_at_value();
            let at = v.value_iterated_to();
            let low_s = h.lowest_equivalent(at) as f64 / 1e9;
            let slot = BUCKETS_S.partition_point(|&bound| bound < low_s);
            self.counts[slot] += n;
            self.sum_s += h.median_equivalent(at) as f64 / 1e9 * n as f64;
            self.count += n;
        }
    }
}

#[derive(Clone, Debug)]
struct State {
    offered: [u64; 3],
    answers: [[u64; N_LABELS]; 3],
    corrected: [Buckets; 3],
    service: [Buckets; 3],
    send_lag: [Buckets; 3],
    intervals: u64,
}

/// What the endpoint exports, added to by the recorder once per closed interval.
#[derive(Debug)]
pub struct GeneratorMetrics {
    state: Mutex<State>,
}

/// One op's closed interval, as the recorder hands it over.
pub struct OpDelta<'a> {
    pub offered: u64,
    pub outcomes: &'a [u64; N_LABELS],
    pub corrected: &'a Histogram<u64>,
    pub service: &'a Histogram<u64>,
    pub send_lag: &'a Histogram<u64>,
}

impl Default for GeneratorMetrics {
    fn default() -> GeneratorMetrics {
        GeneratorMetrics {
            state: Mutex::new(State {
                offered: [0; 3],
                answers: [[0; N_LABELS]; 3],
                corrected: [Buckets::default(); 3],
                service: [Buckets::default(); 3],
                send_lag: [Buckets::default(); 3],
                intervals: 0,
            }),
        }
    }
}

impl GeneratorMetrics {
    /// Adds one closed interval (`ops` in [`OPS`] order).
    pub fn add_interval(&self, ops: &[OpDelta<'_>; 3]) {
        let Ok(mut s) = self.state.lock() else { return };
        for (i, op) in ops.iter().enumerate() {
            s.offered[i] += op.offered;
            for (sum, n) in s.answers[i].iter_mut().zip(op.outcomes) {
                *sum += n;
            }
            s.corrected[i].add(op.corrected);
            s.service[i].add(op.service);
            s.send_lag[i].add(op.send_lag);
        }
        s.intervals += 1;
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let s = match self.state.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let mut out = String::with_capacity(16 * 1024);
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        head(
            &mut out,
            "flashsale_loadgen_build_info",
            "gauge",
            "The load generator's version (always 1).",
        );
        let _ = writeln!(
            out,
            "flashsale_loadgen_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        head(
            &mut out,
            "flashsale_loadgen_intervals_total",
            "counter",
            "Recording intervals closed (one a second while a run goes).",
        );
        let _ = writeln!(out, "flashsale_loadgen_intervals_total {}", s.intervals);
        head(
            &mut out,
            "flashsale_loadgen_offered_total",
            "counter",
            "Requests offered (by intended send time), by op.",
        );
        for (op, n) in OPS.iter().zip(s.offered) {
            let _ = writeln!(out, "flashsale_loadgen_offered_total{{op=\"{op}\"}} {n}");
        }
        head(
            &mut out,
            "flashsale_loadgen_achieved_total",
            "counter",
            "Answers recorded (every outcome, errors included), by op.",
        );
        for (op, answers) in OPS.iter().zip(&s.answers) {
            let n: u64 = answers.iter().sum();
            let _ = writeln!(out, "flashsale_loadgen_achieved_total{{op=\"{op}\"}} {n}");
        }
        head(
            &mut out,
            "flashsale_loadgen_answers_total",
            "counter",
            "Answers recorded, by op and outcome (the API's codes, then the client's own failures).",
        );
        for (op, answers) in OPS.iter().zip(&s.answers) {
            for (label, n) in LABELS.iter().zip(answers) {
                let _ = writeln!(
                    out,
                    "flashsale_loadgen_answers_total{{op=\"{op}\",outcome=\"{label}\"}} {n}"
                );
            }
        }
        head(
            &mut out,
            "flashsale_loadgen_latency_seconds",
            "histogram",
            "Answer latency by op; kind=corrected from the intended send time (coordinated omission corrected), kind=service from the actual send.",
        );
        for (kind, all) in [("corrected", &s.corrected), ("service", &s.service)] {
            for (op, b) in OPS.iter().zip(all) {
                histogram(
                    &mut out,
                    "flashsale_loadgen_latency_seconds",
                    &format!("op=\"{op}\",kind=\"{kind}\""),
                    b,
                );
            }
        }
        head(
            &mut out,
            "flashsale_loadgen_send_lag_seconds",
            "histogram",
            "Actual send time minus intended send time of the answered requests, by op.",
        );
        for (op, b) in OPS.iter().zip(&s.send_lag) {
            histogram(
                &mut out,
                "flashsale_loadgen_send_lag_seconds",
                &format!("op=\"{op}\""),
                b,
            );
        }
        out
    }

    /// Serves `GET /metrics` on `addr` from a thread of its own, for the rest of the process;
    /// returns the address bound (a port 0 becomes the one the system chose).
    pub fn serve(self: &Arc<Self>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let bound = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let metrics = self.clone();
        // Off the pacer's CPU (the first usable one, see placement.rs): a scrape must not take
        // the pacer's CPU away.
        let cpus = crate::placement::usable_cpus();
        let others = cpus.get(1..).unwrap_or(&[]);
        crate::placement::spawning_on(others, || {
            std::thread::Builder::new()
                .name("loadgen-metrics".into())
                .spawn(move || runtime.block_on(accept_loop(listener, metrics)))
        })?;
        Ok(bound)
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, b: &Buckets) {
    let mut cumulative = 0u64;
    for (bound, n) in BUCKETS_S.iter().zip(&b.counts) {
        cumulative += n;
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", b.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", b.sum_s);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", b.count);
}

async fn accept_loop(listener: std::net::TcpListener, metrics: Arc<GeneratorMetrics>) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Method, Request, Response, StatusCode};
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("metrics endpoint: {e}");
            return;
        }
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let metrics = metrics.clone();
            async move {
                match (req.method(), req.uri().path()) {
                    (&Method::GET, "/metrics") => Response::builder()
                        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                        .body(Full::new(Bytes::from(metrics.render()))),
                    (_, "/metrics") => Response::builder()
                        .status(StatusCode::METHOD_NOT_ALLOWED)
                        .header("allow", "GET")
                        .body(Full::new(Bytes::new())),
                    _ => Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Full::new(Bytes::from_static(b"try GET /metrics\n"))),
                }
            }
        });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::new_histogram;

    #[test]
    fn buckets_count_each_value_under_its_bound() {
        let mut h = new_histogram();
        h.record(5_000).unwrap(); // 5 µs → le 10 µs
        h.record(1_000_000).unwrap(); // 1 ms → le 1 ms
        h.record(20_000_000_000).unwrap(); // 20 s → +Inf
        let mut b = Buckets::default();
        b.add(&h);
        assert_eq!(b.count, 3);
        assert_eq!(b.counts[0], 1);
        assert_eq!(
            b.counts[BUCKETS_S.iter().position(|&x| x == 1e-3).unwrap()],
            1
        );
        assert_eq!(b.counts[N_BUCKETS - 1], 1);
        assert!((b.sum_s - 20.001).abs() < 0.05, "{}", b.sum_s);
    }
}
