//! The SQL compiler: a definition becomes one boolean expression over a person `p`
//! (a row of `profiles` whose `id` is its `canonical_id`), with every literal a bound
//! parameter. It reads the stores' own tables (profiles, identities, events, consents,
//! graph_scores, text_analyses, segments), so batch sizing needs no copy of the data.
//! Every condition is wrapped so that a missing value is false, never NULL, which keeps
//! `not` two-valued as in the in-memory evaluator (`eval`).

use crate::ast::*;

/// The events the stores write for segment entries and exits (type `track`); PostgreSQL
/// keeps them apart from ingested events (migration postgres/0017).
pub const MEMBERSHIP_EVENTS: [&str; 2] = ["Segment Entered", "Segment Exited"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A bound parameter. PostgreSQL receives every parameter as text and the SQL casts it,
/// so one parameter type serves all.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Int(i64),
    Real(f64),
}

impl Param {
    pub fn as_text(&self) -> String {
        match self {
            Param::Text(s) => s.clone(),
            Param::Int(i) => i.to_string(),
            Param::Real(r) => format!("{r:?}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Compiled {
    /// A boolean SQL expression over `p`.
    pub condition: String,
    pub params: Vec<Param>,
    /// How many conditions read events (each a set computed over the event log): a
    /// store may plan differently when there are several.
    pub event_sets: usize,
}

struct Ctx {
    d: Dialect,
    params: Vec<Param>,
}

impl Ctx {
    fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        let n = self.params.len();
        match (self.d, &self.params[n - 1]) {
            (Dialect::Sqlite, _) => format!("?{n}"),
            (Dialect::Postgres, Param::Text(_)) => format!("(${n}::text)"),
            (Dialect::Postgres, Param::Int(_)) => format!("(${n}::text)::bigint"),
            (Dialect::Postgres, Param::Real(_)) => format!("(${n}::text)::float8"),
        }
    }

    fn falsy(&self) -> &'static str {
        match self.d {
            Dialect::Sqlite => "0",
            Dialect::Postgres => "false",
        }
    }

    fn wrap(&self, e: String) -> String {
        format!("COALESCE(({e}), {})", self.falsy())
    }

    /// JSON type, text value and numeric value of `col` at `path`.
    fn json(&self, col: &str, path: &[String]) -> (String, String, String) {
        match self.d {
            Dialect::Sqlite => {
                let jp = format!("'$.{}'", path.join("."));
                (
                    format!("json_type({col}, {jp})"),
                    format!("json_extract({col}, {jp})"),
                    format!("json_extract({col}, {jp})"),
                )
            }
            Dialect::Postgres => {
                let jp = format!("'{{{}}}'", path.join(","));
                let ty = format!("jsonb_typeof({col} #> {jp})");
                // PostgreSQL may evaluate either side of AND first: cast only numbers.
                let num = format!("(CASE WHEN {ty} = 'number' THEN ({col} #>> {jp})::float8 END)");
                (ty, format!("(({col} #>> {jp}) COLLATE \"C\")"), num)
            }
        }
    }

    fn is_type(&self, ty: &str, lit: &Lit) -> String {
        match (self.d, lit) {
            (Dialect::Sqlite, Lit::Str(_)) => format!("{ty} = 'text'"),
            (Dialect::Sqlite, Lit::Num(_)) => format!("{ty} IN ('integer', 'real')"),
            (Dialect::Sqlite, Lit::Bool(b)) => format!("{ty} = '{b}'"),
            (Dialect::Postgres, Lit::Str(_)) => format!("{ty} = 'string'"),
            (Dialect::Postgres, Lit::Num(_)) => format!("{ty} = 'number'"),
            (Dialect::Postgres, Lit::Bool(_)) => format!("{ty} = 'boolean'"),
        }
    }

    fn lit_eq(&mut self, ty: &str, text: &str, num: &str, lit: &Lit) -> String {
        let t = self.is_type(ty, lit);
        match lit {
            Lit::Str(s) => {
                let b = self.bind(Param::Text(s.clone()));
                format!("({t} AND {text} = {b})")
            }
            Lit::Num(n) => {
                let b = self.bind(Param::Real(*n));
                format!("({t} AND {num} = {b})")
            }
            Lit::Bool(b) => match self.d {
                Dialect::Sqlite => format!("({t})"),
                Dialect::Postgres => format!("({t} AND {text} = '{b}')"),
            },
        }
    }

    /// A test on the JSON value of `col` at `path`.
    fn test(&mut self, col: &str, path: &[String], t: &Test) -> String {
        let (ty, text, num) = self.json(col, path);
        let exists = format!("({ty} IS NOT NULL AND {ty} <> 'null')");
        match t {
            Test::Exists => exists,
            Test::Cmp(CmpOp::Eq, l) => self.lit_eq(&ty, &text, &num, l),
            Test::Cmp(CmpOp::Ne, l) => {
                let eq = self.lit_eq(&ty, &text, &num, l);
                format!("({exists} AND NOT {eq})")
            }
            Test::Cmp(op, l @ Lit::Num(n)) => {
                let ty_ok = self.is_type(&ty, l);
                let b = self.bind(Param::Real(*n));
                format!("({ty_ok} AND {num} {} {b})", op.sql())
            }
            Test::Cmp(op, l @ Lit::Str(s)) => {
                let ty_ok = self.is_type(&ty, l);
                let b = self.bind(Param::Text(s.clone()));
                format!("({ty_ok} AND {text} {} {b})", op.sql())
            }
            Test::Cmp(_, Lit::Bool(_)) => self.falsy().to_string(),
            Test::Contains(s) => {
                let ty_ok = self.is_type(&ty, &Lit::Str(String::new()));
                let b = self.bind(Param::Text(s.to_ascii_lowercase()));
                match self.d {
                    Dialect::Sqlite => format!("({ty_ok} AND instr(lower({text}), {b}) > 0)"),
                    // Under the C collation lower() folds ASCII only, as the evaluator does.
                    Dialect::Postgres => format!("({ty_ok} AND strpos(lower({text}), {b}) > 0)"),
                }
            }
            Test::Regex(r) => {
                let ty_ok = self.is_type(&ty, &Lit::Str(String::new()));
                let b = self.bind(Param::Text(r.clone()));
                match self.d {
                    Dialect::Sqlite => format!("({ty_ok} AND regexp({b}, {text}))"),
                    Dialect::Postgres => format!("({ty_ok} AND {text} ~ {b})"),
                }
            }
            Test::In(items) => {
                // One set test per type (`text IN (…)`): the value is read once, however
                // many literals there are.
                let (mut strs, mut nums, mut parts) = (Vec::new(), Vec::new(), Vec::new());
                for l in items {
                    match l {
                        Lit::Str(s) => strs.push(self.bind(Param::Text(s.clone()))),
                        Lit::Num(n) => nums.push(self.bind(Param::Real(*n))),
                        Lit::Bool(_) => parts.push(self.lit_eq(&ty, &text, &num, l)),
                    }
                }
                if !strs.is_empty() {
                    let t = self.is_type(&ty, &Lit::Str(String::new()));
                    parts.push(format!("({t} AND {text} IN ({}))", strs.join(", ")));
                }
                if !nums.is_empty() {
                    let t = self.is_type(&ty, &Lit::Num(0.0));
                    parts.push(format!("({t} AND {num} IN ({}))", nums.join(", ")));
                }
                if parts.is_empty() {
                    return self.falsy().to_string();
                }
                format!("({})", parts.join(" OR "))
            }
        }
    }

    /// The selector's event name and type tests (events and `event_numbers` alike).
    fn name_and_type(&mut self, sel: &EventSel) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(n) = &sel.name {
            let b = self.bind(Param::Text(n.clone()));
            w.push(format!("e.name = {b}"));
        }
        if let Some(k) = &sel.kind {
            let b = self.bind(Param::Text(k.clone()));
            w.push(format!("e.type = {b}"));
        }
        w
    }

    /// Where a selector's events are read. On PostgreSQL `events` is a view over the
    /// ingested events (`event_rows`) and the membership events' own tables; a selector
    /// that cannot match a membership event reads `event_rows` directly, so the planner
    /// estimates from that table's statistics (through the view it has none for the
    /// grouped columns and guesses 200 people per set).
    fn events_from(&self, sel: &EventSel) -> &'static str {
        let membership = sel.kind.as_deref().is_none_or(|k| k == "track")
            && sel
                .name
                .as_deref()
                .is_none_or(|n| MEMBERSHIP_EVENTS.contains(&n));
        match self.d {
            Dialect::Postgres if !membership => "event_rows e",
            _ => "events e",
        }
    }

    /// The person of a row whose raw profile is `col`, and the join that finds it. On
    /// PostgreSQL through the merged profiles only (a partial index, postgres/0015):
    /// everyone else is their own person, and an inner join hashed all 1M profiles
    /// (0.38 s against 0.11 s for the 200,000 wallets of the benchmark).
    fn person_of(&self, col: &str) -> (String, String) {
        match self.d {
            Dialect::Sqlite => (
                "pr.canonical_id".into(),
                format!("JOIN profiles pr ON pr.id = {col}"),
            ),
            Dialect::Postgres => (
                format!("COALESCE(pr.canonical_id, {col})"),
                format!("LEFT JOIN profiles pr ON pr.id = {col} AND pr.id <> pr.canonical_id"),
            ),
        }
    }

    /// The WHERE clause selecting events (of anyone) for a selector and window.
    fn events_where(&mut self, sel: &EventSel, window: Option<Window>, now: i64) -> String {
        let mut w = self.name_and_type(sel);
        if let Some(win) = window {
            let b = self.bind(Param::Int(now - win.millis));
            w.push(format!("e.occurred_at >= {b}"));
        }
        let b = self.bind(Param::Int(now));
        w.push(format!("e.occurred_at <= {b}"));
        for (path, t) in &sel.filters {
            let c = self.test("e.properties", path, t);
            w.push(self.wrap(c));
        }
        w.join(" AND ")
    }

    /// The WHERE clause selecting a selector's events whose property at `path` is a
    /// number, and that number.
    fn json_numbers(
        &mut self,
        sel: &EventSel,
        path: &[String],
        window: Option<Window>,
        now: i64,
    ) -> (String, String) {
        let wh = self.events_where(sel, window, now);
        let (ty, _, num) = self.json("e.properties", path);
        let ok = self.is_type(&ty, &Lit::Num(0.0));
        (format!("{wh} AND {ok}"), num)
    }

    /// The WHERE clause selecting rows of `event_numbers` for a named selector without
    /// property filters, one top-level property and a window.
    fn numbers_where(
        &mut self,
        sel: &EventSel,
        prop: &str,
        window: Option<Window>,
        now: i64,
    ) -> String {
        let mut w = self.name_and_type(sel);
        let b = self.bind(Param::Text(prop.to_string()));
        w.push(format!("e.prop = {b}"));
        if let Some(win) = window {
            let b = self.bind(Param::Int(now - win.millis));
            w.push(format!("e.occurred_at >= {b}"));
        }
        let b = self.bind(Param::Int(now));
        w.push(format!("e.occurred_at <= {b}"));
        w.join(" AND ")
    }

    fn expr(&mut self, e: &Expr, now: i64) -> String {
        match e {
            Expr::And(v) => {
                // Set conditions first, per-candidate trait tests last: SQLite evaluates
                // the terms in order, so the costly ones see only the survivors.
                let (mut consents, mut rest) = (Vec::new(), Vec::<&Expr>::new());
                for x in v {
                    match outside_consent(x) {
                        Some(c) => consents.push((x, c)),
                        None => rest.push(x),
                    }
                }
                let mut v = rest;
                v.sort_by_key(|x| matches!(x, Expr::Cond(Cond::Trait { .. })));
                let traits = v
                    .iter()
                    .filter(|x| matches!(x, Expr::Cond(Cond::Trait { .. })))
                    .count();
                let mut parts: Vec<String> = v.into_iter().map(|x| self.expr(x, now)).collect();
                // A consent that holds outside a set (`not consent(…) = denied`) never
                // picks the candidates. Once another set does, SQLite reads each
                // candidate's latest consent by index (~2 µs a candidate) instead of
                // ranking every consent on record (0.4–0.6 s at 200,000 consents): the
                // sets that pick candidates are meant to be far smaller than everyone
                // with a consent. PostgreSQL keeps the set (see `Cond::Consent`): its
                // segment queries may run without nested loops, which turns a
                // per-candidate join into a scan per candidate.
                let drives = parts.iter().any(|p| set_query(p).is_some());
                let at = parts.len() - traits;
                for (i, (x, c)) in consents.into_iter().enumerate() {
                    let sql = if drives && self.d == Dialect::Sqlite {
                        self.consent_of_candidate(c)
                    } else {
                        self.expr(x, now)
                    };
                    parts.insert(at + i, sql);
                }
                if self.d == Dialect::Postgres {
                    // PostgreSQL guesses a row or two for every aggregate set, so it ran
                    // the trait tests over everyone before joining the sets. Intersected
                    // into an array first (one InitPlan), the sets pick the candidates
                    // by primary key and the per-person tests see only those.
                    let (mut sets, mut rest) = (Vec::new(), Vec::new());
                    for p in &parts {
                        match set_query(p) {
                            Some(q) => sets.push(format!("({q})")),
                            None => rest.push(p.clone()),
                        }
                    }
                    if !sets.is_empty() && sets.len() + rest.len() >= 2 {
                        rest.insert(
                            0,
                            format!("p.id = ANY(ARRAY({}))", sets.join(" INTERSECT ")),
                        );
                        return balanced(&rest, "AND");
                    }
                }
                balanced(&parts, "AND")
            }
            Expr::Or(v) => {
                // Trait tests of an OR are tested together: equality with values of one
                // trait becomes one set test (`in`), and all share one look at whether
                // the person is several profiles. A long OR of trait tests then costs one
                // pass per person, not a subquery per condition.
                let (traits, others): (Vec<&Expr>, Vec<&Expr>) = v
                    .iter()
                    .partition(|x| matches!(x, Expr::Cond(Cond::Trait { .. })));
                let mut parts: Vec<String> = others.iter().map(|x| self.expr(x, now)).collect();
                if traits.len() > 1 {
                    let tests = merge_equalities(&traits);
                    // Like a single trait test, the merged one may be NULL (a missing
                    // value): wrapped, so `not (…)` keeps the people without the trait.
                    let any = self.traits_any(&tests);
                    parts.push(self.wrap(any));
                } else {
                    parts.extend(traits.iter().map(|x| self.expr(x, now)));
                }
                balanced(&parts, "OR")
            }
            Expr::Not(x) => format!("(NOT {})", self.expr(x, now)),
            // Set conditions are never NULL and stay bare, so the planner can drive the
            // query from them; a trait test may be NULL (missing value) and is wrapped.
            Expr::Cond(c @ Cond::Trait { .. }) => {
                let s = self.cond(c, now);
                self.wrap(s)
            }
            Expr::Cond(c) => self.cond(c, now),
        }
    }

    /// A consent condition tested on the candidate `p` alone: its latest consent on
    /// record (any of its merged profiles) for the channel and purpose, as the set form
    /// ranks them. Never NULL.
    fn consent_of_candidate(&mut self, c: OutsideConsent<'_>) -> String {
        let OutsideConsent {
            channel,
            purpose,
            equal,
            status,
            negated,
        } = c;
        let ch = self.bind(Param::Text(channel.to_string()));
        let pu = self.bind(Param::Text(purpose.to_string()));
        let from = format!(
            "FROM profiles m JOIN consents k ON k.profile_id = m.id
             WHERE m.canonical_id = p.id AND k.channel = {ch} AND k.purpose = {pu}"
        );
        let is = if status == "unknown" {
            format!("NOT EXISTS (SELECT 1 {from})")
        } else {
            let st = self.bind(Param::Text(status.to_string()));
            let falsy = self.falsy();
            format!(
                "COALESCE((SELECT k.status = {st} {from} ORDER BY k.at DESC, k.id DESC LIMIT 1), {falsy})"
            )
        };
        if equal != negated {
            format!("({is})")
        } else {
            format!("(NOT {is})")
        }
    }

    fn real(&self) -> &'static str {
        match self.d {
            Dialect::Sqlite => "REAL",
            Dialect::Postgres => "float8",
        }
    }

    /// Whether any of the trait tests holds for the candidate `p`. A person's value of a
    /// top-level trait is that of the member that set it last (its `trait_times`, else
    /// its `traits_updated_at`), as the merged profile view shows. Most people are one profile: test its traits directly; else
    /// build the person's merged traits once and test those — one subquery however many
    /// tests (one per test made a long OR quadratic on SQLite). Checked per candidate,
    /// after the set conditions narrowed them (see `expr`).
    fn traits_any(&mut self, tests: &[(&[String], Test)]) -> String {
        if let [(path, test)] = tests {
            // One test: ask the member that has the trait directly (cheaper than building
            // the whole merged object).
            let (ty, _, _) = self.json("m.traits", &path[..1]);
            let (_, _, set_at) = self.json("m.trait_times", &path[..1]);
            let direct = self.test("p.traits", path, test);
            let merged = self.test("m.traits", path, test);
            let (direct, merged) = (self.wrap(direct), self.wrap(merged));
            return format!(
                "CASE WHEN NOT EXISTS (SELECT 1 FROM profiles m1 WHERE m1.canonical_id = p.id AND m1.id <> p.id) THEN {direct}
                 ELSE (SELECT {merged} FROM profiles m WHERE m.canonical_id = p.id AND {ty} IS NOT NULL
                       ORDER BY COALESCE({set_at}, m.traits_updated_at) DESC, m.id DESC LIMIT 1) END"
            );
        }
        let mut direct = Vec::with_capacity(tests.len());
        let mut merged = Vec::with_capacity(tests.len());
        for (path, test) in tests {
            let d = self.test("p.traits", path, test);
            direct.push(self.wrap(d));
            let m = self.test("x.t", path, test);
            merged.push(self.wrap(m));
        }
        let person = match self.d {
            // json_each gives primitives as SQL values: each is written back as JSON
            // text of its own type (a JSON true stays true, not 1), and read as JSON by
            // `json()` after the subquery (which drops SQLite's JSON subtype).
            Dialect::Sqlite => {
                "(SELECT json_group_object(k, json(v)) FROM (
                    SELECT j.key AS k,
                           CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
                                       WHEN 'null' THEN 'null' WHEN 'text' THEN json_quote(j.value)
                                       ELSE j.value END AS v,
                           row_number() OVER (PARTITION BY j.key ORDER BY
                               COALESCE((SELECT tt.value FROM json_each(m.trait_times) tt WHERE tt.key = j.key), m.traits_updated_at) DESC,
                               m.id DESC) AS r
                    FROM profiles m, json_each(m.traits) j WHERE m.canonical_id = p.id) WHERE r = 1)"
            }
            Dialect::Postgres => {
                "(SELECT jsonb_object_agg(k, v) FROM (
                    SELECT DISTINCT ON (j.key) j.key AS k, j.value AS v
                    FROM profiles m, jsonb_each(m.traits) j WHERE m.canonical_id = p.id
                    ORDER BY j.key, COALESCE((m.trait_times ->> j.key)::bigint, m.traits_updated_at) DESC, m.id DESC) s)"
            }
        };
        format!(
            "CASE WHEN NOT EXISTS (SELECT 1 FROM profiles m1 WHERE m1.canonical_id = p.id AND m1.id <> p.id) THEN ({})
             ELSE (SELECT {} FROM (SELECT {person} AS t) x) END",
            balanced(&direct, "OR"),
            balanced(&merged, "OR")
        )
    }

    /// A comparison of an aggregate that is 0 for people with no rows (counts, sums):
    /// when 0 passes, the people are everyone but those whose groups fail.
    fn zero_aware(&mut self, groups: &str, agg: &str, op: CmpOp, value: f64) -> String {
        let v = self.bind(Param::Real(value));
        if op.holds(0.0, value) {
            format!("p.id NOT IN ({groups} HAVING NOT ({agg} {} {v}))", op.sql())
        } else {
            format!("p.id IN ({groups} HAVING {agg} {} {v})", op.sql())
        }
    }

    /// Every condition is a set of people (canonical ids), computed once per query
    /// rather than per person: `p.id IN (…)` or its complement. Sets never hold NULL,
    /// so the result is always true or false.
    fn cond(&mut self, c: &Cond, now: i64) -> String {
        match c {
            Cond::Trait { path, test } => self.traits_any(&[(path.as_slice(), test.clone())]),
            Cond::Has { kind, on } => {
                let k = self.bind(Param::Text(kind.as_str().to_string()));
                let (person, join) = self.person_of("i.profile_id");
                let mut s =
                    format!("p.id IN (SELECT {person} FROM identities i {join} WHERE i.kind = {k}");
                if let Some(o) = on {
                    let prefix = format!("{o}:");
                    let n = prefix.chars().count();
                    let b = self.bind(Param::Text(prefix));
                    s.push_str(&format!(" AND substr(i.value, 1, {n}) = {b}"));
                }
                s.push(')');
                s
            }
            Cond::Agg {
                func,
                sel,
                prop,
                window,
                op,
                value,
            } => {
                let real = self.real();
                // Per raw profile first (the index order), then per person; only the
                // aggregate asked for is computed.
                let inner_agg = |inner: &str| match func {
                    AggFn::Count => "COUNT(*) AS v".to_string(),
                    AggFn::Sum => format!("SUM({inner}) AS v"),
                    AggFn::Avg => format!("SUM({inner}) AS v, COUNT(*) AS n"),
                    AggFn::Min => format!("MIN({inner}) AS v"),
                    AggFn::Max => format!("MAX({inner}) AS v"),
                };
                let per_profile = |from: &str, wh: &str, agg: String| {
                    format!("SELECT e.profile_id AS pid, {agg} FROM {from} WHERE {wh} GROUP BY e.profile_id")
                };
                // A top-level number of a named event without property filters is read
                // from `event_numbers`, not the JSON.
                let numbers = match (prop, &sel.name) {
                    (Some(path), Some(_)) if path.len() == 1 && sel.filters.is_empty() => {
                        Some(path[0].clone())
                    }
                    _ => None,
                };
                let parts = match (prop, numbers) {
                    (Some(path), Some(key)) => {
                        let wh = self.numbers_where(sel, &key, *window, now);
                        let mut parts =
                            vec![per_profile("event_numbers e", &wh, inner_agg("e.value"))];
                        if self.d == Dialect::Sqlite {
                            // SQLite fills the table after the fact (`index_event_numbers`):
                            // the events past its position are read from their JSON, by
                            // rowid, so the answer is exact however far behind it is.
                            let (wh, num) = self.json_numbers(sel, path, *window, now);
                            parts.push(per_profile(
                                "events e NOT INDEXED",
                                &format!("e.id > IFNULL((SELECT value FROM counters WHERE name = 'event_numbers'), 0) AND {wh}"),
                                inner_agg(&num),
                            ));
                        }
                        parts
                    }
                    (Some(path), None) => {
                        let (wh, num) = self.json_numbers(sel, path, *window, now);
                        vec![per_profile(self.events_from(sel), &wh, inner_agg(&num))]
                    }
                    (None, _) => {
                        let wh = self.events_where(sel, *window, now);
                        vec![per_profile(self.events_from(sel), &wh, inner_agg("NULL"))]
                    }
                };
                let parts = parts.join(" UNION ALL ");
                let (person, join) = self.person_of("g.pid");
                let groups = format!("SELECT {person} FROM ({parts}) g {join} GROUP BY {person}");
                match func {
                    AggFn::Count | AggFn::Sum => self.zero_aware(&groups, "SUM(g.v)", *op, *value),
                    f => {
                        let agg = match f {
                            AggFn::Avg => format!("CAST(SUM(g.v) AS {real}) / SUM(g.n)"),
                            AggFn::Min => "MIN(g.v)".to_string(),
                            _ => "MAX(g.v)".to_string(),
                        };
                        let v = self.bind(Param::Real(*value));
                        format!("p.id IN ({groups} HAVING {agg} {} {v})", op.sql())
                    }
                }
            }
            Cond::Recency {
                first,
                sel,
                op,
                value,
            } => {
                let wh = self.events_where(sel, None, now);
                let f = if *first { "MIN" } else { "MAX" };
                let n = self.bind(Param::Int(now));
                let v = self.bind(Param::Real(*value));
                let real = self.real();
                let from = self.events_from(sel);
                let (person, join) = self.person_of("e.profile_id");
                format!(
                    "p.id IN (SELECT {person} FROM {from} {join} WHERE {wh}
                     GROUP BY {person} HAVING CAST({n} - {f}(e.occurred_at) AS {real}) / 86400000.0 {} {v})",
                    op.sql()
                )
            }
            Cond::Value {
                first,
                sel,
                prop,
                window,
                test,
            } => {
                let wh = self.events_where(sel, *window, now);
                let t = self.test("x.properties", prop, test);
                let dir = if *first { "ASC" } else { "DESC" };
                let from = self.events_from(sel);
                let (person, join) = self.person_of("e.profile_id");
                format!(
                    "p.id IN (SELECT x.c FROM (SELECT {person} AS c, e.properties AS properties,
                        ROW_NUMBER() OVER (PARTITION BY {person} ORDER BY e.occurred_at {dir}, e.id {dir}) AS rn
                        FROM {from} {join} WHERE {wh}) x WHERE x.rn = 1 AND {})",
                    self.wrap(t)
                )
            }
            Cond::Score { name, op, value } => {
                let v = self.bind(Param::Real(*value));
                format!(
                    "p.id IN (SELECT g.profile_id FROM graph_scores g WHERE g.{} {} {v})",
                    name.column(),
                    op.sql()
                )
            }
            Cond::Computed { name, op, value } => {
                // No stored value counts as 0.
                let n = self.bind(Param::Text(name.clone()));
                let v = self.bind(Param::Real(*value));
                if op.holds(0.0, *value) {
                    format!(
                        "p.id NOT IN (SELECT s.profile_id FROM profile_scores s WHERE s.name = {n} AND NOT (s.value {} {v}))",
                        op.sql()
                    )
                } else {
                    format!(
                        "p.id IN (SELECT s.profile_id FROM profile_scores s WHERE s.name = {n} AND s.value {} {v})",
                        op.sql()
                    )
                }
            }
            Cond::Text {
                func,
                window,
                op,
                value,
            } => {
                let mut wh = String::new();
                if let Some(w) = window {
                    let b = self.bind(Param::Int(now - w.millis));
                    wh.push_str(&format!(" AND t.occurred_at >= {b}"));
                }
                let b = self.bind(Param::Int(now));
                wh.push_str(&format!(" AND t.occurred_at <= {b}"));
                if *func == TextFn::Complaints {
                    wh.push_str(" AND t.complaint >= 0.5");
                }
                let (person, join) = self.person_of("t.profile_id");
                let groups = format!(
                    "SELECT {person} FROM text_analyses t {join} WHERE 1 = 1{wh} GROUP BY {person}"
                );
                match func {
                    TextFn::Sentiment => {
                        let v = self.bind(Param::Real(*value));
                        format!("p.id IN ({groups} HAVING AVG(t.compound) {} {v})", op.sql())
                    }
                    _ => self.zero_aware(&groups, "COUNT(*)", *op, *value),
                }
            }
            Cond::Token {
                func,
                token,
                op,
                value,
            } => {
                let sym = self.bind(Param::Text(token.clone()));
                let addr = self.bind(Param::Text(token.to_ascii_lowercase()));
                let held = if *func == TokenFn::HeldDays {
                    " AND h.held_since IS NOT NULL"
                } else {
                    ""
                };
                // Holdings are per wallet; a person's wallets are their identities.
                let (person, join) = self.person_of("i.profile_id");
                let groups = format!(
                    "SELECT {person} FROM holdings h JOIN identities i ON i.kind = 'wallet' AND i.value = h.wallet
                     {join} WHERE (h.symbol = {sym} OR lower(h.contract) = {addr}){held}
                     GROUP BY {person}"
                );
                match func {
                    TokenFn::Holds => self.zero_aware(&groups, "SUM(h.amount)", *op, *value),
                    TokenFn::FromBrand => {
                        self.zero_aware(&groups, "SUM(h.from_brand_amount)", *op, *value)
                    }
                    TokenFn::HeldDays => {
                        let n = self.bind(Param::Int(now));
                        let v = self.bind(Param::Real(*value));
                        let real = self.real();
                        format!(
                            "p.id IN ({groups} HAVING CAST({n} - MIN(h.held_since) AS {real}) / 86400000.0 {} {v})",
                            op.sql()
                        )
                    }
                }
            }
            Cond::Loyalty {
                func,
                window,
                op,
                value,
            } => {
                // Lots past their expiry count for nothing, written off or not.
                let n = self.bind(Param::Int(now));
                let when = match func {
                    LoyaltyFn::Points => format!("l.unlock_at <= {n}"),
                    LoyaltyFn::Pending => format!("l.unlock_at > {n}"),
                    LoyaltyFn::Expiring => {
                        let until = self.bind(Param::Int(
                            now.saturating_add(window.map_or(0, |w| w.millis)),
                        ));
                        format!("l.expires_at <= {until}")
                    }
                };
                let (person, join) = self.person_of("l.profile_id");
                let groups = format!(
                    "SELECT {person} FROM loyalty_lots l {join}
                     WHERE l.remaining > 0 AND (l.expires_at IS NULL OR l.expires_at > {n}) AND {when}
                     GROUP BY {person}"
                );
                self.zero_aware(&groups, "SUM(l.remaining)", *op, *value)
            }
            Cond::Tier { equal, tier } => {
                // A person's tier is kept on their own (canonical) profile.
                let b = self.bind(Param::Text(tier.clone()));
                let set = format!("SELECT t.profile_id FROM loyalty_tiers t WHERE t.tier = {b}");
                if *equal {
                    format!("p.id IN ({set})")
                } else {
                    format!("p.id NOT IN ({set})")
                }
            }
            Cond::Segment { name } => {
                let b = self.bind(Param::Text(name.clone()));
                format!(
                    "p.id IN (SELECT sm.profile_id FROM segment_members sm JOIN segments s ON s.id = sm.segment_id WHERE s.name = {b})"
                )
            }
            Cond::Consent {
                channel,
                purpose,
                equal,
                status,
            } => {
                let c = self.bind(Param::Text(channel.clone()));
                let pu = self.bind(Param::Text(purpose.clone()));
                let (person, join) = self.person_of("k.profile_id");
                let latest = format!(
                    "SELECT x.c FROM (SELECT {person} AS c, k.status AS st,
                        ROW_NUMBER() OVER (PARTITION BY {person} ORDER BY k.at DESC, k.id DESC) AS rn
                        FROM consents k {join} WHERE k.channel = {c} AND k.purpose = {pu}) x WHERE x.rn = 1"
                );
                // `unknown` is having no consent on record for that channel and purpose.
                let (set, inside) = if status == "unknown" {
                    (latest, !*equal)
                } else {
                    let s = self.bind(Param::Text(status.clone()));
                    (format!("{latest} AND x.st = {s}"), *equal)
                };
                if inside {
                    format!("p.id IN ({set})")
                } else {
                    format!("p.id NOT IN ({set})")
                }
            }
        }
    }
}

/// A consent condition, bare or under one `not` (`negated`), that holds for the people
/// outside a set: it compiles to `p.id NOT IN (…)`.
#[derive(Clone, Copy)]
struct OutsideConsent<'a> {
    channel: &'a str,
    purpose: &'a str,
    equal: bool,
    status: &'a str,
    negated: bool,
}

fn outside_consent(e: &Expr) -> Option<OutsideConsent<'_>> {
    let (c, negated) = match e {
        Expr::Cond(c) => (c, false),
        Expr::Not(x) => match x.as_ref() {
            Expr::Cond(c) => (c, true),
            _ => return None,
        },
        _ => return None,
    };
    let Cond::Consent {
        channel,
        purpose,
        equal,
        status,
    } = c
    else {
        return None;
    };
    // The set form tests membership in a set of latest consents: `= unknown` is being
    // outside the set of everyone with one.
    let inside = if status == "unknown" { !*equal } else { *equal };
    (inside == negated).then_some(OutsideConsent {
        channel,
        purpose,
        equal: *equal,
        status,
        negated,
    })
}

/// The subquery of a compiled set condition `p.id IN (<subquery>)`, whole: the
/// parenthesis opened after `IN` must close at the very end (literals are bound
/// parameters, so no quoted parenthesis can fool the count).
fn set_query(cond: &str) -> Option<&str> {
    let inner = cond.strip_prefix("p.id IN (")?.strip_suffix(')')?;
    let mut depth = 0i32;
    for c in inner.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            _ => {}
        }
    }
    (depth == 0).then_some(inner)
}

/// Compiles a definition for `dialect`, with windows reaching back from `now` (ms).
/// `parts` joined by `op` as a balanced tree of parentheses: SQLite refuses expressions
/// nested more than 1,000 deep, which a long left-leaning `a OR b OR …` reaches.
fn balanced(parts: &[String], op: &str) -> String {
    match parts {
        [] if op == "AND" => String::from("(1 = 1)"),
        [] => String::from("(1 = 0)"),
        [one] => format!("({one})"),
        _ if parts.len() <= 8 => format!("({})", parts.join(&format!(" {op} "))),
        _ => {
            let (a, b) = parts.split_at(parts.len() / 2);
            format!("({} {op} {})", balanced(a, op), balanced(b, op))
        }
    }
}

/// Trait tests of an OR, with equalities on one trait (`= v` and `in [...]`) merged into
/// one `in` test per trait, in first-seen order; other tests as they are.
fn merge_equalities<'a>(conds: &[&'a Expr]) -> Vec<(&'a [String], Test)> {
    let mut out: Vec<(&'a [String], Test)> = Vec::new();
    for c in conds {
        let Expr::Cond(Cond::Trait { path, test }) = c else {
            continue;
        };
        let values: Option<Vec<Lit>> = match test {
            Test::Cmp(CmpOp::Eq, l) => Some(vec![l.clone()]),
            Test::In(items) => Some(items.clone()),
            _ => None,
        };
        let merged = values.and_then(|vals| {
            let (_, Test::In(items)) = out
                .iter_mut()
                .find(|(p, t)| *p == path.as_slice() && matches!(t, Test::In(_)))?
            else {
                return None;
            };
            items.extend(vals);
            Some(())
        });
        if merged.is_none() {
            let test = match test {
                Test::Cmp(CmpOp::Eq, l) => Test::In(vec![l.clone()]),
                t => t.clone(),
            };
            out.push((path.as_slice(), test));
        }
    }
    out
}

pub fn compile(e: &Expr, dialect: Dialect, now: i64) -> Compiled {
    let mut ctx = Ctx {
        d: dialect,
        params: Vec::new(),
    };
    let condition = ctx.expr(e, now);
    Compiled {
        condition,
        params: ctx.params,
        event_sets: event_sets(e),
    }
}

fn event_sets(e: &Expr) -> usize {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().map(event_sets).sum(),
        Expr::Not(x) => event_sets(x),
        Expr::Cond(Cond::Agg { .. } | Cond::Recency { .. } | Cond::Value { .. }) => 1,
        Expr::Cond(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    #[test]
    fn set_queries_are_whole_subqueries() {
        assert_eq!(set_query("p.id IN (SELECT 1)"), Some("SELECT 1"));
        assert_eq!(
            set_query("p.id IN (SELECT a FROM (SELECT 1) g)"),
            Some("SELECT a FROM (SELECT 1) g")
        );
        assert_eq!(set_query("p.id IN (SELECT 1) AND p.id IN (SELECT 2)"), None);
        assert_eq!(set_query("p.id NOT IN (SELECT 1)"), None);
        assert_eq!(set_query("(p.id IN (SELECT 1))"), None);
    }

    /// On PostgreSQL, selectors that cannot match a membership event skip the view.
    #[test]
    fn only_membership_selectors_read_the_view_on_postgres() {
        for (def, view) in [
            (r#"count(track "Order Completed") >= 1"#, false),
            (r#"days_since(page "Pricing") <= 3"#, false),
            (r#"last(page "Pricing".plan) = "pro""#, false),
            (r#"last(track "Segment Entered".segment) = "VIP""#, true),
            (r#"count(track "Segment Entered") >= 1"#, true),
            (r#"days_since(track "Segment Exited") <= 3"#, true),
            ("count(track, 30d) >= 1", true),
        ] {
            let e = parse(def).unwrap();
            let pg = compile(&e, Dialect::Postgres, 0).condition;
            assert_eq!(pg.contains("FROM events e"), view, "{def}: {pg}");
            assert_eq!(pg.contains("FROM event_rows e"), !view, "{def}: {pg}");
            let lite = compile(&e, Dialect::Sqlite, 0).condition;
            assert!(!lite.contains("event_rows"), "{def}: {lite}");
        }
    }

    /// A consent that holds outside a set is tested per candidate on SQLite once another
    /// set picks the candidates; alone, when it could pick them itself, or on
    /// PostgreSQL, it stays a set.
    #[test]
    fn consents_outside_a_set_are_tested_per_candidate_behind_a_driver() {
        let per_candidate = "ORDER BY k.at DESC, k.id DESC LIMIT 1";
        for (def, tested) in [
            ("has email and not consent(email, marketing) = denied", true),
            ("has email and consent(email, marketing) != denied", true),
            ("has email and consent(email, marketing) = unknown", true),
            ("has email and consent(email, marketing) = granted", false),
            ("not consent(email, marketing) = denied", false),
            (
                r#"traits.plan = "pro" and not consent(email, marketing) = denied"#,
                false,
            ),
        ] {
            let e = parse(def).unwrap();
            for d in [Dialect::Sqlite, Dialect::Postgres] {
                let tested = tested && d == Dialect::Sqlite;
                let c = compile(&e, d, 0);
                let per = c.condition.contains(per_candidate)
                    || c.condition
                        .contains("NOT EXISTS (SELECT 1 FROM profiles m JOIN consents");
                assert_eq!(per, tested, "{def}: {}", c.condition);
                assert_eq!(!c.condition.contains("ROW_NUMBER"), tested, "{def}");
                // Every bound parameter is used (the stores refuse a mismatch).
                let n = c.params.len();
                let mark = |i: usize| match d {
                    Dialect::Sqlite => format!("?{i}"),
                    Dialect::Postgres => format!("${i}::"),
                };
                assert!(c.condition.contains(&mark(n)), "{def}: {}", c.condition);
                assert!(!c.condition.contains(&mark(n + 1)), "{def}");
            }
        }
    }

    #[test]
    fn literals_are_parameters_not_sql() {
        let e = parse(r#"traits.name = "x'); DROP TABLE profiles; --""#).unwrap();
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            let c = compile(&e, d, 0);
            assert!(!c.condition.contains("DROP"), "{}", c.condition);
            assert_eq!(
                c.params[0],
                Param::Text("x'); DROP TABLE profiles; --".into())
            );
        }
    }
}
