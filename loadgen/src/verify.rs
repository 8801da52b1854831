//! After-run checks of the sale's invariants: from the target's SKU views (sold + held ≤ stock,
//! the stock split adds up) and from the generator's own ledger of the answers it received (no
//! user over the per-user limit, no order created twice, paid units match `sold` when every
//! answer arrived). The ledger keeps only held and paid units per (user, SKU) and the open
//! holds, so it stays compact. This module judges; it must not send anything itself.

use flashsale_engine::{OrderId, OrderView, SkuConfig, SkuId, SkuView, UserId};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

const MAX_EXAMPLES: usize = 10;

#[derive(Clone, Copy, Debug)]
struct Hold {
    user_id: UserId,
    sku_id: SkuId,
    qty: u32,
    expires_at_ms: u64,
}

/// The generator's record of who holds or bought what, built from the answers alone.
#[derive(Debug, Default)]
pub struct Ledger {
    per_user_limit: u32,
    hold_ttl_ms: u64,
    units: FxHashMap<(UserId, SkuId), u32>,
    holds: FxHashMap<OrderId, Hold>,
    expiries: BinaryHeap<Reverse<(u64, OrderId)>>,
    paid_units: FxHashMap<SkuId, u64>,
    violations: u64,
    examples: Vec<String>,
}

impl Ledger {
    pub fn new(per_user_limit: u32, hold_ttl_ms: u64) -> Ledger {
        Ledger {
            per_user_limit,
            hold_ttl_ms,
            ..Ledger::default()
        }
    }

    /// The same ledger with its tables sized for `orders` holds and their memory written now,
    /// before the clock starts: recording them never grows (rehashes) a table mid-run, nor
    /// faults in fresh pages. Both stalled the recorder — a rehash of millions of holds for
    /// 300 ms, the kernel zeroing the tables' first-touched huge pages for 600 ms — and with it
    /// every follow-up the pacer waited for.
    pub fn with_room_for(mut self, orders: usize) -> Ledger {
        let hold = Hold {
            user_id: 0,
            sku_id: 0,
            qty: 0,
            expires_at_ms: 0,
        };
        for key in 0..orders as u64 {
            self.holds.insert(key, hold);
            self.units.insert((key, 0), 0);
            self.expiries.push(Reverse((0, key)));
        }
        self.holds.clear();
        self.units.clear();
        self.expiries.clear();
        self
    }

    fn violation(&mut self, text: String) {
        self.violations += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(text);
        }
    }

    fn add_units(&mut self, user_id: UserId, sku_id: SkuId, qty: u32, order_id: OrderId) {
        let units = self.units.entry((user_id, sku_id)).or_insert(0);
        *units += qty;
        let now = *units;
        if now > self.per_user_limit {
            self.violation(format!(
                "user {user_id} holds or bought {now} units of SKU {sku_id} (limit {}) after order {order_id}",
                self.per_user_limit
            ));
        }
    }

    fn remove_units(&mut self, user_id: UserId, sku_id: SkuId, qty: u32) {
        if let Some(units) = self.units.get_mut(&(user_id, sku_id)) {
            *units = units.saturating_sub(qty);
            if *units == 0 {
                self.units.remove(&(user_id, sku_id));
            }
        }
    }

    /// Forgets holds that lapsed by `now_ms` (the target's clock).
    fn expire_until(&mut self, now_ms: u64) {
        while let Some(&Reverse((at, order_id))) = self.expiries.peek() {
            if at > now_ms {
                break;
            }
            self.expiries.pop();
            if let Some(h) = self.holds.get(&order_id)
                && h.expires_at_ms == at
            {
                let h = *h;
                self.holds.remove(&order_id);
                self.remove_units(h.user_id, h.sku_id, h.qty);
            }
        }
    }

    /// A reserve answered a new hold.
    pub fn created(&mut self, view: &OrderView) {
        // The hold began `hold_ttl_ms` before it expires: on the target's clock, every hold
        // that expired by then no longer counts.
        self.expire_until(view.expires_at_ms.saturating_sub(self.hold_ttl_ms));
        if self.holds.contains_key(&view.order_id) {
            self.violation(format!("order {} was created twice", view.order_id));
            return;
        }
        self.holds.insert(
            view.order_id,
            Hold {
                user_id: view.user_id,
                sku_id: view.sku_id,
                qty: view.qty,
                expires_at_ms: view.expires_at_ms,
            },
        );
        self.expiries
            .push(Reverse((view.expires_at_ms, view.order_id)));
        self.add_units(view.user_id, view.sku_id, view.qty, view.order_id);
    }

    /// A pay answered `paid` with this view.
    pub fn paid(&mut self, view: &OrderView) {
        if self.holds.remove(&view.order_id).is_none() {
            // Its hold was already counted as lapsed (so it was in fact paid in time and its
            // units count again), or its reserve answer never reached us.
            self.add_units(view.user_id, view.sku_id, view.qty, view.order_id);
        }
        *self.paid_units.entry(view.sku_id).or_insert(0) += u64::from(view.qty);
    }

    /// A pay or cancel found the order cancelled or expired: its units are free again.
    pub fn released(&mut self, order_id: OrderId) {
        if let Some(h) = self.holds.remove(&order_id) {
            self.remove_units(h.user_id, h.sku_id, h.qty);
        }
    }

    pub fn violations(&self) -> (u64, &[String]) {
        (self.violations, &self.examples)
    }

    pub fn paid_units(&self, sku_id: SkuId) -> u64 {
        self.paid_units.get(&sku_id).copied().unwrap_or(0)
    }

    pub fn tracked_pairs(&self) -> usize {
        self.units.len()
    }
}

/// Where the verification got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Every invariant checked holds.
    Passed,
    /// Some invariant does not hold (`examples` say which).
    Violated,
    /// The check could not be made: the target did not answer its queries (`note` says why).
    Incomplete,
    /// Nothing to check: the target keeps no state, or the workload has no ledger model.
    NotChecked,
}

/// The verdict printed after the run and stored in `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub status: Verification,
    pub checked: bool,
    pub passed: bool,
    pub skus_checked: usize,
    pub stock_violations: u64,
    pub limit_violations: u64,
    /// Whether sold == the units we saw paid was checked (only when every answer arrived).
    pub paid_matches_sold_checked: bool,
    pub paid_mismatches: u64,
    pub examples: Vec<String>,
    pub note: String,
}

impl Verdict {
    pub fn skipped(note: &str) -> Verdict {
        Verdict {
            status: Verification::NotChecked,
            checked: false,
            passed: true,
            skus_checked: 0,
            stock_violations: 0,
            limit_violations: 0,
            paid_matches_sold_checked: false,
            paid_mismatches: 0,
            examples: Vec::new(),
            note: note.to_string(),
        }
    }

    /// `invariants: PASS — …`, `invariants: FAIL — …`, `invariants: INCOMPLETE — …` or
    /// `invariants: not checked (…)`; the examples and notes follow on their own lines.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![match self.status {
            Verification::NotChecked => format!("invariants: not checked ({})", self.note),
            Verification::Incomplete => format!("invariants: INCOMPLETE — {}", self.note),
            Verification::Passed => format!(
                "invariants: PASS — sold + held <= stock on {} SKUs; no user over the limit{}",
                self.skus_checked,
                if self.paid_matches_sold_checked {
                    "; paid units == sold"
                } else {
                    ""
                }
            ),
            Verification::Violated => format!(
                "invariants: FAIL — {} stock, {} limit, {} paid/sold violations",
                self.stock_violations, self.limit_violations, self.paid_mismatches
            ),
        }];
        lines.extend(self.examples.iter().map(|e| format!("  {e}")));
        if self.checked && !self.note.is_empty() {
            lines.push(format!("  note: {}", self.note));
        }
        lines
    }

    /// The target could not be queried after the run: nothing was checked, and why.
    pub fn incomplete(reason: &str) -> Verdict {
        Verdict {
            status: Verification::Incomplete,
            passed: false,
            ..Verdict::skipped(reason)
        }
    }
}

/// Checks the target's SKU views against the catalog and the ledger. `complete` says whether
/// every request got an answer (only then can paid units be compared with `sold`).
pub fn verify(
    catalog: &[SkuConfig],
    views: &[Option<SkuView>],
    ledger: &Ledger,
    complete: bool,
) -> Verdict {
    let mut examples: Vec<String> = Vec::new();
    let mut stock_violations = 0;
    let mut paid_mismatches = 0;
    let note = |examples: &mut Vec<String>, s: String| {
        if examples.len() < MAX_EXAMPLES {
            examples.push(s);
        }
    };
    for (config, view) in catalog.iter().zip(views) {
        let Some(v) = view else {
            stock_violations += 1;
            note(
                &mut examples,
                format!("SKU {} is unknown to the target", config.sku_id),
            );
            continue;
        };
        let total = v.config.stock_total;
        if v.sold + v.held > total || v.available + v.held + v.sold != total {
            stock_violations += 1;
            note(
                &mut examples,
                format!(
                    "SKU {}: sold {} + held {} + available {} vs stock {}",
                    config.sku_id, v.sold, v.held, v.available, total
                ),
            );
        }
        if complete && ledger.paid_units(config.sku_id) != v.sold {
            paid_mismatches += 1;
            note(
                &mut examples,
                format!(
                    "SKU {}: target sold {} but the generator saw {} units paid",
                    config.sku_id,
                    v.sold,
                    ledger.paid_units(config.sku_id)
                ),
            );
        }
    }
    let (limit_violations, ledger_examples) = ledger.violations();
    for e in ledger_examples {
        note(&mut examples, e.clone());
    }
    let passed = stock_violations == 0 && limit_violations == 0 && paid_mismatches == 0;
    Verdict {
        status: if passed {
            Verification::Passed
        } else {
            Verification::Violated
        },
        checked: true,
        passed,
        skus_checked: views.len(),
        stock_violations,
        limit_violations,
        paid_matches_sold_checked: complete,
        paid_mismatches,
        examples,
        note: if complete {
            String::new()
        } else {
            "some requests got no answer: paid units were not compared with sold".to_string()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashsale_engine::OrderStatus;

    fn held(order_id: u64, user_id: u64, sku_id: u32, created_ms: u64) -> OrderView {
        OrderView {
            order_id,
            user_id,
            sku_id,
            qty: 1,
            status: OrderStatus::Held,
            expires_at_ms: created_ms + 1000,
        }
    }

    #[test]
    fn over_limit_is_caught_and_expiry_frees_units() {
        let mut l = Ledger::new(1, 1000);
        l.created(&held(1, 7, 3, 0));
        // After order 1 lapsed (created at 1000 ≥ expires 1000) the user may hold again.
        l.created(&held(2, 7, 3, 1000));
        assert_eq!(l.violations().0, 0);
        // Still inside order 2's hold: a second unit is a violation.
        l.created(&held(3, 7, 3, 1500));
        assert_eq!(l.violations().0, 1);
        l.released(3);
        l.paid(&held(2, 7, 3, 1000));
        l.created(&held(4, 7, 3, 5000));
        assert_eq!(l.violations().0, 2, "paid units never lapse");
        assert_eq!(l.paid_units(3), 1);
        l.created(&held(4, 8, 3, 5000));
        assert!(l.violations().1.iter().any(|e| e.contains("created twice")));
    }

    #[test]
    fn a_ledger_with_room_starts_empty() {
        let mut l = Ledger::new(1, 1000).with_room_for(10_000);
        assert!(l.holds.is_empty() && l.units.is_empty() && l.expiries.is_empty());
        assert!(l.holds.capacity() >= 10_000 && l.units.capacity() >= 10_000);
        l.created(&held(1, 7, 3, 0));
        l.created(&held(2, 7, 3, 10));
        assert_eq!(l.violations().0, 1, "the room left no unit behind");
    }

    #[test]
    fn stock_split_is_checked() {
        let config = SkuConfig::simple(1, 10, 1, 1000);
        let good = SkuView {
            config,
            available: 5,
            held: 3,
            sold: 2,
        };
        let mut ledger = Ledger::new(1, 1000);
        ledger.created(&held(1, 1, 1, 0));
        ledger.created(&held(2, 2, 1, 0));
        ledger.paid(&held(1, 1, 1, 0));
        ledger.paid(&held(2, 2, 1, 0));
        assert!(verify(&[config], &[Some(good)], &ledger, true).passed);
        let bad = SkuView { sold: 9, ..good };
        let v = verify(&[config], &[Some(bad)], &ledger, false);
        assert!(!v.passed && v.stock_violations == 1);
        let v = verify(&[config], &[None], &ledger, false);
        assert!(!v.passed);
        let mismatch = SkuView {
            available: 6,
            sold: 1,
            ..good
        };
        assert!(!verify(&[config], &[Some(mismatch)], &ledger, true).passed);
    }
}
