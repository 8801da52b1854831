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

/// Declares a fieldless enum together with `ALL`, every variant in declaration order, and
/// `COUNT`, so that a list of every variant cannot miss one.
macro_rules! enum_with_all {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $($(#[$variant_meta:meta])* $variant:ident $(= $value:expr)?,)+ }
    ) => {
        $(#[$meta])*
        $vis enum $name { $($(#[$variant_meta])* $variant $(= $value)?,)+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$($name::$variant),+].len()] = [$($name::$variant),+];
            /// How many variants there are.
            pub const COUNT: usize = Self::ALL.len();
        }
    };
}

enum_with_all! {
    /// The kind of a command. Every fact about a kind (its opcode, name, whether it mutates,
    /// who may send it, which ids it carries) is in one table, [`CommandKind::spec`];
    /// everything else derives from it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum CommandKind {
        UpsertSku,
        Restock,
        Reserve,
        Pay,
        Cancel,
        QueryOrder,
        QuerySku,
    }
}

/// Who may send a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Operator commands: the front doors require the admin token.
    Admin,
    /// Buyer commands: open, rate-limited per user when they carry a user id.
    User,
}

/// Which ids a command carries (see [`Command::sku_id`], [`Command::order_id`],
/// [`Command::user_id`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ids {
    pub sku: bool,
    pub order: bool,
    pub user: bool,
}

impl Ids {
    const SKU: Ids = Ids {
        sku: true,
        order: false,
        user: false,
    };
    const ORDER: Ids = Ids {
        sku: false,
        order: true,
        user: false,
    };
    const ORDER_USER: Ids = Ids {
        sku: false,
        order: true,
        user: true,
    };
    const SKU_ORDER_USER: Ids = Ids {
        sku: true,
        order: true,
        user: true,
    };
}

/// One row of the command table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommandSpec {
    /// The byte the command travels under, on the wire and in the journal.
    pub opcode: u8,
    /// The stable snake_case name: metrics' `op` label, reports, trace tools.
    pub name: &'static str,
    /// Whether the command can change state (and so must be journaled).
    pub mutates: bool,
    pub access: Access,
    pub ids: Ids,
}

impl CommandKind {
    /// The command table.
    pub const fn spec(self) -> CommandSpec {
        const fn row(
            opcode: u8,
            name: &'static str,
            mutates: bool,
            access: Access,
            ids: Ids,
        ) -> CommandSpec {
            CommandSpec {
                opcode,
                name,
                mutates,
                access,
                ids,
            }
        }
        use Access::{Admin, User};
        match self {
            // row(opcode, name, mutates, access, ids carried)
            CommandKind::UpsertSku => row(1, "upsert_sku", true, Admin, Ids::SKU),
            CommandKind::Restock => row(2, "restock", true, Admin, Ids::SKU),
            CommandKind::Reserve => row(3, "reserve", true, User, Ids::SKU_ORDER_USER),
            CommandKind::Pay => row(4, "pay", true, User, Ids::ORDER_USER),
            CommandKind::Cancel => row(5, "cancel", true, User, Ids::ORDER_USER),
            CommandKind::QueryOrder => row(6, "query_order", false, User, Ids::ORDER),
            CommandKind::QuerySku => row(7, "query_sku", false, User, Ids::SKU),
        }
    }

    pub const fn opcode(self) -> u8 {
        self.spec().opcode
    }

    pub const fn name(self) -> &'static str {
        self.spec().name
    }

    pub const fn mutates(self) -> bool {
        self.spec().mutates
    }

    pub const fn access(self) -> Access {
        self.spec().access
    }

    /// Position in [`CommandKind::ALL`]: a dense index for per-kind arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The kind an opcode names, if any.
    #[inline]
    pub const fn from_opcode(opcode: u8) -> Option<CommandKind> {
        BY_OPCODE[opcode as usize]
    }
}

/// Opcode → kind, built from the table at compile time (which also proves opcodes unique).
const BY_OPCODE: [Option<CommandKind>; 256] = {
    let mut table = [None; 256];
    let mut i = 0;
    while i < CommandKind::COUNT {
        let kind = CommandKind::ALL[i];
        assert!(kind.index() == i, "ALL is in declaration order");
        let opcode = kind.opcode() as usize;
        assert!(table[opcode].is_none(), "two command kinds share an opcode");
        table[opcode] = Some(kind);
        i += 1;
    }
    table
};

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
    #[inline]
    pub fn is_mutation(&self) -> bool {
        self.kind().mutates()
    }

    /// The SKU the command names, if it names one (`ids.sku` in the table).
    pub fn sku_id(&self) -> Option<SkuId> {
        match *self {
            Command::UpsertSku(SkuConfig { sku_id, .. })
            | Command::Restock { sku_id, .. }
            | Command::Reserve { sku_id, .. }
            | Command::QuerySku { sku_id } => Some(sku_id),
            Command::Pay { .. } | Command::Cancel { .. } | Command::QueryOrder { .. } => None,
        }
    }

    /// The order the command names, if it names one (`ids.order` in the table).
    pub fn order_id(&self) -> Option<OrderId> {
        match *self {
            Command::Reserve { order_id, .. }
            | Command::Pay { order_id, .. }
            | Command::Cancel { order_id, .. }
            | Command::QueryOrder { order_id } => Some(order_id),
            Command::UpsertSku(_) | Command::Restock { .. } | Command::QuerySku { .. } => None,
        }
    }

    /// The user the command acts for, if it names one (`ids.user` in the table).
    pub fn user_id(&self) -> Option<UserId> {
        match *self {
            Command::Reserve { user_id, .. }
            | Command::Pay { user_id, .. }
            | Command::Cancel { user_id, .. } => Some(user_id),
            Command::UpsertSku(_)
            | Command::Restock { .. }
            | Command::QueryOrder { .. }
            | Command::QuerySku { .. } => None,
        }
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
    /// The status's name in order views; also its [`OutcomeCode`].
    pub fn name(self) -> &'static str {
        self.outcome_code().as_str()
    }

    pub const fn outcome_code(self) -> OutcomeCode {
        match self {
            OrderStatus::Held => OutcomeCode::Held,
            OrderStatus::Paid => OutcomeCode::Paid,
            OrderStatus::Cancelled => OutcomeCode::Cancelled,
            OrderStatus::Expired => OutcomeCode::Expired,
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

enum_with_all! {
    /// Why a command was refused. The value is the reject's byte on the wire; its stable
    /// snake_case code comes from the outcome table ([`Reject::outcome_code`]).
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
}

impl Reject {
    /// The code the reject is answered and counted under. A reject whose order is expired or
    /// cancelled shares the code of that order status: the label names the order's fate.
    pub const fn outcome_code(self) -> OutcomeCode {
        match self {
            Reject::SoldOut => OutcomeCode::SoldOut,
            Reject::LimitExceeded => OutcomeCode::LimitExceeded,
            Reject::NotOnSale => OutcomeCode::NotOnSale,
            Reject::UnknownSku => OutcomeCode::UnknownSku,
            Reject::InvalidQty => OutcomeCode::InvalidQty,
            Reject::IdConflict => OutcomeCode::IdConflict,
            Reject::UnknownOrder => OutcomeCode::UnknownOrder,
            Reject::NotOwner => OutcomeCode::NotOwner,
            Reject::Expired => OutcomeCode::Expired,
            Reject::Cancelled => OutcomeCode::Cancelled,
            Reject::AlreadyPaid => OutcomeCode::AlreadyPaid,
            Reject::InvalidRestock => OutcomeCode::InvalidRestock,
            Reject::InvalidSku => OutcomeCode::InvalidRequest,
            Reject::Busy => OutcomeCode::Busy,
        }
    }

    /// The stable snake_case code of both wire protocols' error answers.
    pub fn code(self) -> &'static str {
        self.outcome_code().as_str()
    }

    /// The reject answered with `code`, if one is.
    pub fn from_code(code: &str) -> Option<Reject> {
        Reject::ALL.into_iter().find(|reject| reject.code() == code)
    }

    pub fn from_u8(value: u8) -> Option<Reject> {
        Reject::ALL.get(usize::from(value).checked_sub(1)?).copied()
    }
}

enum_with_all! {
    /// Every answer a command or request can get, under one stable snake_case code each: an
    /// order's status, a SKU view, a reject, or a front door's own answer. The outcome table,
    /// [`OutcomeCode::spec`], gives each its code and HTTP status; the code is the HTTP error
    /// code, the metrics' `outcome` label and the load generator's label, and
    /// [`OutcomeCode::index`] is its slot in every per-code array (server metrics, the load
    /// generator's recorder).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum OutcomeCode {
        Held,
        Paid,
        Cancelled,
        Expired,
        Sku,
        SoldOut,
        LimitExceeded,
        NotOnSale,
        UnknownSku,
        InvalidQty,
        IdConflict,
        UnknownOrder,
        NotOwner,
        AlreadyPaid,
        InvalidRestock,
        /// A request that could not be parsed or named invalid settings.
        InvalidRequest,
        Busy,
        /// An admin command without a valid admin token.
        Unauthorized,
        /// The per-user rate limit refused the command.
        RateLimited,
        /// An HTTP body over the size limit.
        PayloadTooLarge,
        /// An HTTP body that did not arrive in time.
        RequestTimeout,
        /// A TCP auth request that succeeded.
        Ok,
        /// A TCP request with an opcode the server does not know.
        UnknownOpcode,
        /// A TCP frame that could not be decoded.
        MalformedFrame,
        /// A TCP frame longer than the protocol allows.
        FrameTooLarge,
    }
}

/// One row of the outcome table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutcomeSpec {
    pub code: &'static str,
    /// HTTP status of an error answer with this code; `None` for codes HTTP never sends as an
    /// error: views (200, or 201 when created) and the TCP-only codes.
    pub http_status: Option<u16>,
    /// Whether the code says something went wrong (the request, or the system) rather than
    /// the sale answering: the load generator's error ratio counts these.
    pub error: bool,
}

impl OutcomeCode {
    /// The outcome table.
    pub const fn spec(self) -> OutcomeSpec {
        const fn row(code: &'static str, http_status: Option<u16>, error: bool) -> OutcomeSpec {
            OutcomeSpec {
                code,
                http_status,
                error,
            }
        }
        const ERROR: bool = true;
        const ANSWER: bool = false;
        match self {
            // row(code, HTTP status of an error answer, error or answer)
            OutcomeCode::Held => row("held", None, ANSWER),
            OutcomeCode::Paid => row("paid", None, ANSWER),
            OutcomeCode::Cancelled => row("cancelled", Some(409), ANSWER),
            OutcomeCode::Expired => row("expired", Some(409), ANSWER),
            OutcomeCode::Sku => row("sku", None, ANSWER),
            OutcomeCode::SoldOut => row("sold_out", Some(409), ANSWER),
            OutcomeCode::LimitExceeded => row("limit_exceeded", Some(409), ANSWER),
            OutcomeCode::NotOnSale => row("not_on_sale", Some(409), ANSWER),
            OutcomeCode::UnknownSku => row("unknown_sku", Some(404), ERROR),
            OutcomeCode::InvalidQty => row("invalid_qty", Some(400), ERROR),
            OutcomeCode::IdConflict => row("id_conflict", Some(409), ERROR),
            OutcomeCode::UnknownOrder => row("unknown_order", Some(404), ERROR),
            OutcomeCode::NotOwner => row("not_owner", Some(403), ERROR),
            OutcomeCode::AlreadyPaid => row("already_paid", Some(409), ANSWER),
            OutcomeCode::InvalidRestock => row("invalid_restock", Some(409), ERROR),
            OutcomeCode::InvalidRequest => row("invalid_request", Some(400), ERROR),
            OutcomeCode::Busy => row("busy", Some(503), ERROR),
            OutcomeCode::Unauthorized => row("unauthorized", Some(401), ERROR),
            OutcomeCode::RateLimited => row("rate_limited", Some(429), ERROR),
            OutcomeCode::PayloadTooLarge => row("payload_too_large", Some(413), ERROR),
            OutcomeCode::RequestTimeout => row("request_timeout", Some(408), ERROR),
            OutcomeCode::Ok => row("ok", None, ANSWER),
            OutcomeCode::UnknownOpcode => row("unknown_opcode", None, ERROR),
            OutcomeCode::MalformedFrame => row("malformed_frame", None, ERROR),
            OutcomeCode::FrameTooLarge => row("frame_too_large", None, ERROR),
        }
    }

    /// The code: HTTP error code, metrics label, load generator label.
    pub const fn as_str(self) -> &'static str {
        self.spec().code
    }

    pub const fn http_status(self) -> Option<u16> {
        self.spec().http_status
    }

    pub const fn is_error(self) -> bool {
        self.spec().error
    }

    /// Position in [`OutcomeCode::ALL`]: the code's slot in per-code arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The code spelled `code`, if any.
    pub fn from_code(code: &str) -> Option<OutcomeCode> {
        OutcomeCode::ALL.into_iter().find(|c| c.as_str() == code)
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
    /// The code the outcome is answered and counted under.
    pub fn code(&self) -> OutcomeCode {
        match self {
            Outcome::Created(view) | Outcome::Order(view) => view.status.outcome_code(),
            Outcome::SkuCreated(_) | Outcome::Sku(_) => OutcomeCode::Sku,
            Outcome::Rejected(reject) => reject.outcome_code(),
        }
    }

    /// A short label for counting outcomes: `held`, `paid`, …, `sku`, or the reject code.
    pub fn label(&self) -> &'static str {
        self.code().as_str()
    }

    pub fn order(&self) -> Option<&OrderView> {
        match self {
            Outcome::Created(view) | Outcome::Order(view) => Some(view),
            Outcome::SkuCreated(_) | Outcome::Sku(_) | Outcome::Rejected(_) => None,
        }
    }

    pub fn sku(&self) -> Option<&SkuView> {
        match self {
            Outcome::SkuCreated(view) | Outcome::Sku(view) => Some(view),
            Outcome::Created(_) | Outcome::Order(_) | Outcome::Rejected(_) => None,
        }
    }

    pub fn rejected(&self) -> Option<Reject> {
        match self {
            Outcome::Rejected(reject) => Some(*reject),
            Outcome::Created(_) | Outcome::Order(_) | Outcome::SkuCreated(_) | Outcome::Sku(_) => {
                None
            }
        }
    }
}

/// One command of each kind, with distinct non-zero ids; for tests of code derived from the
/// command table (in this crate and the codec's, runtime's and server's).
#[cfg(any(test, feature = "testing"))]
pub fn example_command(kind: CommandKind) -> Command {
    match kind {
        CommandKind::UpsertSku => Command::UpsertSku(SkuConfig::simple(3, 10, 2, 1000)),
        CommandKind::Restock => Command::Restock {
            sku_id: 3,
            delta: -4,
        },
        CommandKind::Reserve => Command::Reserve {
            order_id: 1,
            user_id: 2,
            sku_id: 3,
            qty: 1,
        },
        CommandKind::Pay => Command::Pay {
            order_id: 1,
            user_id: 2,
        },
        CommandKind::Cancel => Command::Cancel {
            order_id: 1,
            user_id: 2,
        },
        CommandKind::QueryOrder => Command::QueryOrder { order_id: 1 },
        CommandKind::QuerySku => Command::QuerySku { sku_id: 3 },
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
    fn the_command_table_agrees_with_the_commands() {
        let mut names = std::collections::BTreeSet::new();
        for (index, kind) in CommandKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), index);
            assert_eq!(CommandKind::from_opcode(kind.opcode()), Some(kind));
            assert!(names.insert(kind.name()), "{kind:?}: duplicate name");
            let command = example_command(kind);
            assert_eq!(command.kind(), kind);
            let ids = kind.spec().ids;
            assert_eq!(command.sku_id().is_some(), ids.sku, "{kind:?} sku");
            assert_eq!(command.order_id().is_some(), ids.order, "{kind:?} order");
            assert_eq!(command.user_id().is_some(), ids.user, "{kind:?} user");
            assert_eq!(command.is_mutation(), kind.mutates());
        }
        let known = (0..=u8::MAX)
            .filter(|&op| CommandKind::from_opcode(op).is_some())
            .count();
        assert_eq!(known, CommandKind::COUNT);
    }

    #[test]
    fn outcome_codes_are_unique_and_every_outcome_has_one() {
        let mut codes = std::collections::BTreeSet::new();
        for (index, code) in OutcomeCode::ALL.into_iter().enumerate() {
            assert_eq!(code.index(), index);
            assert!(codes.insert(code.as_str()), "{code:?}: duplicate code");
            assert_eq!(OutcomeCode::from_code(code.as_str()), Some(code));
            if let Some(status) = code.http_status() {
                assert!((400..600).contains(&status), "{code:?}: {status}");
            }
        }
        for reject in Reject::ALL {
            let code = reject.outcome_code();
            assert_eq!(reject.code(), code.as_str());
            assert_eq!(Outcome::Rejected(reject).label(), code.as_str());
            assert!(
                code.http_status().is_some(),
                "{reject:?} has no HTTP status"
            );
            assert_eq!(Reject::from_code(reject.code()), Some(reject));
        }
        for status in [
            OrderStatus::Held,
            OrderStatus::Paid,
            OrderStatus::Cancelled,
            OrderStatus::Expired,
        ] {
            assert_eq!(status.name(), status.outcome_code().as_str());
        }
        assert_eq!(Reject::InvalidSku.code(), "invalid_request");
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
