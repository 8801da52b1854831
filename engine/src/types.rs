//! The engine's contract in types: the commands a shard accepts, the outcomes it answers, and
//! the read-only views of SKUs and orders. Everything that crosses a boundary (runtime, wire,
//! journal, load generator) speaks these types. This module owns no state and no behaviour
//! beyond small, pure helpers; it must not depend on any other module of the crate.

/// A stock-keeping unit's id, chosen by the operator.
pub type SkuId = u32;
/// An order's id, chosen by the client: the idempotency key of a reservation.
pub type OrderId = u64;
/// A buyer's id.
pub type UserId = u64;

/// The operator's settings for one SKU (the body of an upsert).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SkuConfig {
    pub sku_id: SkuId,
    /// Units that exist in total: `available + held + sold`.
    pub stock_total: u64,
    /// Units one user may hold or have bought of this SKU at once (`held + sold`).
    pub per_user_limit: u32,
    /// How long an unpaid hold keeps its stock before it expires.
    pub hold_ttl_ms: u64,
    /// Reservations before this instant (epoch ms) answer `NotOnSale`.
    pub sale_start_ms: Option<u64>,
    /// Reservations at or after this instant (epoch ms) answer `NotOnSale`.
    pub sale_end_ms: Option<u64>,
    pub price_cents: u64,
}

impl SkuConfig {
    /// A SKU on sale from the beginning of time with no price: handy for tests and benches.
    pub fn simple(sku_id: SkuId, stock_total: u64, per_user_limit: u32, hold_ttl_ms: u64) -> Self {
        SkuConfig {
            sku_id,
            stock_total,
            per_user_limit,
            hold_ttl_ms,
            sale_start_ms: None,
            sale_end_ms: None,
            price_cents: 0,
        }
    }

    /// Checks the settings on their own (not against existing stock). Returns a sentence
    /// naming the offending field.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.per_user_limit == 0 {
            return Err("per_user_limit must be at least 1");
        }
        if self.hold_ttl_ms == 0 {
            return Err("hold_ttl_ms must be at least 1");
        }
        if self.stock_total > MAX_STOCK_TOTAL {
            return Err("stock_total is larger than the engine supports (2^48)");
        }
        if let (Some(start), Some(end)) = (self.sale_start_ms, self.sale_end_ms)
            && end <= start
        {
            return Err("sale_end_ms must be after sale_start_ms");
        }
        Ok(())
    }
}

/// Largest `stock_total` a SKU may have. Keeps every stock sum far from `u64` overflow and
/// lets the availability mirror pack a count into 48 bits.
pub const MAX_STOCK_TOTAL: u64 = 1 << 48;

/// One request to the engine. Pay, Cancel and QueryOrder name only the order: the runtime finds
/// the order's shard itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Admin: create or replace a SKU's settings.
    UpsertSku(SkuConfig),
    /// Admin: change `stock_total` by `delta` units.
    Restock {
        sku_id: SkuId,
        delta: i64,
    },
    Reserve {
        order_id: OrderId,
        user_id: UserId,
        sku_id: SkuId,
        qty: u32,
    },
    Pay {
        order_id: OrderId,
        user_id: UserId,
    },
    Cancel {
        order_id: OrderId,
        user_id: UserId,
    },
    QueryOrder {
        order_id: OrderId,
    },
    QuerySku {
        sku_id: SkuId,
    },
}

/// The kind of a command, for metrics, histograms and journal records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum CommandKind {
    UpsertSku = 1,
    Restock = 2,
    Reserve = 3,
    Pay = 4,
    Cancel = 5,
    QueryOrder = 6,
    QuerySku = 7,
}

impl CommandKind {
    pub const ALL: [CommandKind; 7] = [
        CommandKind::UpsertSku,
        CommandKind::Restock,
        CommandKind::Reserve,
        CommandKind::Pay,
        CommandKind::Cancel,
        CommandKind::QueryOrder,
        CommandKind::QuerySku,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CommandKind::UpsertSku => "upsert_sku",
            CommandKind::Restock => "restock",
            CommandKind::Reserve => "reserve",
            CommandKind::Pay => "pay",
            CommandKind::Cancel => "cancel",
            CommandKind::QueryOrder => "query_order",
            CommandKind::QuerySku => "query_sku",
        }
    }
}

impl Command {
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::UpsertSku(_) => CommandKind::UpsertSku,
            Command::Restock { .. } => CommandKind::Restock,
            Command::Reserve { .. } => CommandKind::Reserve,
            Command::Pay { .. } => CommandKind::Pay,
            Command::Cancel { .. } => CommandKind::Cancel,
            Command::QueryOrder { .. } => CommandKind::QueryOrder,
            Command::QuerySku { .. } => CommandKind::QuerySku,
        }
    }

    /// Whether the command can change state (and so must be journaled).
    pub fn is_mutation(&self) -> bool {
        !matches!(self, Command::QueryOrder { .. } | Command::QuerySku { .. })
    }
}

/// An order's life: held → paid | cancelled | expired. Terminal states never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OrderStatus {
    Held = 0,
    Paid = 1,
    Cancelled = 2,
    Expired = 3,
}

impl OrderStatus {
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::Held => "held",
            OrderStatus::Paid => "paid",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
        }
    }

    pub fn is_terminal(self) -> bool {
        self != OrderStatus::Held
    }
}

/// What a client may see of one order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OrderView {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub sku_id: SkuId,
    pub qty: u32,
    pub status: OrderStatus,
    /// When the hold lapses (or lapsed) unless paid.
    pub expires_at_ms: u64,
}

/// What a client may see of one SKU: its settings and its stock split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SkuView {
    pub config: SkuConfig,
    pub available: u64,
    pub held: u64,
    pub sold: u64,
}

/// Why a command was refused. Each has a stable snake_case code used by both wire protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Reject {
    SoldOut = 1,
    LimitExceeded = 2,
    NotOnSale = 3,
    UnknownSku = 4,
    InvalidQty = 5,
    IdConflict = 6,
    UnknownOrder = 7,
    NotOwner = 8,
    Expired = 9,
    Cancelled = 10,
    AlreadyPaid = 11,
    /// A restock (or upsert) that would leave less stock than is already held + sold, or
    /// overflow.
    InvalidRestock = 12,
    /// An upsert whose settings are invalid on their own.
    InvalidSku = 13,
    /// The engine is overloaded (a full queue): nothing was done, retry later.
    Busy = 14,
}

impl Reject {
    pub const ALL: [Reject; 14] = [
        Reject::SoldOut,
        Reject::LimitExceeded,
        Reject::NotOnSale,
        Reject::UnknownSku,
        Reject::InvalidQty,
        Reject::IdConflict,
        Reject::UnknownOrder,
        Reject::NotOwner,
        Reject::Expired,
        Reject::Cancelled,
        Reject::AlreadyPaid,
        Reject::InvalidRestock,
        Reject::InvalidSku,
        Reject::Busy,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reject::SoldOut => "sold_out",
            Reject::LimitExceeded => "limit_exceeded",
            Reject::NotOnSale => "not_on_sale",
            Reject::UnknownSku => "unknown_sku",
            Reject::InvalidQty => "invalid_qty",
            Reject::IdConflict => "id_conflict",
            Reject::UnknownOrder => "unknown_order",
            Reject::NotOwner => "not_owner",
            Reject::Expired => "expired",
            Reject::Cancelled => "cancelled",
            Reject::AlreadyPaid => "already_paid",
            Reject::InvalidRestock => "invalid_restock",
            Reject::InvalidSku => "invalid_request",
            Reject::Busy => "busy",
        }
    }

    pub fn from_u8(value: u8) -> Option<Reject> {
        Reject::ALL.get(usize::from(value).checked_sub(1)?).copied()
    }
}

/// The engine's answer to one command.
///
/// Kept small (48 bytes) because one is written per command on the hot path: the rare SKU
/// views of admin commands are boxed so they do not double the size of every order outcome.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A reserve created a new hold: stock moved from available to held.
    Created(OrderView),
    /// An existing order's current state: an idempotent reserve repeat, a pay, a cancel, or a
    /// query.
    Order(OrderView),
    /// An upsert that created the SKU.
    SkuCreated(Box<SkuView>),
    /// A SKU's current state: after an upsert of an existing SKU, a restock, or a query.
    Sku(Box<SkuView>),
    Rejected(Reject),
}

impl Outcome {
    /// A short label for counting outcomes: `held`, `paid`, …, or the reject code.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Created(view) | Outcome::Order(view) => view.status.name(),
            Outcome::SkuCreated(_) | Outcome::Sku(_) => "sku",
            Outcome::Rejected(reject) => reject.code(),
        }
    }

    pub fn order(&self) -> Option<&OrderView> {
        match self {
            Outcome::Created(view) | Outcome::Order(view) => Some(view),
            _ => None,
        }
    }

    pub fn sku(&self) -> Option<&SkuView> {
        match self {
            Outcome::SkuCreated(view) | Outcome::Sku(view) => Some(view),
            _ => None,
        }
    }

    pub fn rejected(&self) -> Option<Reject> {
        match self {
            Outcome::Rejected(reject) => Some(*reject),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_stay_small() {
        assert!(
            std::mem::size_of::<Outcome>() <= 48,
            "{}",
            std::mem::size_of::<Outcome>()
        );
    }

    #[test]
    fn reject_codes_round_trip_through_u8() {
        for reject in Reject::ALL {
            assert_eq!(Reject::from_u8(reject as u8), Some(reject));
        }
        assert_eq!(Reject::from_u8(0), None);
        assert_eq!(Reject::from_u8(200), None);
    }

    #[test]
    fn sku_config_validation_names_the_field() {
        let good = SkuConfig::simple(1, 10, 1, 1000);
        assert!(good.validate().is_ok());
        let mut bad = good;
        bad.per_user_limit = 0;
        assert!(bad.validate().unwrap_err().contains("per_user_limit"));
        let mut bad = good;
        bad.hold_ttl_ms = 0;
        assert!(bad.validate().unwrap_err().contains("hold_ttl_ms"));
        let mut bad = good;
        bad.sale_start_ms = Some(10);
        bad.sale_end_ms = Some(10);
        assert!(bad.validate().unwrap_err().contains("sale_end_ms"));
        let mut bad = good;
        bad.stock_total = MAX_STOCK_TOTAL + 1;
        assert!(bad.validate().unwrap_err().contains("stock_total"));
    }
}
