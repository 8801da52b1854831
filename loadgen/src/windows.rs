//! Latency windows fed by every closed interval (the hlog writer hands each interval's
//! histograms here as it writes them): one per scenario phase, for per-phase thresholds
//! (`midnight:reserve.p99<2ms`), and the whole run so far, for the live judgement of
//! `--abort-on-fail` thresholds, which trips a wire that stops the run. An interval belongs to
//! the phase that holds its midpoint. It accumulates and judges; it must not record answers,
//! pace requests or write files.

use crate::recorder::{Live, OPS, OpHistograms, new_histogram};
use crate::slo::{Metric, Slo, Window};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A phase of the plan, in real seconds since the start.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseSpan {
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
}

/// Latency and errors gathered over some intervals.
struct Accumulated {
    histograms: [OpHistograms; 3],
    errors: u64,
    intervals: u64,
}

impl Accumulated {
    fn new() -> Accumulated {
        Accumulated {
            histograms: [0, 1, 2].map(|_| OpHistograms {
                corrected: new_histogram(),
                service: new_histogram(),
            }),
            errors: 0,
            intervals: 0,
        }
    }

    fn window(&self, interval_s: f64) -> Window<'_> {
        Window {
            histograms: &self.histograms,
            errors_by_op: None,
            errors: self.errors,
            unanswered: 0,
            duration_s: self.intervals as f64 * interval_s,
        }
    }
}

/// Set once an abort-on-fail threshold is breached: the driver's abort condition reads it.
#[derive(Clone, Default)]
pub struct Tripwire {
    tripped: Arc<AtomicBool>,
    why: Arc<Mutex<Option<String>>>,
}

impl Tripwire {
    pub fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    /// Which threshold tripped it, when, and at what figure.
    pub fn why(&self) -> Option<String> {
        self.why.lock().ok().and_then(|w| w.clone())
    }

    fn trip(&self, why: String) {
        if let Ok(mut slot) = self.why.lock() {
            slot.get_or_insert(why);
        }
        self.tripped.store(true, Ordering::Release);
    }
}

/// The abort-on-fail thresholds and what they need to be judged live.
struct LiveJudge {
    slos: Vec<Slo>,
    live: Arc<Live>,
    /// `Live::errors` when last read; what it gained since belongs to the previous interval.
    errors_seen: u64,
    previous_phase: Option<usize>,
    tripwire: Tripwire,
}

/// The windows of one run.
pub struct Windows {
    phases: Vec<PhaseSpan>,
    per_phase: Vec<Accumulated>,
    /// Every interval so far (kept only when an abort threshold covers the whole run).
    whole: Option<Accumulated>,
    judge: Option<LiveJudge>,
    interval_s: f64,
    /// The interval being received and how many of its histograms arrived.
    current_start_s: f64,
    current_parts: usize,
}

impl Windows {
    /// Windows over `phases` (kept only when some threshold names a phase), judging the
    /// `abort` thresholds live against `live`'s error count.
    pub fn new(phases: Vec<PhaseSpan>, slos: &[Slo], live: Arc<Live>) -> (Windows, Tripwire) {
        let per_phase = if slos.iter().any(|s| s.phase.is_some()) {
            phases.iter().map(|_| Accumulated::new()).collect()
        } else {
            Vec::new()
        };
        let abort: Vec<Slo> = slos.iter().filter(|s| s.abort).cloned().collect();
        let whole = abort
            .iter()
            .any(|s| s.phase.is_none())
            .then(Accumulated::new);
        let tripwire = Tripwire::default();
        let judge = (!abort.is_empty()).then(|| LiveJudge {
            slos: abort,
            live,
            errors_seen: 0,
            previous_phase: None,
            tripwire: tripwire.clone(),
        });
        let windows = Windows {
            phases,
            per_phase,
            whole,
            judge,
            interval_s: 1.0,
            current_start_s: -1.0,
            current_parts: 0,
        };
        (windows, tripwire)
    }

    /// Whether anything here needs the intervals at all.
    pub fn is_needed(&self) -> bool {
        !self.per_phase.is_empty() || self.judge.is_some()
    }

    /// The phase holding the middle of the interval `[start_s, start_s + duration_s)`; after
    /// the last phase (the drain), the last one.
    pub fn phase_of(&self, start_s: f64, duration_s: f64) -> Option<usize> {
        let middle = start_s + duration_s / 2.0;
        self.phases
            .iter()
            .position(|p| middle < p.end_s)
            .or_else(|| self.phases.len().checked_sub(1))
    }

    /// The phase called `name` and its window (errors from the live count, without the last
    /// interval's: the run replaces them with the exact figures).
    pub fn phase(&self, name: &str) -> Option<(usize, &[OpHistograms; 3], u64)> {
        let i = self.phases.iter().position(|p| p.name == name)?;
        let acc = self.per_phase.get(i)?;
        Some((i, &acc.histograms, acc.intervals))
    }

    /// One histogram of a closed interval, tagged as in `latency.hlog` (`reserve`,
    /// `reserve_service`, …).
    pub fn add(&mut self, tag: &str, histogram: &Histogram<u64>, start_s: f64, duration_s: f64) {
        let (op_name, service) = match tag.strip_suffix("_service") {
            Some(op) => (op, true),
            None => (tag, false),
        };
        let Some(op) = OPS.iter().position(|o| *o == op_name) else {
            return;
        };
        if start_s != self.current_start_s {
            self.current_start_s = start_s;
            self.current_parts = 0;
        }
        self.interval_s = duration_s;
        let phase = self.phase_of(start_s, duration_s);
        let targets = phase
            .and_then(|p| self.per_phase.get_mut(p))
            .into_iter()
            .chain(self.whole.as_mut());
        for acc in targets {
            let h = &mut acc.histograms[op];
            // Same bounds on both sides: adding cannot fail.
            let _ = if service {
                h.service.add(histogram)
            } else {
                h.corrected.add(histogram)
            };
        }
        self.current_parts += 1;
        if self.current_parts == 2 * OPS.len() {
            self.close_interval(phase, start_s + duration_s);
        }
    }

    fn close_interval(&mut self, phase: Option<usize>, end_s: f64) {
        if let Some(p) = phase.and_then(|p| self.per_phase.get_mut(p)) {
            p.intervals += 1;
        }
        if let Some(w) = self.whole.as_mut() {
            w.intervals += 1;
        }
        let Some(judge) = self.judge.as_mut() else {
            return;
        };
        // Errors are counted when an interval closes, after its histograms were written:
        // what `Live` gained since the last look is the previous interval's.
        let errors = judge.live.errors.load(Ordering::Relaxed);
        let gained = errors.saturating_sub(judge.errors_seen);
        judge.errors_seen = errors;
        if let Some(p) = judge.previous_phase.and_then(|p| self.per_phase.get_mut(p)) {
            p.errors += gained;
        }
        if let Some(w) = self.whole.as_mut() {
            w.errors += gained;
        }
        judge.previous_phase = phase;
        for slo in &judge.slos {
            let acc = match &slo.phase {
                None => self.whole.as_ref(),
                Some(name) => {
                    let i = self.phases.iter().position(|p| &p.name == name);
                    i.and_then(|i| self.per_phase.get(i).map(|a| (i, a)))
                        .filter(|(i, _)| {
                            // A phase's rate is judged once the phase is over.
                            !matches!(slo.metric, Metric::Rate { .. })
                                || self.phases[*i].end_s <= end_s
                        })
                        .map(|(_, a)| a)
                }
            };
            let Some(acc) = acc else { continue };
            if matches!(slo.metric, Metric::Rate { .. }) && slo.phase.is_none() {
                continue; // the run's rate is judged at its end
            }
            let window = acc.window(self.interval_s);
            let answers: u64 = acc.histograms.iter().map(|h| h.corrected.len()).sum();
            if answers < slo.min_answers_to_judge() {
                continue;
            }
            let result = slo.evaluate(&window);
            if !result.passed {
                judge.tripwire.trip(format!(
                    "{} breached {:.0} s into the run: {}",
                    slo.spec,
                    end_s,
                    result.measured_text()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans() -> Vec<PhaseSpan> {
        [("ramp", 0.0, 2.5), ("peak", 2.5, 6.0)]
            .map(|(n, a, b)| PhaseSpan {
                name: n.to_string(),
                start_s: a,
                end_s: b,
            })
            .to_vec()
    }

    fn interval(w: &mut Windows, start_s: f64, reserve_ms: u64, count: u64) {
        let mut h = new_histogram();
        h.record_n(reserve_ms * 1_000_000, count).unwrap();
        let empty = new_histogram();
        for op in OPS {
            let hist = if op == "reserve" { &h } else { &empty };
            w.add(op, hist, start_s, 1.0);
            w.add(&format!("{op}_service"), hist, start_s, 1.0);
        }
    }

    #[test]
    fn intervals_go_to_the_phase_holding_their_middle() {
        let slos = [Slo::parse("peak:reserve.p99<2ms").unwrap()];
        let (mut w, tripwire) = Windows::new(spans(), &slos, Arc::new(Live::default()));
        assert!(w.is_needed());
        for s in 0..8 {
            interval(&mut w, s as f64, if s < 2 { 1 } else { 5 }, 100);
        }
        let (_, ramp, ramp_intervals) = w.phase("ramp").unwrap();
        assert_eq!((ramp[0].corrected.len(), ramp_intervals), (200, 2));
        let (_, peak, peak_intervals) = w.phase("peak").unwrap();
        // Intervals 2..=5 and the two after the end (the drain) are the last phase's.
        assert_eq!((peak[0].corrected.len(), peak_intervals), (600, 6));
        assert!(
            !tripwire.is_tripped(),
            "nothing aborts without --abort-on-fail"
        );
    }

    #[test]
    fn an_abort_threshold_trips_once_it_has_enough_answers() {
        let mut slo = Slo::parse("reserve.p99<2ms").unwrap();
        slo.abort = true;
        let (mut w, tripwire) = Windows::new(spans(), &[slo], Arc::new(Live::default()));
        // 500 slow answers: too few to judge a p99 (1,000 needed).
        interval(&mut w, 0.0, 5, 500);
        assert!(!tripwire.is_tripped());
        interval(&mut w, 1.0, 5, 500);
        assert!(tripwire.is_tripped());
        let why = tripwire.why().unwrap();
        assert!(
            why.starts_with("reserve.p99<2ms breached 2 s into the run"),
            "{why}"
        );
    }
}
