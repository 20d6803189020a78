//! Loyalty points, the pure part: lots with a pending period and an expiry, the ledger
//! operations over them (earn, spend, expire, reverse, adjust), balances at a moment,
//! amounts checked, and tiers (upgrade at once; downgrade never, at the period's end or
//! rolling, after a grace period).
//!
//! Points are whole numbers. A lot is points earned together; its `remaining` is what is
//! left of it. Every operation is planned here as [`Move`]s (points taken out of lots) so
//! the stores only write what was planned: one rule for the order in which lots are
//! spent, however the points are stored.

use crate::message::FieldError;
use crate::time::Millis;

/// Points in one entry or lot, at most.
pub const MAX_POINTS: i64 = 1_000_000_000;
const DAY: i64 = 86_400_000;

/// What an entry of the ledger did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Earn,
    Spend,
    Expire,
    Reverse,
    Adjust,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Earn,
        Kind::Spend,
        Kind::Expire,
        Kind::Reverse,
        Kind::Adjust,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Earn => "earn",
            Kind::Spend => "spend",
            Kind::Expire => "expire",
            Kind::Reverse => "reverse",
            Kind::Adjust => "adjust",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Points earned together (or added by an adjustment), with what remains of them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Lot {
    pub id: i64,
    pub amount: i64,
    pub remaining: i64,
    pub earned_at: Millis,
    /// Locked until then (a return can still cancel them); spendable from then on.
    pub unlock_at: Millis,
    /// Gone at this moment, if they expire.
    pub expires_at: Option<Millis>,
    /// The order they were earned for (what a refund reverses).
    pub order: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LotState {
    Pending,
    Available,
    /// Its time has passed; what remains waits for the expiry step to be written off.
    Expired,
    Empty,
}

impl Lot {
    pub fn state(&self, now: Millis) -> LotState {
        if self.remaining <= 0 {
            LotState::Empty
        } else if self.expires_at.is_some_and(|e| e <= now) {
            LotState::Expired
        } else if self.unlock_at > now {
            LotState::Pending
        } else {
            LotState::Available
        }
    }
}

/// Points taken out of a lot.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Move {
    pub lot: i64,
    pub take: i64,
}

/// A balance at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Balance {
    /// Spendable now.
    pub available: i64,
    /// Earned but still locked.
    pub pending: i64,
}

/// The balance of `lots` at `now` (lots past their expiry count for nothing, written off
/// or not).
pub fn balance(lots: &[Lot], now: Millis) -> Balance {
    let mut b = Balance::default();
    for l in lots {
        match l.state(now) {
            LotState::Available => b.available += l.remaining,
            LotState::Pending => b.pending += l.remaining,
            LotState::Expired | LotState::Empty => {}
        }
    }
    b
}

/// Points (available or pending) that expire after `now` and by `until`.
pub fn expiring(lots: &[Lot], now: Millis, until: Millis) -> i64 {
    lots.iter()
        .filter(|l| matches!(l.state(now), LotState::Available | LotState::Pending))
        .filter(|l| l.expires_at.is_some_and(|e| e <= until))
        .map(|l| l.remaining)
        .sum()
}

/// Not enough available points for what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{available} points available, {wanted} needed")]
pub struct Short {
    pub available: i64,
    pub wanted: i64,
}

/// The order in which available lots are spent: the one that expires first, then (never
/// expiring last) the oldest.
fn spend_order(l: &Lot) -> (i64, Millis, i64) {
    (l.expires_at.unwrap_or(i64::MAX), l.earned_at, l.id)
}

/// Takes `amount` available points, the lots that expire first first (a spend, or an
/// adjustment down). Nothing is planned when they are short.
pub fn take(lots: &[Lot], amount: i64, now: Millis) -> Result<Vec<Move>, Short> {
    let mut open: Vec<&Lot> = lots
        .iter()
        .filter(|l| l.state(now) == LotState::Available)
        .collect();
    let available: i64 = open.iter().map(|l| l.remaining).sum();
    if amount > available {
        return Err(Short {
            available,
            wanted: amount,
        });
    }
    open.sort_by_key(|l| spend_order(l));
    let mut left = amount;
    let mut moves = Vec::new();
    for l in open {
        if left == 0 {
            break;
        }
        let t = left.min(l.remaining);
        moves.push(Move { lot: l.id, take: t });
        left -= t;
    }
    Ok(moves)
}

/// Writes off what remains of every lot whose time has passed.
pub fn expire(lots: &[Lot], now: Millis) -> Vec<Move> {
    lots.iter()
        .filter(|l| l.state(now) == LotState::Expired)
        .map(|l| Move {
            lot: l.id,
            take: l.remaining,
        })
        .collect()
}

/// Takes back what remains of the points earned for `order` (pending or available).
/// Points of it already spent are not recovered: the balance never goes below zero; the
/// entry says how many were not (`earned - recovered`).
pub fn reverse(lots: &[Lot], order: &str, now: Millis) -> Vec<Move> {
    lots.iter()
        .filter(|l| l.order.as_deref() == Some(order))
        .filter(|l| matches!(l.state(now), LotState::Available | LotState::Pending))
        .map(|l| Move {
            lot: l.id,
            take: l.remaining,
        })
        .collect()
}

/// Applies moves to lots (what the stores do to their rows).
pub fn apply(lots: &mut [Lot], moves: &[Move]) {
    for m in moves {
        if let Some(l) = lots.iter_mut().find(|l| l.id == m.lot) {
            l.remaining -= m.take;
        }
    }
}

/// A whole, positive number of points (an earning, a reward's cost).
pub fn positive_points(field: &str, v: &serde_json::Value) -> Result<i64, FieldError> {
    let n = whole(field, v)?;
    if n <= 0 {
        return Err(FieldError::new(
            field,
            "must be a positive whole number of points",
        ));
    }
    Ok(n)
}

/// A whole number of points other than zero (an adjustment, up or down).
pub fn adjustment(field: &str, v: &serde_json::Value) -> Result<i64, FieldError> {
    let n = whole(field, v)?;
    if n == 0 {
        return Err(FieldError::new(field, "must not be zero"));
    }
    Ok(n)
}

fn whole(field: &str, v: &serde_json::Value) -> Result<i64, FieldError> {
    let n = match v {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| {
            // 12.0 is whole; 12.5 is not.
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= MAX_POINTS as f64)
                .map(|f| f as i64)
        }),
        _ => None,
    }
    .ok_or_else(|| FieldError::new(field, "must be a whole number of points"))?;
    if n.abs() > MAX_POINTS {
        return Err(FieldError::new(
            field,
            format!("at most {MAX_POINTS} points at once"),
        ));
    }
    Ok(n)
}

/// Points from an earning rule's computed amount: whole points, rounded down; nothing
/// for zero, less, or something that is not a number.
pub fn earned(amount: f64) -> Option<i64> {
    if !amount.is_finite() || amount < 1.0 {
        return None;
    }
    Some((amount.floor() as i64).min(MAX_POINTS))
}

/// An earning rule's amount: a number, or arithmetic over the event's properties and the
/// person's traits (`properties.revenue * 10`, `max(10, traits.visits * 2)`).
#[derive(Debug, Clone, PartialEq)]
pub enum Amount {
    Num(f64),
    /// `properties.…` or `traits.…`.
    Path(Vec<String>),
    Neg(Box<Amount>),
    Bin(char, Box<Amount>, Box<Amount>),
    /// min, max, floor, round.
    Call(String, Vec<Amount>),
}

const FUNCTIONS: [&str; 4] = ["min", "max", "floor", "round"];

impl Amount {
    /// Parses an amount (a JSON number or a string), errors naming `field` and the column.
    pub fn parse(field: &str, v: &serde_json::Value) -> Result<Amount, FieldError> {
        match v {
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(x) if x > 0.0 && x <= MAX_POINTS as f64 => Ok(Amount::Num(x)),
                _ => Err(FieldError::new(field, "a number must be positive")),
            },
            serde_json::Value::String(s) if s.len() <= 500 => {
                let mut p = AmountParser { s: s.as_bytes(), i: 0, field };
                let a = p.sum()?;
                p.space();
                if p.i < p.s.len() {
                    return Err(p.err("unexpected text"));
                }
                Ok(a)
            }
            _ => Err(FieldError::new(
                field,
                "a positive number, or arithmetic over properties.* and traits.* (at most 500 characters)",
            )),
        }
    }

    /// The value for one event; `None` when a field it reads is missing or not a number,
    /// or it divides by zero.
    pub fn eval(&self, read: &dyn Fn(&[String]) -> Option<f64>) -> Option<f64> {
        let v = match self {
            Amount::Num(x) => *x,
            Amount::Path(p) => read(p)?,
            Amount::Neg(a) => -a.eval(read)?,
            Amount::Bin(op, a, b) => {
                let (a, b) = (a.eval(read)?, b.eval(read)?);
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    _ if b == 0.0 => return None,
                    _ => a / b,
                }
            }
            Amount::Call(f, args) => {
                let xs: Option<Vec<f64>> = args.iter().map(|a| a.eval(read)).collect();
                let xs = xs?;
                match f.as_str() {
                    "min" => xs.into_iter().fold(f64::INFINITY, f64::min),
                    "max" => xs.into_iter().fold(f64::NEG_INFINITY, f64::max),
                    "floor" => xs.first()?.floor(),
                    _ => xs.first()?.round(),
                }
            }
        };
        v.is_finite().then_some(v)
    }
}

struct AmountParser<'a> {
    s: &'a [u8],
    i: usize,
    field: &'a str,
}

impl AmountParser<'_> {
    fn err(&self, what: &str) -> FieldError {
        FieldError::new(self.field, format!("{what} at column {}", self.i + 1))
    }

    fn space(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.space();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn sum(&mut self) -> Result<Amount, FieldError> {
        let mut a = self.product()?;
        loop {
            let op = if self.eat(b'+') {
                '+'
            } else if self.eat(b'-') {
                '-'
            } else {
                return Ok(a);
            };
            a = Amount::Bin(op, Box::new(a), Box::new(self.product()?));
        }
    }

    fn product(&mut self) -> Result<Amount, FieldError> {
        let mut a = self.factor(0)?;
        loop {
            let op = if self.eat(b'*') {
                '*'
            } else if self.eat(b'/') {
                '/'
            } else {
                return Ok(a);
            };
            a = Amount::Bin(op, Box::new(a), Box::new(self.factor(0)?));
        }
    }

    fn word(&mut self) -> &str {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i]).unwrap_or("")
    }

    fn factor(&mut self, depth: usize) -> Result<Amount, FieldError> {
        if depth > 32 {
            return Err(self.err("nested too deeply"));
        }
        if self.eat(b'-') {
            return Ok(Amount::Neg(Box::new(self.factor(depth + 1)?)));
        }
        if self.eat(b'(') {
            let a = self.sum()?;
            if !self.eat(b')') {
                return Err(self.err("expected `)`"));
            }
            return Ok(a);
        }
        self.space();
        let start = self.i;
        match self.s.get(self.i) {
            Some(b) if b.is_ascii_digit() || *b == b'.' => {
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                text.parse::<f64>().map(Amount::Num).map_err(|_| {
                    self.i = start;
                    self.err("not a number")
                })
            }
            Some(b) if b.is_ascii_alphabetic() => {
                let name = self.word().to_string();
                if FUNCTIONS.contains(&name.as_str()) {
                    if !self.eat(b'(') {
                        return Err(self.err(&format!("expected `(` after {name}")));
                    }
                    let mut args = vec![self.sum()?];
                    while self.eat(b',') {
                        args.push(self.sum()?);
                    }
                    if !self.eat(b')') {
                        return Err(self.err("expected `)`"));
                    }
                    let one = matches!(name.as_str(), "floor" | "round");
                    if one && args.len() != 1 {
                        return Err(self.err(&format!("{name} takes one value")));
                    }
                    return Ok(Amount::Call(name, args));
                }
                if name != "properties" && name != "traits" {
                    self.i = start;
                    return Err(self.err(&format!(
                        "`{name}`: use a number, properties.<name>, traits.<name>, min, max, floor or round"
                    )));
                }
                let mut path = vec![name];
                while self.s.get(self.i) == Some(&b'.') {
                    self.i += 1;
                    let part = self.word().to_string();
                    if part.is_empty() {
                        return Err(self.err("expected a name after `.`"));
                    }
                    path.push(part);
                }
                if path.len() < 2 {
                    return Err(self.err("expected `.` and a name"));
                }
                Ok(Amount::Path(path))
            }
            _ => Err(self.err("expected a number or a field")),
        }
    }
}

/// What a tier is reached by.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Points earned in the window (reversed ones not counted).
    Points,
    /// Money spent in the window (the revenue of orders that earned points).
    Spend,
}

/// When a person whose qualifying total fell below their tier goes down.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Downgrade {
    /// Once reached, kept.
    Never,
    /// Kept until the end of the period it was reached in (the window's length from
    /// then), plus the grace period; then set by the total at that moment.
    PeriodEnd,
    /// As soon as the total has been below for the grace period.
    Rolling,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: String,
    /// Points (or spend) in the window from which it is reached.
    pub threshold: f64,
    /// Points earned are multiplied by this (1 when absent).
    #[serde(default = "one")]
    pub multiplier: f64,
    /// Words for customers: what the tier gives.
    #[serde(default)]
    pub benefits: Option<String>,
    /// Holding this token reaches the tier whatever the points (a token-gated tier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding: Option<Holding>,
}

/// At least `min` whole units of a token (its symbol or contract address) held by any of
/// the person's wallets.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Holding {
    pub token: String,
    #[serde(default = "one")]
    pub min: f64,
}

fn one() -> f64 {
    1.0
}

/// The programme's tiers and how people move between them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierRules {
    /// Lowest threshold first (checked).
    pub tiers: Vec<Tier>,
    pub basis: Basis,
    pub window_days: i64,
    pub downgrade: Downgrade,
    pub grace_days: i64,
}

impl Default for TierRules {
    fn default() -> Self {
        TierRules {
            tiers: Vec::new(),
            basis: Basis::Points,
            window_days: 365,
            downgrade: Downgrade::Rolling,
            grace_days: 0,
        }
    }
}

impl TierRules {
    /// Checks names (unique, 1–40 characters), thresholds (finite, ≥ 0, rising),
    /// multipliers (0–100) and days.
    pub fn check(&self) -> Result<(), FieldError> {
        for (i, t) in self.tiers.iter().enumerate() {
            let name = t.name.trim();
            if name.is_empty() || name.chars().count() > 40 || name != t.name {
                return Err(FieldError::new(
                    format!("tiers[{i}].name"),
                    "1 to 40 characters, no surrounding spaces",
                ));
            }
            if self.tiers[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(name))
            {
                return Err(FieldError::new(
                    format!("tiers[{i}].name"),
                    "names a tier twice",
                ));
            }
            if !t.threshold.is_finite() || t.threshold < 0.0 {
                return Err(FieldError::new(
                    format!("tiers[{i}].threshold"),
                    "must be 0 or more",
                ));
            }
            if i > 0 && t.threshold <= self.tiers[i - 1].threshold {
                return Err(FieldError::new(
                    format!("tiers[{i}].threshold"),
                    "tiers go from the lowest threshold up, each above the last",
                ));
            }
            if !t.multiplier.is_finite() || !(0.0..=100.0).contains(&t.multiplier) {
                return Err(FieldError::new(
                    format!("tiers[{i}].multiplier"),
                    "from 0 to 100",
                ));
            }
            if let Some(h) = &t.holding {
                if h.token.trim().is_empty() || h.token.len() > 100 {
                    return Err(FieldError::new(
                        format!("tiers[{i}].holding.token"),
                        "a token's symbol or contract address",
                    ));
                }
                if !h.min.is_finite() || h.min <= 0.0 {
                    return Err(FieldError::new(
                        format!("tiers[{i}].holding.min"),
                        "must be more than 0",
                    ));
                }
            }
        }
        if !(1..=3_650).contains(&self.window_days) {
            return Err(FieldError::new("window_days", "from 1 to 3650"));
        }
        if !(0..=365).contains(&self.grace_days) {
            return Err(FieldError::new("grace_days", "from 0 to 365"));
        }
        Ok(())
    }

    pub fn window(&self) -> i64 {
        self.window_days * DAY
    }

    fn rank(&self, name: Option<&str>) -> usize {
        name.and_then(|n| self.tiers.iter().position(|t| t.name == n))
            .map_or(0, |i| i + 1)
    }

    /// The qualifying total counting holdings: a held token's tier counts as reached,
    /// so holding lifts the total to that tier's threshold.
    pub fn with_holdings(&self, total: f64, holds: impl Fn(&Holding) -> bool) -> f64 {
        self.tiers
            .iter()
            .filter(|t| t.holding.as_ref().is_some_and(&holds))
            .map(|t| t.threshold)
            .fold(total, f64::max)
    }

    /// Whether any tier is token-gated.
    pub fn gated(&self) -> bool {
        self.tiers.iter().any(|t| t.holding.is_some())
    }

    /// The highest tier `total` reaches.
    pub fn reached(&self, total: f64) -> Option<&Tier> {
        self.tiers.iter().rev().find(|t| total >= t.threshold)
    }

    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.name == name)
    }

    /// The earning multiplier of a tier (1 without one).
    pub fn multiplier(&self, name: Option<&str>) -> f64 {
        name.and_then(|n| self.tier(n))
            .map_or(1.0, |t| t.multiplier)
    }

    /// Where a person stands after their qualifying total became `total` at `now`.
    pub fn next(&self, s: &TierState, total: f64, now: Millis) -> TierState {
        let reached = self.reached(total).map(|t| t.name.clone());
        let (have, got) = (self.rank(s.tier.as_deref()), self.rank(reached.as_deref()));
        // A tier no longer in the rules ranks as none: whatever is reached replaces it.
        let current_known = s.tier.is_none() || have > 0;
        if got > have || !current_known {
            return TierState {
                tier: reached,
                since: now,
                below_since: None,
            };
        }
        if got == have {
            return TierState {
                below_since: None,
                ..s.clone()
            };
        }
        let grace = self.grace_days * DAY;
        let below_since = s.below_since.unwrap_or(now);
        let down = match self.downgrade {
            Downgrade::Never => false,
            Downgrade::Rolling => now - below_since >= grace,
            Downgrade::PeriodEnd => now >= s.since + self.window() + grace,
        };
        if down {
            TierState {
                tier: reached,
                since: now,
                below_since: None,
            }
        } else {
            TierState {
                below_since: Some(below_since),
                ..s.clone()
            }
        }
    }
}

/// A person's tier and since when; and since when their total has been below it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TierState {
    pub tier: Option<String>,
    pub since: Millis,
    pub below_since: Option<Millis>,
}

/// A ledger in memory: what the stores keep in rows, used to state and test the rules
/// (every operation is a plan of moves, then applied).
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub lots: Vec<Lot>,
    pub entries: Vec<Entry>,
}

/// One entry, as the stores keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Signed: what it added (earn, adjust up) or took (the rest) in all.
    pub amount: i64,
    /// The lot it made (earn, adjust up).
    pub lot: Option<Lot>,
    pub moves: Vec<Move>,
}

impl Ledger {
    fn push(&mut self, kind: Kind, lot: Option<Lot>, moves: Vec<Move>) -> &Entry {
        apply(&mut self.lots, &moves);
        let amount = match &lot {
            Some(l) => l.amount,
            None => -moves.iter().map(|m| m.take).sum::<i64>(),
        };
        if let Some(l) = &lot {
            self.lots.push(l.clone());
        }
        self.entries.push(Entry {
            kind,
            amount,
            lot,
            moves,
        });
        self.entries.last().expect("just pushed")
    }

    pub fn earn(
        &mut self,
        amount: i64,
        at: Millis,
        pending_days: i64,
        expires_days: Option<i64>,
        order: Option<String>,
    ) -> &Entry {
        let lot = Lot {
            id: self.lots.len() as i64 + 1,
            amount,
            remaining: amount,
            earned_at: at,
            unlock_at: at + pending_days * DAY,
            expires_at: expires_days.map(|d| at + d * DAY),
            order,
        };
        self.push(Kind::Earn, Some(lot), Vec::new())
    }

    pub fn spend(&mut self, amount: i64, now: Millis) -> Result<&Entry, Short> {
        let moves = take(&self.lots, amount, now)?;
        Ok(self.push(Kind::Spend, None, moves))
    }

    pub fn expire(&mut self, now: Millis) -> &Entry {
        let moves = expire(&self.lots, now);
        self.push(Kind::Expire, None, moves)
    }

    pub fn reverse(&mut self, order: &str, now: Millis) -> &Entry {
        let moves = reverse(&self.lots, order, now);
        self.push(Kind::Reverse, None, moves)
    }

    /// Replays the entries from nothing: the lots they leave.
    pub fn replay(entries: &[Entry]) -> Vec<Lot> {
        let mut lots: Vec<Lot> = Vec::new();
        for e in entries {
            apply(&mut lots, &e.moves);
            if let Some(l) = &e.lot {
                let mut l = l.clone();
                l.remaining = l.amount;
                lots.push(l);
            }
        }
        lots
    }

    /// Sum of the entries of one kind (signed).
    pub fn total(&self, kind: Kind) -> i64 {
        self.entries
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.amount)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn lot(id: i64, remaining: i64, unlock_at: Millis, expires_at: Option<Millis>) -> Lot {
        Lot {
            id,
            amount: remaining,
            remaining,
            earned_at: id,
            unlock_at,
            expires_at,
            order: None,
        }
    }

    #[test]
    fn states_by_time() {
        let l = lot(1, 10, 100, Some(200));
        assert_eq!(l.state(99), LotState::Pending);
        assert_eq!(l.state(100), LotState::Available);
        assert_eq!(l.state(199), LotState::Available);
        assert_eq!(l.state(200), LotState::Expired);
        let empty = Lot { remaining: 0, ..l };
        assert_eq!(empty.state(150), LotState::Empty);
        assert_eq!(lot(2, 5, 0, None).state(i64::MAX - 1), LotState::Available);
    }

    #[test]
    fn balance_counts_available_and_pending_not_expired() {
        let lots = [
            lot(1, 10, 0, Some(500)),
            lot(2, 20, 300, None),
            lot(3, 40, 0, Some(100)),
        ];
        assert_eq!(
            balance(&lots, 200),
            Balance {
                available: 10,
                pending: 20
            }
        );
        assert_eq!(
            balance(&lots, 300),
            Balance {
                available: 30,
                pending: 0
            }
        );
        assert_eq!(
            balance(&lots, 50),
            Balance {
                available: 50,
                pending: 20
            }
        );
        assert_eq!(expiring(&lots, 50, 100), 40);
        assert_eq!(expiring(&lots, 50, 99), 0);
        assert_eq!(expiring(&lots, 200, 500), 10);
        assert_eq!(expiring(&lots, 200, 499), 0);
    }

    #[test]
    fn spending_takes_what_expires_first() {
        let lots = [
            lot(1, 10, 0, None),
            lot(2, 10, 0, Some(900)),
            lot(3, 10, 0, Some(500)),
            lot(4, 10, 999, Some(400)),
        ];
        assert_eq!(
            take(&lots, 15, 100),
            Ok(vec![Move { lot: 3, take: 10 }, Move { lot: 2, take: 5 }])
        );
        assert_eq!(take(&lots, 30, 100).map(|m| m.len()), Ok(3));
        assert_eq!(
            take(&lots, 31, 100),
            Err(Short {
                available: 30,
                wanted: 31
            })
        );
        assert_eq!(take(&lots, 30, 100).unwrap()[2], Move { lot: 1, take: 10 });
        // Same expiry: the older first.
        let same = [lot(7, 5, 0, Some(50)), lot(6, 5, 0, Some(50))];
        assert_eq!(take(&same, 5, 0), Ok(vec![Move { lot: 6, take: 5 }]));
    }

    #[test]
    fn expiry_and_reversal() {
        let mut a = lot(1, 10, 0, Some(100));
        a.order = Some("o1".into());
        let b = lot(2, 10, 50, Some(300));
        let mut c = lot(3, 7, 500, None);
        c.order = Some("o1".into());
        let lots = [a, b, c];
        assert_eq!(expire(&lots, 99), vec![]);
        assert_eq!(expire(&lots, 100), vec![Move { lot: 1, take: 10 }]);
        assert_eq!(
            reverse(&lots, "o1", 10),
            vec![Move { lot: 1, take: 10 }, Move { lot: 3, take: 7 }]
        );
        // Expired lots are written off by expiry, not reversed.
        assert_eq!(reverse(&lots, "o1", 100), vec![Move { lot: 3, take: 7 }]);
        assert_eq!(reverse(&lots, "o2", 10), vec![]);
    }

    #[test]
    fn amounts_are_checked() {
        assert_eq!(positive_points("amount", &json!(12)), Ok(12));
        assert_eq!(positive_points("amount", &json!(12.0)), Ok(12));
        for bad in [
            json!(0),
            json!(-3),
            json!(1.5),
            json!("5"),
            json!(null),
            json!(2e9),
        ] {
            let e = positive_points("amount", &bad).unwrap_err();
            assert_eq!(e.field, "amount", "{bad}");
        }
        assert_eq!(adjustment("delta", &json!(-40)), Ok(-40));
        assert!(adjustment("delta", &json!(0)).is_err());
        assert!(adjustment("delta", &json!(-2.5)).is_err());
        assert_eq!(adjustment("delta", &json!(MAX_POINTS)), Ok(MAX_POINTS));
        assert!(adjustment("delta", &json!(MAX_POINTS + 1)).is_err());
        assert_eq!(earned(123.9), Some(123));
        assert_eq!(earned(1.0), Some(1));
        assert_eq!(earned(0.99), None);
        assert_eq!(earned(-5.0), None);
        assert_eq!(earned(f64::NAN), None);
        assert_eq!(earned(1e300), Some(MAX_POINTS));
    }

    #[test]
    fn holding_a_token_reaches_its_tier() {
        let r = rules(Downgrade::Never, 0);
        assert!(r.gated());
        assert_eq!(r.with_holdings(120.0, |_| false), 120.0);
        assert_eq!(r.with_holdings(120.0, |h| h.token == "BRAND"), 500.0);
        assert_eq!(r.with_holdings(900.0, |_| true), 900.0);
        assert_eq!(
            r.next(&TierState::default(), r.with_holdings(0.0, |_| true), 5)
                .tier
                .as_deref(),
            Some("gold")
        );
        let mut bad = r.clone();
        bad.tiers[1].holding = Some(Holding {
            token: "BRAND".into(),
            min: 0.0,
        });
        assert_eq!(bad.check().unwrap_err().field, "tiers[1].holding.min");
        bad.tiers[1].holding = Some(Holding {
            token: " ".into(),
            min: 1.0,
        });
        assert_eq!(bad.check().unwrap_err().field, "tiers[1].holding.token");
        let mut plain = r;
        plain.tiers[1].holding = None;
        assert!(!plain.gated());
    }

    fn rules(downgrade: Downgrade, grace_days: i64) -> TierRules {
        TierRules {
            tiers: vec![
                Tier {
                    name: "silver".into(),
                    threshold: 100.0,
                    multiplier: 1.0,
                    benefits: None,
                    holding: None,
                },
                Tier {
                    name: "gold".into(),
                    threshold: 500.0,
                    multiplier: 1.5,
                    benefits: None,
                    holding: Some(Holding {
                        token: "BRAND".into(),
                        min: 10.0,
                    }),
                },
            ],
            basis: Basis::Points,
            window_days: 10,
            downgrade,
            grace_days,
        }
    }

    #[test]
    fn tiers_go_up_at_once_and_down_per_mode() {
        let start = TierState::default();
        let r = rules(Downgrade::Rolling, 2);
        assert_eq!(r.next(&start, 50.0, 1).tier, None);
        let gold = r.next(&start, 600.0, 5);
        assert_eq!(
            gold,
            TierState {
                tier: Some("gold".into()),
                since: 5,
                below_since: None
            }
        );
        assert_eq!(r.multiplier(gold.tier.as_deref()), 1.5);
        assert_eq!(r.multiplier(None), 1.0);
        // Rolling: below for less than the grace period keeps it, then down.
        let held = r.next(&gold, 200.0, DAY);
        assert_eq!(held.tier.as_deref(), Some("gold"));
        assert_eq!(held.below_since, Some(DAY));
        let still = r.next(&held, 200.0, 3 * DAY - 1);
        assert_eq!(still.below_since, Some(DAY));
        assert_eq!(
            r.next(&still, 200.0, 3 * DAY).tier.as_deref(),
            Some("silver")
        );
        // Back above: the clock stops.
        assert_eq!(r.next(&held, 700.0, 2 * DAY).below_since, None);
        assert_eq!(r.next(&held, 700.0, 2 * DAY).since, 5);
        // Never.
        let never = rules(Downgrade::Never, 0);
        assert_eq!(
            never.next(&gold, 0.0, 1000 * DAY).tier.as_deref(),
            Some("gold")
        );
        // At the period's end (window 10 days + grace 2).
        let pe = rules(Downgrade::PeriodEnd, 2);
        let kept = pe.next(&gold, 0.0, 11 * DAY);
        assert_eq!(kept.tier.as_deref(), Some("gold"));
        let end = pe.next(&kept, 150.0, 12 * DAY + 5);
        assert_eq!(
            end,
            TierState {
                tier: Some("silver".into()),
                since: 12 * DAY + 5,
                below_since: None
            }
        );
        // A tier the rules no longer have is replaced by what is reached.
        let gone = TierState {
            tier: Some("bronze".into()),
            since: 1,
            below_since: None,
        };
        assert_eq!(r.next(&gone, 10.0, 9).tier, None);
        assert_eq!(r.next(&gone, 150.0, 9).tier.as_deref(), Some("silver"));
        // Grace 0, rolling: down at once.
        let r0 = rules(Downgrade::Rolling, 0);
        assert_eq!(r0.next(&gold, 120.0, 7).tier.as_deref(), Some("silver"));
    }

    #[test]
    fn tier_rules_are_checked() {
        assert!(rules(Downgrade::Never, 0).check().is_ok());
        let mut r = rules(Downgrade::Never, 0);
        r.tiers[1].threshold = 100.0;
        assert_eq!(r.check().unwrap_err().field, "tiers[1].threshold");
        let mut r = rules(Downgrade::Never, 0);
        r.tiers[1].name = "Silver".into();
        assert_eq!(r.check().unwrap_err().field, "tiers[1].name");
        let mut r = rules(Downgrade::Never, 0);
        r.tiers[0].name = " x".into();
        assert_eq!(r.check().unwrap_err().field, "tiers[0].name");
        let mut r = rules(Downgrade::Never, 0);
        r.tiers[0].threshold = -1.0;
        assert_eq!(r.check().unwrap_err().field, "tiers[0].threshold");
        let mut r = rules(Downgrade::Never, 0);
        r.tiers[0].multiplier = 101.0;
        assert_eq!(r.check().unwrap_err().field, "tiers[0].multiplier");
        let mut r = rules(Downgrade::Never, 0);
        r.window_days = 0;
        assert_eq!(r.check().unwrap_err().field, "window_days");
        let mut r = rules(Downgrade::Never, 0);
        r.grace_days = 366;
        assert_eq!(r.check().unwrap_err().field, "grace_days");
        assert_eq!(
            rules(Downgrade::Never, 0)
                .reached(499.0)
                .map(|t| t.name.as_str()),
            Some("silver")
        );
        assert_eq!(
            rules(Downgrade::Never, 0)
                .reached(500.0)
                .map(|t| t.name.as_str()),
            Some("gold")
        );
        assert!(rules(Downgrade::Never, 0).reached(99.9).is_none());
    }

    #[test]
    fn amounts_parse_and_evaluate() {
        let read = |p: &[String]| match p.join(".").as_str() {
            "properties.revenue" => Some(12.5),
            "traits.visits" => Some(3.0),
            "properties.zero" => Some(0.0),
            _ => None,
        };
        let a = |s: &str| Amount::parse("amount", &json!(s)).map(|a| a.eval(&read));
        assert_eq!(a("properties.revenue * 10"), Ok(Some(125.0)));
        assert_eq!(
            a("(properties.revenue + 2.5) * 2 - traits.visits"),
            Ok(Some(27.0))
        );
        assert_eq!(a("1 + 2 * 3"), Ok(Some(7.0)));
        assert_eq!(a("10 / 4 / 5"), Ok(Some(0.5)));
        assert_eq!(a("10 - 4 - 5"), Ok(Some(1.0)));
        assert_eq!(a("-traits.visits + 5"), Ok(Some(2.0)));
        assert_eq!(a("max(10, traits.visits * 5, 1)"), Ok(Some(15.0)));
        assert_eq!(a("min(10, traits.visits * 5)"), Ok(Some(10.0)));
        assert_eq!(a("floor(properties.revenue)"), Ok(Some(12.0)));
        assert_eq!(a("round(properties.revenue)"), Ok(Some(13.0)));
        assert_eq!(a("properties.missing * 10"), Ok(None));
        assert_eq!(a("10 / properties.zero"), Ok(None));
        assert_eq!(
            Amount::parse("x", &json!(40)).map(|a| a.eval(&read)),
            Ok(Some(40.0))
        );
        for (bad, col) in [
            ("properties.revenue *", 21),
            ("revenue * 10", 1),
            ("properties. * 2", 12),
            ("(1 + 2", 7),
            ("floor(1, 2)", 12),
            ("max 3", 5),
            ("2 3", 3),
            ("1..2", 1),
            ("properties", 11),
        ] {
            let e = Amount::parse("rules[0].then[0].amount", &json!(bad)).unwrap_err();
            assert_eq!(e.field, "rules[0].then[0].amount");
            assert!(
                e.reason.ends_with(&format!("column {col}")),
                "{bad}: {}",
                e.reason
            );
        }
        assert!(Amount::parse("a", &json!(0)).is_err());
        assert!(Amount::parse("a", &json!(-2)).is_err());
        assert!(Amount::parse("a", &json!(null)).is_err());
        assert!(Amount::parse("a", &json!("(".repeat(40) + "1")).is_err());
    }

    proptest! {
        /// Any text parses or is refused naming the field; never a panic.
        #[test]
        fn amount_parser_total(s in "[ -~]{0,60}") {
            match Amount::parse("amount", &json!(s)) {
                Ok(a) => { let _ = a.eval(&|_| Some(1.0)); }
                Err(e) => prop_assert_eq!(e.field, "amount"),
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Earn(i64, i64, Option<i64>, Option<u8>),
        Spend(i64),
        Expire,
        Reverse(u8),
        Wait(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                1i64..500,
                0i64..5,
                proptest::option::of(1i64..20),
                proptest::option::of(0u8..4)
            )
                .prop_map(|(a, p, e, o)| Op::Earn(a, p, e, o)),
            (1i64..800).prop_map(Op::Spend),
            Just(Op::Expire),
            (0u8..4).prop_map(Op::Reverse),
            (0i64..4 * DAY).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Conservation (earned = balance + spent + expired + reversed), never negative,
        /// spending never leaves an earlier-expiring available lot untouched, and
        /// replaying the entries gives the same lots.
        #[test]
        fn ledger_invariants(ops in proptest::collection::vec(op(), 0..120)) {
            let mut l = Ledger::default();
            let mut now = 0;
            for o in ops {
                match o {
                    Op::Earn(a, p, e, order) => {
                        l.earn(a, now, p, e, order.map(|o| format!("o{o}")));
                    }
                    Op::Spend(a) => {
                        let before = l.lots.clone();
                        let avail = balance(&before, now).available;
                        match l.spend(a, now) {
                            Ok(e) => {
                                prop_assert!(a <= avail);
                                prop_assert_eq!(-e.amount, a);
                                let taken: Vec<i64> = e.moves.iter().map(|m| m.lot).collect();
                                let last = e.moves.last().map(|m| m.lot);
                                // Every available lot left with points after a spend
                                // expires no earlier than any lot fully taken.
                                for t in &taken {
                                    let tl = before.iter().find(|x| x.id == *t).unwrap();
                                    for other in l.lots.iter().filter(|x| x.state(now) == LotState::Available && x.remaining > 0) {
                                        if Some(other.id) != last && other.id != *t {
                                            prop_assert!(spend_order(other) > spend_order(tl));
                                        }
                                    }
                                }
                            }
                            Err(s) => {
                                prop_assert!(a > avail);
                                prop_assert_eq!(s.available, avail);
                                prop_assert_eq!(&l.lots, &before);
                            }
                        }
                    }
                    Op::Expire => {
                        l.expire(now);
                        prop_assert!(l.lots.iter().all(|x| x.state(now) != LotState::Expired));
                    }
                    Op::Reverse(o) => {
                        l.reverse(&format!("o{o}"), now);
                    }
                    Op::Wait(d) => now += d,
                }
                prop_assert!(l.lots.iter().all(|x| x.remaining >= 0 && x.remaining <= x.amount));
                let remaining: i64 = l.lots.iter().map(|x| x.remaining).sum();
                let earned = l.total(Kind::Earn);
                let out = -(l.total(Kind::Spend) + l.total(Kind::Expire) + l.total(Kind::Reverse));
                prop_assert_eq!(earned, remaining + out);
                let b = balance(&l.lots, now);
                prop_assert!(b.available >= 0 && b.pending >= 0);
                prop_assert!(b.available + b.pending <= remaining);
                prop_assert_eq!(Ledger::replay(&l.entries), l.lots.clone());
            }
        }
    }
}
