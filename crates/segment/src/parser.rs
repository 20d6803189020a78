//! Lexer and recursive-descent parser. Errors carry the line and column (1-based,
//! counted in characters) of the token that went wrong and say what was expected.

use crate::ast::*;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error, serde::Serialize)]
#[error("line {line}, column {column}: {message}")]
pub struct SegmentError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Dur(i64),
    Op(&'static str),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
    column: usize,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Str(s) => format!("the text \"{s}\""),
        Tok::Num(n) => format!("the number {n}"),
        Tok::Dur(_) => "a time window".into(),
        Tok::Op(o) => format!("'{o}'"),
        Tok::End => "the end of the definition".into(),
    }
}

fn lex(src: &str) -> Result<Vec<Token>, SegmentError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let err = |line, column, message: String| SegmentError {
        line,
        column,
        message,
    };
    while i < chars.len() {
        let c = chars[i];
        let (l, cl) = (line, col);
        let mut push = |tok: Tok| {
            out.push(Token {
                tok,
                line: l,
                column: cl,
            })
        };
        if c == '\n' {
            line += 1;
            col = 1;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            col += 1;
            continue;
        }
        if c == '#' {
            // A comment to the end of the line.
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '"' {
            let mut s = String::new();
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None | Some('\n') => {
                        return Err(err(l, cl, "this text is not closed with \"".into()))
                    }
                    Some('\\') => {
                        match chars.get(j + 1) {
                            Some('"') => s.push('"'),
                            Some('\\') => s.push('\\'),
                            Some('n') => s.push('\n'),
                            _ => {
                                return Err(err(
                                    l,
                                    cl + (j - i),
                                    "unknown escape: use \\\" \\\\ or \\n".into(),
                                ))
                            }
                        }
                        j += 2;
                    }
                    Some('"') => break,
                    Some(ch) => {
                        s.push(*ch);
                        j += 1;
                    }
                }
            }
            col += j + 1 - i;
            i = j + 1;
            push(Tok::Str(s));
            continue;
        }
        let negative_number = c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit());
        if c.is_ascii_digit() || negative_number {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                j += 1;
            }
            let text: String = chars[i..j].iter().collect();
            let unit = chars.get(j).copied();
            let after_unit = chars.get(j + 1).copied();
            let unit_ends = !after_unit.is_some_and(|a| a.is_alphanumeric() || a == '_');
            if let (Some(u @ ('d' | 'h' | 'w' | 'y')), true) = (unit, unit_ends) {
                let n: i64 = text.parse().map_err(|_| {
                    err(
                        l,
                        cl,
                        format!("'{text}{u}': a window is a whole number of d, h, w or y"),
                    )
                })?;
                let hour = 3_600_000i64;
                let unit_millis = match u {
                    'h' => hour,
                    'd' => 24 * hour,
                    'w' => 7 * 24 * hour,
                    _ => 365 * 24 * hour,
                };
                // The bound is on the whole window, whatever its unit (`36500y` is not).
                let millis = n
                    .checked_mul(unit_millis)
                    .filter(|m| n > 0 && *m <= 100 * 365 * 24 * hour)
                    .ok_or_else(|| {
                        err(
                            l,
                            cl,
                            format!("'{text}{u}': a window is from 1 hour to 100 years"),
                        )
                    })?;
                col += j + 1 - i;
                i = j + 1;
                push(Tok::Dur(millis));
                continue;
            }
            let n: f64 = text
                .parse()
                .map_err(|_| err(l, cl, format!("'{text}' is not a number")))?;
            col += j - i;
            i = j;
            push(Tok::Num(n));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut j = i + 1;
            while j < chars.len()
                && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | ':' | '-'))
            {
                j += 1;
            }
            let s: String = chars[i..j].iter().collect();
            col += j - i;
            i = j;
            push(Tok::Ident(s));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op = match two.as_str() {
            "!=" => Some("!="),
            "<=" => Some("<="),
            ">=" => Some(">="),
            "==" => Some("="),
            _ => None,
        };
        if let Some(op) = op {
            col += 2;
            i += 2;
            push(Tok::Op(op));
            continue;
        }
        let op = match c {
            '=' => "=",
            '<' => "<",
            '>' => ">",
            '~' => "~",
            '(' => "(",
            ')' => ")",
            '[' => "[",
            ']' => "]",
            ',' => ",",
            '.' => ".",
            _ => return Err(err(l, cl, format!("unexpected character '{c}'"))),
        };
        col += 1;
        i += 1;
        push(Tok::Op(op));
    }
    out.push(Token {
        tok: Tok::End,
        line,
        column: col,
    });
    Ok(out)
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    /// Nesting of parentheses and `not`, bounded so hostile input cannot exhaust the stack.
    depth: usize,
    /// Conditions so far, and those that read the event log (each a pass over it).
    conditions: usize,
    event_conditions: usize,
}

const MAX_DEPTH: usize = 64;
/// Most conditions in one definition (an `in [...]` list is one), and most that read
/// events: beyond, a definition costs more than a segment is worth, and is refused
/// before it runs.
pub const MAX_CONDITIONS: usize = 500;
pub const MAX_EVENT_CONDITIONS: usize = 32;

/// Parses and checks a definition.
pub fn parse(src: &str) -> Result<Expr, SegmentError> {
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        conditions: 0,
        event_conditions: 0,
    };
    if p.peek() == &Tok::End {
        return Err(
            p.error("the definition is empty: write a condition such as traits.plan = \"pro\"")
        );
    }
    let e = p.expr()?;
    if p.peek() != &Tok::End {
        return Err(p.error(&format!(
            "expected 'and', 'or' or the end, found {}",
            describe(p.peek())
        )));
    }
    Ok(e)
}

/// Parses an event selector alone (a rule's `when`): `track "Order Completed" where
/// revenue > 100`.
pub fn parse_selector(src: &str) -> Result<EventSel, SegmentError> {
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        conditions: 0,
        event_conditions: 0,
    };
    let (sel, prop) = p.selector()?;
    if prop.is_some() {
        return Err(p.error("a rule's event takes no .property"));
    }
    if p.peek() != &Tok::End {
        return Err(p.error(&format!(
            "expected 'where' or the end, found {}",
            describe(p.peek())
        )));
    }
    Ok(sel)
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn next(&mut self) -> Tok {
        let t = self.toks[self.pos].tok.clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn error(&self, message: &str) -> SegmentError {
        let t = &self.toks[self.pos];
        SegmentError {
            line: t.line,
            column: t.column,
            message: message.to_string(),
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(w))
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.next();
            true
        } else {
            false
        }
    }

    fn eat_op(&mut self, o: &str) -> bool {
        if self.peek() == &Tok::Op(leak(o)) {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect_op(&mut self, o: &str, what: &str) -> Result<(), SegmentError> {
        if self.eat_op(o) {
            Ok(())
        } else {
            Err(self.error(&format!(
                "expected '{o}' {what}, found {}",
                describe(self.peek())
            )))
        }
    }

    fn expr(&mut self) -> Result<Expr, SegmentError> {
        let mut parts = vec![self.and_expr()?];
        while self.eat_word("or") {
            parts.push(self.and_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, SegmentError> {
        let mut parts = vec![self.unary()?];
        while self.eat_word("and") {
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, SegmentError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(&format!(
                "nested more than {MAX_DEPTH} levels deep: simplify the definition"
            )));
        }
        if self.eat_word("not") {
            self.depth += 1;
            let e = self.unary();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e?)));
        }
        if self.eat_op("(") {
            self.depth += 1;
            let e = self.expr();
            self.depth -= 1;
            let e = e?;
            self.expect_op(")", "to close '('")?;
            return Ok(e);
        }
        let start = self.pos;
        let c = self.cond()?;
        self.conditions += 1;
        // Aggregates, recency, first/last values and texts each read the event log.
        if matches!(
            c,
            Cond::Agg { .. } | Cond::Recency { .. } | Cond::Value { .. } | Cond::Text { .. }
        ) {
            self.event_conditions += 1;
        }
        if self.conditions > MAX_CONDITIONS || self.event_conditions > MAX_EVENT_CONDITIONS {
            self.pos = start;
            return Err(self.error(&format!(
                "more than {MAX_CONDITIONS} conditions, or {MAX_EVENT_CONDITIONS} on events: split the segment, or list values with `in [...]`"
            )));
        }
        Ok(Expr::Cond(c))
    }

    fn ident(&mut self, what: &str) -> Result<String, SegmentError> {
        match self.peek().clone() {
            Tok::Ident(s) => {
                self.next();
                Ok(s)
            }
            t => Err(self.error(&format!("expected {what}, found {}", describe(&t)))),
        }
    }

    /// A dotted path of plain names (letters, digits, `_`).
    fn path(&mut self, what: &str) -> Result<Vec<String>, SegmentError> {
        let mut out = Vec::new();
        loop {
            let at = self.pos;
            let s = self.ident(what)?;
            if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.pos = at;
                return Err(
                    self.error(&format!("'{s}': names in a path are letters, digits and _"))
                );
            }
            out.push(s);
            if !self.eat_op(".") {
                return Ok(out);
            }
        }
    }

    fn cmp_op(&mut self) -> Option<CmpOp> {
        let op = match self.peek() {
            Tok::Op("=") => CmpOp::Eq,
            Tok::Op("!=") => CmpOp::Ne,
            Tok::Op("<") => CmpOp::Lt,
            Tok::Op("<=") => CmpOp::Le,
            Tok::Op(">") => CmpOp::Gt,
            Tok::Op(">=") => CmpOp::Ge,
            _ => return None,
        };
        self.next();
        Some(op)
    }

    fn number(&mut self, what: &str) -> Result<f64, SegmentError> {
        match self.peek().clone() {
            Tok::Num(n) => {
                self.next();
                Ok(n)
            }
            t => Err(self.error(&format!("expected a number {what}, found {}", describe(&t)))),
        }
    }

    fn cmp_number(&mut self, what: &str) -> Result<(CmpOp, f64), SegmentError> {
        let Some(op) = self.cmp_op() else {
            return Err(self.error(&format!(
                "expected a comparison (=, !=, <, <=, >, >=) after {what}, found {}",
                describe(self.peek())
            )));
        };
        Ok((op, self.number(&format!("to compare {what} with"))?))
    }

    fn literal(&mut self) -> Result<Lit, SegmentError> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.next();
                Ok(Lit::Str(s))
            }
            Tok::Num(n) => {
                self.next();
                Ok(Lit::Num(n))
            }
            Tok::Ident(w) if w == "true" || w == "false" => {
                self.next();
                Ok(Lit::Bool(w == "true"))
            }
            t => Err(self.error(&format!(
                "expected a value (\"text\", a number, true or false), found {}",
                describe(&t)
            ))),
        }
    }

    fn test(&mut self) -> Result<Test, SegmentError> {
        if let Some(op) = self.cmp_op() {
            let at = self.pos;
            let lit = self.literal()?;
            if matches!(lit, Lit::Bool(_)) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                self.pos = at;
                return Err(self.error("true and false compare with = or != only"));
            }
            return Ok(Test::Cmp(op, lit));
        }
        if self.eat_op("~") {
            return match self.next() {
                Tok::Str(s) => Ok(Test::Contains(s)),
                _ => {
                    self.pos -= 1;
                    Err(self.error("expected \"text\" after ~ (contains)"))
                }
            };
        }
        if self.eat_word("matches") {
            let at = self.pos;
            return match self.next() {
                Tok::Str(s) => match regex::Regex::new(&s) {
                    Ok(_) => Ok(Test::Regex(s)),
                    Err(e) => {
                        self.pos = at;
                        Err(self.error(&format!("not a valid regular expression: {e}")))
                    }
                },
                _ => {
                    self.pos = at;
                    Err(self.error("expected \"regular expression\" after matches"))
                }
            };
        }
        if self.eat_word("in") {
            self.expect_op("[", "to open the list of values")?;
            let mut items = vec![self.literal()?];
            while self.eat_op(",") {
                items.push(self.literal()?);
            }
            self.expect_op("]", "to close the list of values")?;
            return Ok(Test::In(items));
        }
        if self.eat_word("exists") {
            return Ok(Test::Exists);
        }
        Err(self.error(&format!(
            "expected a test (=, !=, <, <=, >, >=, ~, matches, in [...], exists), found {}",
            describe(self.peek())
        )))
    }

    fn window(&mut self) -> Result<Window, SegmentError> {
        match self.peek() {
            Tok::Dur(m) => {
                let millis = *m;
                self.next();
                Ok(Window { millis })
            }
            t => Err(self.error(&format!(
                "expected a time window such as 30d, 12h, 4w or 1y, found {}",
                describe(t)
            ))),
        }
    }

    /// `kind ["name"] [.prop] [where tests]`; returns the selector and the property.
    fn selector(&mut self) -> Result<(EventSel, Option<Vec<String>>), SegmentError> {
        let at = self.pos;
        let kind =
            self.ident("an event type (track, page, screen, identify, group, alias or any)")?;
        let kind = kind.to_ascii_lowercase();
        let kind = if kind == "any" {
            None
        } else if EVENT_KINDS.contains(&kind.as_str()) {
            Some(kind)
        } else {
            self.pos = at;
            return Err(self.error(&format!(
                "'{kind}' is not an event type: use track, page, screen, identify, group, alias or any"
            )));
        };
        let name = match self.peek().clone() {
            Tok::Str(s) => {
                self.next();
                Some(s)
            }
            _ => None,
        };
        let prop = if self.eat_op(".") {
            Some(self.property_path()?)
        } else {
            None
        };
        let mut filters = Vec::new();
        if self.eat_word("where") {
            loop {
                let p = self.property_path()?;
                let t = self.test()?;
                filters.push((p, t));
                if !self.eat_word("and") {
                    break;
                }
            }
        }
        Ok((
            EventSel {
                kind,
                name,
                filters,
                slot: None,
            },
            prop,
        ))
    }

    /// A property path, with an optional `properties.` prefix.
    fn property_path(&mut self) -> Result<Vec<String>, SegmentError> {
        let mut p = self.path("a property name")?;
        if p.len() > 1 && p[0] == "properties" {
            p.remove(0);
        }
        Ok(p)
    }

    fn cond(&mut self) -> Result<Cond, SegmentError> {
        let start = self.pos;
        let word = match self.peek().clone() {
            Tok::Ident(w) => w.to_ascii_lowercase(),
            t => {
                return Err(self.error(&format!(
                    "expected a condition (traits.…, has …, count(…), in segment …), found {}",
                    describe(&t)
                )))
            }
        };
        self.next();
        match word.as_str() {
            "traits" => {
                self.expect_op(".", "after traits (traits.name)")?;
                let path = self.path("a trait name")?;
                let test = self.test()?;
                Ok(Cond::Trait { path, test })
            }
            "has" => {
                let at = self.pos;
                let k = self.ident("an identity kind (email, phone, wallet, social, user_id)")?;
                let kind = match k.to_ascii_lowercase().as_str() {
                    "email" => IdKind::Email,
                    "phone" => IdKind::Phone,
                    "wallet" => IdKind::Wallet,
                    "social" => IdKind::Social,
                    "user_id" => IdKind::UserId,
                    _ => {
                        self.pos = at;
                        return Err(self.error(&format!(
                            "'{k}' is not an identity kind: use email, phone, wallet, social or user_id"
                        )));
                    }
                };
                let on = if self.eat_word("on") {
                    if !matches!(kind, IdKind::Wallet | IdKind::Social) {
                        self.pos -= 1;
                        return Err(self.error("'on' names a chain (wallet) or a network (social)"));
                    }
                    Some(
                        self.ident("a chain such as eip155:1 or a network such as x")?
                            .to_ascii_lowercase(),
                    )
                } else {
                    None
                };
                Ok(Cond::Has { kind, on })
            }
            "count" | "sum" | "avg" | "min" | "max" => {
                let func = match word.as_str() {
                    "count" => AggFn::Count,
                    "sum" => AggFn::Sum,
                    "avg" => AggFn::Avg,
                    "min" => AggFn::Min,
                    _ => AggFn::Max,
                };
                self.expect_op("(", &format!("after {word}"))?;
                let sel_at = self.pos;
                let (sel, prop) = self.selector()?;
                match (func, &prop) {
                    (AggFn::Count, Some(_)) => {
                        self.pos = sel_at;
                        return Err(self.error("count counts events: leave out the .property"));
                    }
                    (AggFn::Count, None) => {}
                    (_, None) => {
                        self.pos = sel_at;
                        return Err(self.error(&format!(
                            "{word} needs a property: {word}(track \"Order Completed\".revenue)"
                        )));
                    }
                    _ => {}
                }
                let window = if self.eat_op(",") {
                    Some(self.window()?)
                } else {
                    None
                };
                self.expect_op(")", &format!("to close {word}("))?;
                let (op, value) = self.cmp_number(&format!("{word}(…)"))?;
                Ok(Cond::Agg {
                    func,
                    sel,
                    prop,
                    window,
                    op,
                    value,
                })
            }
            "days_since" | "days_since_first" => {
                self.expect_op("(", &format!("after {word}"))?;
                let sel_at = self.pos;
                let (sel, prop) = self.selector()?;
                if prop.is_some() {
                    self.pos = sel_at;
                    return Err(self.error(&format!("{word} takes events, not a property")));
                }
                self.expect_op(")", &format!("to close {word}("))?;
                let (op, value) = self.cmp_number(&format!("{word}(…)"))?;
                Ok(Cond::Recency {
                    first: word == "days_since_first",
                    sel,
                    op,
                    value,
                })
            }
            "first" | "last" => {
                self.expect_op("(", &format!("after {word}"))?;
                let sel_at = self.pos;
                let (sel, prop) = self.selector()?;
                let Some(prop) = prop else {
                    self.pos = sel_at;
                    return Err(self.error(&format!(
                        "{word} needs a property: {word}(track \"Order Completed\".currency)"
                    )));
                };
                let window = if self.eat_op(",") {
                    Some(self.window()?)
                } else {
                    None
                };
                self.expect_op(")", &format!("to close {word}("))?;
                let test = self.test()?;
                Ok(Cond::Value {
                    first: word == "first",
                    sel,
                    prop,
                    window,
                    test,
                })
            }
            "graph" => {
                self.expect_op(".", "after graph (graph.pagerank_pct)")?;
                let at = self.pos;
                let n = self.ident("a network score")?;
                let Some(name) = Score::ALL.iter().find(|(s, _)| *s == n).map(|(_, s)| *s) else {
                    self.pos = at;
                    let names: Vec<&str> = Score::ALL.iter().map(|(s, _)| *s).collect();
                    return Err(self.error(&format!(
                        "'{n}' is not a network score: use {}",
                        names.join(", ")
                    )));
                };
                let (op, value) = self.cmp_number(&format!("graph.{n}"))?;
                Ok(Cond::Score { name, op, value })
            }
            "score" => {
                self.expect_op(".", "after score (score.rfm_r)")?;
                let at = self.pos;
                let n = self.ident("a score name")?;
                if !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    self.pos = at;
                    return Err(
                        self.error(&format!("'{n}': score names are letters, digits and _"))
                    );
                }
                let (op, value) = self.cmp_number(&format!("score.{n}"))?;
                Ok(Cond::Computed { name: n, op, value })
            }
            "sentiment" | "complaints" | "texts" => {
                let func = match word.as_str() {
                    "sentiment" => TextFn::Sentiment,
                    "complaints" => TextFn::Complaints,
                    _ => TextFn::Texts,
                };
                self.expect_op("(", &format!("after {word} ({word}(30d))"))?;
                let window = if self.eat_op(")") {
                    None
                } else {
                    let w = self.window()?;
                    self.expect_op(")", &format!("to close {word}("))?;
                    Some(w)
                };
                let (op, value) = self.cmp_number(&format!("{word}(…)"))?;
                Ok(Cond::Text {
                    func,
                    window,
                    op,
                    value,
                })
            }
            "holds" | "held_days" | "from_brand" => {
                let func = match word.as_str() {
                    "holds" => TokenFn::Holds,
                    "held_days" => TokenFn::HeldDays,
                    _ => TokenFn::FromBrand,
                };
                self.expect_op("(", &format!("after {word} ({word}(\"LOYAL\"))"))?;
                let token = match self.next() {
                    Tok::Str(t) if !t.trim().is_empty() => t,
                    _ => {
                        self.pos -= 1;
                        return Err(
                            self.error("expected a token's symbol or contract address in quotes")
                        );
                    }
                };
                self.expect_op(")", &format!("to close {word}("))?;
                let (op, value) = self.cmp_number(&format!("{word}(…)"))?;
                Ok(Cond::Token {
                    func,
                    token,
                    op,
                    value,
                })
            }
            "loyalty" => {
                self.expect_op(".", "after loyalty (loyalty.points)")?;
                let at = self.pos;
                let n = self.ident("points, pending, expiring or tier")?;
                match n.as_str() {
                    "points" | "pending" => {
                        let (op, value) = self.cmp_number(&format!("loyalty.{n}"))?;
                        let func = if n == "points" {
                            LoyaltyFn::Points
                        } else {
                            LoyaltyFn::Pending
                        };
                        Ok(Cond::Loyalty {
                            func,
                            window: None,
                            op,
                            value,
                        })
                    }
                    "expiring" => {
                        self.expect_op("(", "after loyalty.expiring (loyalty.expiring(30d))")?;
                        let w = self.window()?;
                        self.expect_op(")", "to close loyalty.expiring(")?;
                        let (op, value) = self.cmp_number("loyalty.expiring(…)")?;
                        Ok(Cond::Loyalty {
                            func: LoyaltyFn::Expiring,
                            window: Some(w),
                            op,
                            value,
                        })
                    }
                    "tier" => {
                        let at_op = self.pos;
                        let equal = match self.cmp_op() {
                            Some(CmpOp::Eq) => true,
                            Some(CmpOp::Ne) => false,
                            _ => {
                                self.pos = at_op;
                                return Err(self.error(
                                    "a tier compares with = or != (loyalty.tier = \"gold\")",
                                ));
                            }
                        };
                        match self.next() {
                            Tok::Str(tier) => Ok(Cond::Tier { equal, tier }),
                            _ => {
                                self.pos -= 1;
                                Err(self.error("expected the tier's name in quotes"))
                            }
                        }
                    }
                    _ => {
                        self.pos = at;
                        Err(self.error(&format!(
                            "'{n}' is not a loyalty figure: use points, pending, expiring(30d) or tier"
                        )))
                    }
                }
            }
            "in" => {
                if !self.eat_word("segment") {
                    return Err(self.error("expected 'segment' after in (in segment \"VIP\")"));
                }
                match self.next() {
                    Tok::Str(name) => Ok(Cond::Segment { name }),
                    _ => {
                        self.pos -= 1;
                        Err(self.error("expected the segment's name in quotes"))
                    }
                }
            }
            "consent" => {
                self.expect_op("(", "after consent (consent(email, marketing))")?;
                let channel = self.ident("a channel such as email")?;
                self.expect_op(",", "between channel and purpose")?;
                let purpose = self.ident("a purpose such as marketing")?;
                self.expect_op(")", "to close consent(")?;
                let equal = match self.cmp_op() {
                    Some(CmpOp::Eq) => true,
                    Some(CmpOp::Ne) => false,
                    _ => {
                        self.pos -= usize::from(self.pos > start + 1);
                        return Err(self.error(
                            "a consent compares with = or != (granted, denied or unknown)",
                        ));
                    }
                };
                let at = self.pos;
                let status = self
                    .ident("granted, denied or unknown")?
                    .to_ascii_lowercase();
                if !matches!(status.as_str(), "granted" | "denied" | "unknown") {
                    self.pos = at;
                    return Err(self.error(&format!(
                        "'{status}' is not a consent status: use granted, denied or unknown"
                    )));
                }
                Ok(Cond::Consent {
                    channel: channel.to_ascii_lowercase(),
                    purpose: purpose.to_ascii_lowercase(),
                    equal,
                    status,
                })
            }
            _ => {
                self.pos = start;
                Err(self.error(&format!(
                    "'{word}' does not start a condition: use traits.…, has, count, sum, avg, min, max, days_since, first, last, graph.…, score.…, sentiment, complaints, texts, holds, held_days, from_brand, in segment or consent"
                )))
            }
        }
    }
}

/// Operators are compared as `&'static str`; map a borrowed one to its static twin.
fn leak(o: &str) -> &'static str {
    match o {
        "=" => "=",
        "!=" => "!=",
        "<" => "<",
        "<=" => "<=",
        ">" => ">",
        ">=" => ">=",
        "~" => "~",
        "(" => "(",
        ")" => ")",
        "[" => "[",
        "]" => "]",
        "," => ",",
        _ => ".",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example() {
        let e = parse(
            r#"traits.title ~ "marketing" and count(track "Order Completed", 90d) >= 2 and sum(track "Order Completed".revenue, 365d) > 500 and has wallet on eip155:1 and not consent(email, marketing) = denied"#,
        )
        .unwrap();
        let Expr::And(parts) = e else { panic!() };
        assert_eq!(parts.len(), 5);
        assert_eq!(
            parts[1],
            Expr::Cond(Cond::Agg {
                func: AggFn::Count,
                sel: EventSel {
                    kind: Some("track".into()),
                    name: Some("Order Completed".into()),
                    filters: vec![],
                    slot: None,
                },
                prop: None,
                window: Some(Window {
                    millis: 90 * 86_400_000
                }),
                op: CmpOp::Ge,
                value: 2.0
            })
        );
        assert!(
            matches!(&parts[3], Expr::Cond(Cond::Has { kind: IdKind::Wallet, on: Some(c) }) if c == "eip155:1")
        );
        assert!(matches!(&parts[4], Expr::Not(_)));
    }

    #[test]
    fn parses_loyalty() {
        assert_eq!(
            parse("loyalty.expiring(30d) > 0").unwrap(),
            Expr::Cond(Cond::Loyalty {
                func: LoyaltyFn::Expiring,
                window: Some(Window {
                    millis: 30 * 86_400_000
                }),
                op: CmpOp::Gt,
                value: 0.0
            })
        );
        assert_eq!(
            parse("loyalty.points >= 500").unwrap(),
            Expr::Cond(Cond::Loyalty {
                func: LoyaltyFn::Points,
                window: None,
                op: CmpOp::Ge,
                value: 500.0
            })
        );
        assert_eq!(
            parse("loyalty.pending < 1").unwrap(),
            Expr::Cond(Cond::Loyalty {
                func: LoyaltyFn::Pending,
                window: None,
                op: CmpOp::Lt,
                value: 1.0
            })
        );
        assert_eq!(
            parse(r#"loyalty.tier != "gold""#).unwrap(),
            Expr::Cond(Cond::Tier {
                equal: false,
                tier: "gold".into()
            })
        );
        assert_eq!(
            parse(r#"loyalty.tier = "gold""#).unwrap(),
            Expr::Cond(Cond::Tier {
                equal: true,
                tier: "gold".into()
            })
        );
        for (bad, col, says) in [
            ("loyalty.balance > 1", 9, "not a loyalty figure"),
            (r#"loyalty.tier > "gold""#, 14, "= or !="),
            ("loyalty.tier = gold", 16, "in quotes"),
            ("loyalty.expiring > 1", 18, "("),
            ("loyalty points", 9, "."),
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.column, col, "{bad}: {e}");
            assert!(e.message.contains(says), "{bad}: {e}");
        }
    }

    proptest::proptest! {
        /// Any input parses or is refused with a position inside it; never a panic.
        #[test]
        fn never_panics_and_errors_point_inside(src in "[a-z_\\.\"()\\[\\], =<>!~#0-9dhwy\n-]{0,80}") {
            if let Err(e) = parse(&src) {
                let lines: Vec<&str> = src.split('\n').collect();
                proptest::prop_assert!(e.line >= 1 && e.line <= lines.len(), "{e} in {src:?}");
                proptest::prop_assert!(e.column >= 1 && e.column <= lines[e.line - 1].chars().count() + 1, "{e} in {src:?}");
            }
        }

        /// Real conditions joined at random parse.
        #[test]
        fn valid_definitions_parse(parts in proptest::collection::vec(proptest::sample::select(vec![
            "traits.plan = \"pro\"", "has email", "count(track \"X\", 30d) >= 2", "not texts() > 0",
            "(has wallet or score.rfm_r >= 4)", "consent(email, marketing) != denied",
        ]), 1..6), joins in proptest::collection::vec(proptest::sample::select(vec![" and ", " or "]), 6)) {
            let mut src = String::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    src.push_str(joins[i]);
                }
                src.push_str(p);
            }
            proptest::prop_assert!(parse(&src).is_ok(), "{src}");
        }
    }

    #[test]
    fn hostile_nesting_is_refused_not_a_crash() {
        let deep = format!(
            "{}traits.a exists{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        let e = parse(&deep).expect_err("too deep");
        assert!(e.message.contains("nested more than 64"), "{e}");
        let nots = format!("{}traits.a exists", "not ".repeat(5_000));
        assert!(parse(&nots).is_err());
        let fine = format!("{}traits.a exists{}", "(".repeat(60), ")".repeat(60));
        assert!(parse(&fine).is_ok());
    }

    #[test]
    fn precedence_and_parentheses() {
        let e = parse("traits.a exists or traits.b exists and traits.c exists").unwrap();
        assert!(matches!(e, Expr::Or(ref v) if v.len() == 2 && matches!(v[1], Expr::And(_))));
        let e = parse("(traits.a exists or traits.b exists) and traits.c exists").unwrap();
        assert!(matches!(e, Expr::And(ref v) if matches!(v[0], Expr::Or(_))));
    }

    #[test]
    fn definitions_are_bounded_in_conditions() {
        let many = |n: usize, cond: &str| vec![cond; n].join(" or ");
        assert!(parse(&many(MAX_CONDITIONS, "traits.a exists")).is_ok());
        let e = parse(&many(MAX_CONDITIONS + 1, "traits.a exists")).unwrap_err();
        assert!(e.message.contains("more than 500 conditions"), "{e:?}");
        assert_eq!((e.line, e.column), (1, 1 + 19 * MAX_CONDITIONS));
        assert!(parse(&many(MAX_EVENT_CONDITIONS, r#"count(track "X") > 1"#)).is_ok());
        assert!(parse(&many(MAX_EVENT_CONDITIONS + 1, r#"count(track "X") > 1"#)).is_err());
    }

    #[test]
    fn windows_up_to_a_hundred_years_in_any_unit() {
        for ok in ["100y", "5200w", "36500d", "876000h", "1h"] {
            assert!(
                parse(&format!("count(track \"X\", {ok}) > 1")).is_ok(),
                "{ok}"
            );
        }
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let cases = [
            ("traits.plan = ", 1, 15, "expected a value"),
            (
                "traits.plan = \"pro\"\nand count(track \"X\", 90x) > 1",
                2,
                22,
                "expected a time window",
            ),
            ("has fax", 1, 5, "'fax' is not an identity kind"),
            (
                "traits.a > true",
                1,
                12,
                "true and false compare with = or != only",
            ),
            ("sum(track \"Order\") > 5", 1, 5, "sum needs a property"),
            ("graph.fame > 1", 1, 7, "'fame' is not a network score"),
            (
                "traits.a matches \"(\"",
                1,
                18,
                "not a valid regular expression",
            ),
            ("(traits.a exists", 1, 17, "expected ')'"),
            (
                "count(track \"X\", 36500y) > 1",
                1,
                18,
                "a window is from 1 hour to 100 years",
            ),
            (
                "count(track \"X\", 5300w) > 1",
                1,
                18,
                "a window is from 1 hour to 100 years",
            ),
            (
                "traits.a exists traits.b exists",
                1,
                17,
                "expected 'and', 'or' or the end",
            ),
            ("", 1, 1, "the definition is empty"),
            (
                "consent(email, marketing) = maybe",
                1,
                29,
                "'maybe' is not a consent status",
            ),
            (
                "count(event \"X\") > 1",
                1,
                7,
                "'event' is not an event type",
            ),
            (
                "frobnicate",
                1,
                1,
                "'frobnicate' does not start a condition",
            ),
            ("traits.a = \"open", 1, 12, "not closed"),
        ];
        for (src, line, column, msg) in cases {
            let e = parse(src).expect_err(src);
            assert_eq!((e.line, e.column), (line, column), "{src}: {e}");
            assert!(e.message.contains(msg), "{src}: {e}");
        }
    }

    #[test]
    fn every_condition_kind_parses() {
        for src in [
            r#"traits.plan in ["pro", "team"]"#,
            r#"traits.address.city = "Paris""#,
            r#"traits.bio matches "^(dev|eng)""#,
            "traits.vip = true",
            "has email",
            "has social on x",
            r#"avg(track "Order Completed".revenue where currency = "EUR" and properties.coupon exists, 30d) >= 10.5"#,
            r#"days_since(track "Order Completed") <= 30"#,
            r#"days_since_first(any) > 365"#,
            r#"last(track "Order Completed".currency, 1y) = "EUR""#,
            "graph.pagerank_pct >= 0.9",
            "score.rfm_r >= 4 and score.lead_score > 50",
            "sentiment(30d) < -0.3 and complaints(7d) >= 1 and texts() > 0",
            r#"in segment "VIP""#,
            "consent(email, marketing) != granted",
            "count(page) > 3 # a comment",
        ] {
            parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        }
    }
}
