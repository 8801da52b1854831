//! A target that answers every command at once without doing anything: it measures the
//! generator itself (the ≥ 3M requests/s figure). Reserves answer `held`, pays `paid`, cancels
//! `cancelled`. It keeps no state and must not pretend to be verifiable.

use super::{Answers, Completion, Done, Exchange, Target, TargetError};
use flashsale_engine::{
    Command, OrderStatus, OrderView, Outcome, Reject, SkuConfig, SkuId, SkuView,
};
use std::time::Instant;

pub struct Noop;

pub(crate) fn answer(command: &Command) -> Outcome {
    let view = |order_id, user_id, sku_id, qty, status| OrderView {
        order_id,
        user_id,
        sku_id,
        qty,
        status,
        expires_at_ms: 0,
    };
    match *command {
        Command::Reserve {
            order_id,
            user_id,
            sku_id,
            qty,
        } => Outcome::Created(view(order_id, user_id, sku_id, qty, OrderStatus::Held)),
        Command::Pay { order_id, user_id } => {
            Outcome::Order(view(order_id, user_id, 0, 0, OrderStatus::Paid))
        }
        Command::Cancel { order_id, user_id } => {
            Outcome::Order(view(order_id, user_id, 0, 0, OrderStatus::Cancelled))
        }
        Command::UpsertSku(_)
        | Command::Restock { .. }
        | Command::QueryOrder { .. }
        | Command::QuerySku { .. } => Outcome::Rejected(Reject::UnknownSku),
    }
}

impl Target for Noop {
    fn describe(&self) -> String {
        "noop".to_string()
    }
    fn max_batch(&self) -> usize {
        usize::MAX
    }
    fn keeps_state(&self) -> bool {
        false
    }
    fn setup(&self, _catalog: &[SkuConfig]) -> Result<(), TargetError> {
        Ok(())
    }
    fn submit(&self, commands: Vec<Command>, done: Done) {
        let sent_at = Instant::now();
        let outcomes = commands.iter().map(answer).collect();
        done(Completion {
            result: Ok(outcomes),
            failed: Vec::new(),
            sent_at,
            done_at: Instant::now(),
        });
    }
    /// Answers in the exchange's own buffers, on the caller's thread: nothing is allocated.
    fn submit_exchange(&self, mut exchange: Exchange, answers: &Answers) {
        exchange.sent_at = Instant::now();
        let Exchange {
            commands, outcomes, ..
        } = &mut exchange;
        outcomes.clear();
        outcomes.extend(commands.iter().map(answer));
        exchange.failure = None;
        exchange.done_at = Instant::now();
        answers.deliver(exchange);
    }
    fn query_skus(&self, sku_ids: &[SkuId]) -> Result<Vec<Option<SkuView>>, TargetError> {
        Ok(vec![None; sku_ids.len()])
    }
    fn shutdown(&self) {}
}
