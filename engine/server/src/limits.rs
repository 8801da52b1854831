//! Admission guards that sit in front of the engine: the constant-time admin token check and the
//! optional per-user token-bucket rate limit, and [`guard`], which says from the command table
//! which of the two a command must pass. They own only their own small state and never look at
//! stock or orders. The token is never logged or formatted.

use std::sync::Mutex;
use std::time::Instant;

use rustc_hash::FxHashMap;
use subtle::ConstantTimeEq;

use flashsale_core::types::{Access, Command, UserId};

/// What a command must pass before it reaches the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// An admin command: the admin token.
    Admin,
    /// A user command naming a user: that user's rate limit.
    User(UserId),
    /// A user command naming no user (a query): nothing.
    Open,
}

/// The guard of `command`, from its kind's access in the command table and the user it names.
pub fn guard(command: &Command) -> Guard {
    match command.kind().access() {
        Access::Admin => Guard::Admin,
        Access::User => command.user_id().map_or(Guard::Open, Guard::User),
    }
}

/// The admin token, if the server has one. `Debug` hides it.
#[derive(Clone, Default)]
pub struct AdminToken(Option<Vec<u8>>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "AdminToken(<set>)"
        } else {
            "AdminToken(<none>)"
        })
    }
}

impl AdminToken {
    /// An empty string counts as no token: admin stays closed.
    pub fn new(token: Option<String>) -> AdminToken {
        AdminToken(token.filter(|t| !t.is_empty()).map(String::into_bytes))
    }

    pub fn is_configured(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `presented` is the token. Without a configured token nothing matches. The
    /// comparison takes the same time wherever the first difference is (only the length may
    /// show).
    pub fn matches(&self, presented: &[u8]) -> bool {
        match &self.0 {
            Some(expected) => bool::from(expected.as_slice().ct_eq(presented)),
            None => false,
        }
    }
}

const RATE_SHARDS: usize = 16;

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per user id: `rate_per_s` tokens a second, bursts of `rate_per_s`. Memory is
/// bounded: past `max_users` tracked users, buckets that are full again are forgotten (a full
/// bucket is the same as no bucket), and if that is not enough the shard starts afresh.
pub struct UserRateLimiter {
    rate_per_s: f64,
    max_users_per_shard: usize,
    shards: Vec<Mutex<FxHashMap<UserId, Bucket>>>,
}

impl UserRateLimiter {
    pub fn new(rate_per_s: u32, max_users: usize) -> UserRateLimiter {
        UserRateLimiter {
            rate_per_s: f64::from(rate_per_s.max(1)),
            max_users_per_shard: (max_users / RATE_SHARDS).max(16),
            shards: (0..RATE_SHARDS)
                .map(|_| Mutex::new(FxHashMap::default()))
                .collect(),
        }
    }

    /// Takes one token for `user_id`; false when the user is over the limit.
    pub fn allow(&self, user_id: UserId, now: Instant) -> bool {
        let shard = (user_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % RATE_SHARDS;
        let mut buckets = self.shards[shard].lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= self.max_users_per_shard && !buckets.contains_key(&user_id) {
            let rate = self.rate_per_s;
            buckets.retain(|_, bucket| {
                bucket.tokens + now.duration_since(bucket.last).as_secs_f64() * rate < rate
            });
            if buckets.len() >= self.max_users_per_shard {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(user_id).or_insert(Bucket {
            tokens: self.rate_per_s,
            last: now,
        });
        let refill = now.saturating_duration_since(bucket.last).as_secs_f64() * self.rate_per_s;
        bucket.tokens = (bucket.tokens + refill).min(self.rate_per_s);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn tracked_users(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The guard follows the command table: every admin kind needs the token, every user kind
    /// that names a user is rate-limited under that user, and nothing else is guarded.
    #[test]
    fn guards_derive_from_the_command_table() {
        use flashsale_core::types::{CommandKind, example_command};
        for kind in CommandKind::ALL {
            let command = example_command(kind);
            let expected = match (kind.access(), kind.spec().ids.user) {
                (Access::Admin, _) => Guard::Admin,
                (Access::User, true) => Guard::User(command.user_id().unwrap()),
                (Access::User, false) => Guard::Open,
            };
            assert_eq!(guard(&command), expected, "{kind:?}");
        }
        let reserve = example_command(CommandKind::Reserve);
        assert_eq!(guard(&reserve), Guard::User(2));
        let upsert = example_command(CommandKind::UpsertSku);
        assert_eq!(guard(&upsert), Guard::Admin);
    }

    #[test]
    fn token_matches_only_itself() {
        let token = AdminToken::new(Some("s3cret".into()));
        assert!(token.matches(b"s3cret"));
        assert!(!token.matches(b"s3cre"));
        assert!(!token.matches(b"s3cret!"));
        assert!(!token.matches(b""));
        assert!(!format!("{token:?}").contains("s3cret"));
        let none = AdminToken::new(None);
        assert!(!none.matches(b""));
        assert!(!AdminToken::new(Some(String::new())).is_configured());
    }

    #[test]
    fn bucket_allows_rate_then_refills() {
        let limiter = UserRateLimiter::new(5, 1000);
        let start = Instant::now();
        let allowed = (0..10).filter(|_| limiter.allow(7, start)).count();
        assert_eq!(allowed, 5);
        assert!(limiter.allow(8, start), "other users are not affected");
        assert!(!limiter.allow(7, start + Duration::from_millis(100)));
        assert!(limiter.allow(7, start + Duration::from_millis(250)));
    }

    #[test]
    fn memory_stays_bounded() {
        let limiter = UserRateLimiter::new(1, 1600);
        let now = Instant::now();
        for user in 0..100_000u64 {
            limiter.allow(user, now);
        }
        assert!(limiter.tracked_users() <= 1600);
    }
}
