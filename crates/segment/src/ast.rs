//! The segment language's syntax tree. One tree, two evaluators (`eval` in memory,
//! `sql` for the stores), so both give every definition one meaning.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cond(Cond),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Cond {
    /// `traits.title ~ "marketing"`: a test on the person's merged traits.
    Trait { path: Vec<String>, test: Test },
    /// `has wallet on eip155:1`, `has email`, `has social on x`.
    Has { kind: IdKind, on: Option<String> },
    /// `count(track "Order Completed", 90d) >= 2`, `sum(track "Order Completed".revenue) > 500`.
    Agg {
        func: AggFn,
        sel: EventSel,
        prop: Option<Vec<String>>,
        window: Option<Window>,
        op: CmpOp,
        value: f64,
    },
    /// `days_since(track "Order Completed") <= 30` (last occurrence; `days_since_first`
    /// for the first). False when there is none.
    Recency {
        first: bool,
        sel: EventSel,
        op: CmpOp,
        value: f64,
    },
    /// `last(track "Order Completed".currency) = "EUR"`, `first(...)`.
    Value {
        first: bool,
        sel: EventSel,
        prop: Vec<String>,
        window: Option<Window>,
        test: Test,
    },
    /// `graph.pagerank_pct >= 0.9`: a computed network score.
    Score { name: Score, op: CmpOp, value: f64 },
    /// `score.rfm_r >= 4`, `score.lead_score > 50`: a computed score (RFM, custom).
    Computed { name: String, op: CmpOp, value: f64 },
    /// `sentiment(30d) < -0.3`, `complaints(7d) >= 1`, `texts(90d) > 3`.
    Text {
        func: TextFn,
        window: Option<Window>,
        op: CmpOp,
        value: f64,
    },
    /// `holds("LOYAL") >= 100`, `held_days("BADGE") >= 30`, `from_brand("LOYAL") > 0`:
    /// tokens in the person's wallets, by symbol or contract address.
    Token {
        func: TokenFn,
        token: String,
        op: CmpOp,
        value: f64,
    },
    /// `loyalty.points >= 500`, `loyalty.pending > 0`, `loyalty.expiring(30d) > 0`: the
    /// person's loyalty points (available, pending, or expiring within the window).
    Loyalty {
        func: LoyaltyFn,
        window: Option<Window>,
        op: CmpOp,
        value: f64,
    },
    /// `loyalty.tier = "gold"` (`!=`: anything else, no tier included).
    Tier { equal: bool, tier: String },
    /// `in segment "VIP"`.
    Segment { name: String },
    /// `consent(email, marketing) = denied` (`granted`, `denied` or `unknown`).
    Consent {
        channel: String,
        purpose: String,
        equal: bool,
        status: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Test {
    Cmp(CmpOp, Lit),
    /// `~ "text"`: contains, ASCII case-insensitive.
    Contains(String),
    /// `matches "regex"`.
    Regex(String),
    In(Vec<Lit>),
    Exists,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    pub fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AggFn {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TextFn {
    /// Mean compound sentiment of the person's texts.
    Sentiment,
    /// Texts with a complaint intent (confidence ≥ 0.5).
    Complaints,
    /// Texts written.
    Texts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TokenFn {
    /// Whole units held now across the person's wallets (tokens for an NFT); 0 if none.
    Holds,
    /// Days since the person's wallets have held it without a break; false if not held.
    HeldDays,
    /// Whole units ever received from the brand (its wallets, or mints of its token); 0 if none.
    FromBrand,
}

impl TokenFn {
    pub fn name(self) -> &'static str {
        match self {
            TokenFn::Holds => "holds",
            TokenFn::HeldDays => "held_days",
            TokenFn::FromBrand => "from_brand",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LoyaltyFn {
    /// Points spendable now.
    Points,
    /// Points earned and still locked.
    Pending,
    /// Points (available or pending) that expire within the window.
    Expiring,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum IdKind {
    Email,
    Phone,
    Wallet,
    Social,
    UserId,
}

impl IdKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Email => "email",
            IdKind::Phone => "phone",
            IdKind::Wallet => "wallet",
            IdKind::Social => "social",
            IdKind::UserId => "user_id",
        }
    }
}

/// Network scores a definition may use (columns of the graph score table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Score {
    Pagerank,
    PagerankPct,
    Betweenness,
    BetweennessPct,
    Community,
    Core,
    Reach1,
    Reach2,
    Evangelist,
    Syndication,
}

impl Score {
    pub const ALL: [(&'static str, Score); 10] = [
        ("pagerank", Score::Pagerank),
        ("pagerank_pct", Score::PagerankPct),
        ("betweenness", Score::Betweenness),
        ("betweenness_pct", Score::BetweennessPct),
        ("community", Score::Community),
        ("core", Score::Core),
        ("reach1", Score::Reach1),
        ("reach2", Score::Reach2),
        ("evangelist", Score::Evangelist),
        ("syndication", Score::Syndication),
    ];

    pub fn column(self) -> &'static str {
        Score::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map(|(n, _)| *n)
            .unwrap_or("pagerank")
    }
}

/// Which events: a type (`track`, `page`, `screen`, `identify`, `group`, `alias`, or
/// `any`), an optional name, and optional property tests (`where amount > 10 and …`).
#[derive(Debug, Clone, Serialize)]
pub struct EventSel {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub filters: Vec<(Vec<String>, Test)>,
    /// Set by the real-time engine: this selector's place in a person's
    /// [`crate::eval::EventIndex`], so the evaluator reads the matching events from the
    /// index instead of testing every event. Not part of the selector's meaning.
    #[serde(skip)]
    pub slot: Option<u32>,
}

impl PartialEq for EventSel {
    fn eq(&self, o: &Self) -> bool {
        self.kind == o.kind && self.name == o.name && self.filters == o.filters
    }
}

/// A window back from the evaluation time, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub millis: i64,
}

pub const EVENT_KINDS: [&str; 6] = ["track", "page", "screen", "identify", "group", "alias"];
