//! A target with a known, artificial capacity (`limited:RATE`, e.g. `limited:20k`): it serves at
//! most RATE requests per second — a token bucket whose burst is one batch — and queues the
//! rest, first come first served, so latency grows without bound past RATE and stays near zero
//! below it. Answers are the no-op target's. It exists to check the sweep (it must find RATE)
//! and to try capacity tooling without a server; it must not pretend to keep state.

use super::noop::answer;
use super::{Completion, Done, Target, TargetError};
use flashsale_engine::{Command, SkuConfig, SkuId, SkuView};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

struct Job {
    commands: Vec<Command>,
    done: Done,
    arrived: Instant,
}

pub struct Limited {
    rate_per_s: f64,
    stopping: Arc<AtomicBool>,
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Limited {
    /// Starts the server thread. `rate_per_s` must be > 0.
    pub fn start(rate_per_s: f64) -> Result<Limited, TargetError> {
        if !(rate_per_s.is_finite() && rate_per_s > 0.0) {
            return Err(TargetError::Spec(format!("limited:{rate_per_s}")));
        }
        let (sender, receiver) = mpsc::channel::<Job>();
        let per_request = Duration::from_secs_f64(1.0 / rate_per_s);
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let worker = std::thread::Builder::new()
            .name("limited-target".into())
            .spawn(move || serve(receiver, per_request, &flag))
            .map_err(|e| {
                TargetError::Unsupported(format!("cannot start the limited target: {e}"))
            })?;
        Ok(Limited {
            rate_per_s,
            stopping,
            sender: Mutex::new(Some(sender)),
            worker: Mutex::new(Some(worker)),
        })
    }
}

/// One server: each job starts when both it has arrived and the previous one is done, and
/// takes `per_request` per command. After shutdown, what is still queued fails at once.
fn serve(receiver: mpsc::Receiver<Job>, per_request: Duration, stopping: &AtomicBool) {
    let mut free_at = Instant::now();
    while let Ok(job) = receiver.recv() {
        if stopping.load(Ordering::Acquire) {
            fail(job);
            continue;
        }
        let start = free_at.max(job.arrived);
        let finish = start + per_request * job.commands.len() as u32;
        free_at = finish;
        let now = Instant::now();
        if finish > now {
            std::thread::sleep(finish - now);
        }
        let outcomes = job.commands.iter().map(answer).collect();
        (job.done)(Completion {
            result: Ok(outcomes),
            failed: Vec::new(),
            sent_at: job.arrived,
            done_at: Instant::now(),
        });
    }
}

/// Parses `20000`, `20k`, `1.5M`.
pub fn parse_rate(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        _ => (t, 1.0),
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v > 0.0).then_some(v * mult)
}

impl Target for Limited {
    fn describe(&self) -> String {
        format!("limited ({:.0} requests/s)", self.rate_per_s)
    }
    fn max_batch(&self) -> usize {
        64
    }
    fn keeps_state(&self) -> bool {
        false
    }
    fn setup(&self, _catalog: &[SkuConfig]) -> Result<(), TargetError> {
        Ok(())
    }
    fn submit(&self, commands: Vec<Command>, done: Done) {
        let job = Job {
            commands,
            done,
            arrived: Instant::now(),
        };
        let sender = self.sender.lock().ok().and_then(|s| s.clone());
        match sender {
            Some(sender) => {
                if let Err(mpsc::SendError(job)) = sender.send(job) {
                    fail(job);
                }
            }
            None => fail(job),
        }
    }
    fn query_skus(&self, sku_ids: &[SkuId]) -> Result<Vec<Option<SkuView>>, TargetError> {
        Ok(vec![None; sku_ids.len()])
    }
    fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        if let Some(worker) = self.worker.lock().ok().and_then(|mut w| w.take()) {
            let _ = worker.join();
        }
    }
}

fn fail(job: Job) {
    (job.done)(Completion {
        result: Err(super::Failure::Transport),
        failed: Vec::new(),
        sent_at: job.arrived,
        done_at: Instant::now(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn serves_at_its_rate_and_queues_the_rest() {
        let target = Limited::start(10_000.0).unwrap();
        let answered = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        // 2,000 requests at once: 0.2 s of work at 10k/s.
        for _ in 0..50 {
            let answered = answered.clone();
            let commands = vec![Command::QuerySku { sku_id: 1 }; 40];
            target.submit(
                commands,
                Box::new(move |c| {
                    answered.fetch_add(c.result.unwrap().len() as u64, Ordering::SeqCst);
                }),
            );
        }
        while answered.load(Ordering::SeqCst) < 2_000 && started.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let took = started.elapsed();
        target.shutdown();
        assert_eq!(answered.load(Ordering::SeqCst), 2_000);
        assert!(took >= Duration::from_millis(195), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}
