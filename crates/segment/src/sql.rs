//! The SQL compiler: a definition becomes one boolean expression over a person `p`
//! (a row of `profiles` whose `id` is its `canonical_id`), with every literal a bound
//! parameter. It reads the stores' own tables (profiles, identities, events, consents,
//! graph_scores, text_analyses, segments), so batch sizing needs no copy of the data.
//! Every condition is wrapped so that a missing value is false, never NULL, which keeps
//! `not` two-valued as in the in-memory evaluator (`eval`).

use crate::ast::*;

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
}

struct Ctx {
    d: Dialect,
    params: Vec<Param>,
}

const MEMBERS: &str = "(SELECT m0.id FROM profiles m0 WHERE m0.canonical_id = p.id)";

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
                let parts: Vec<String> = items
                    .iter()
                    .map(|l| self.lit_eq(&ty, &text, &num, l))
                    .collect();
                format!("({})", parts.join(" OR "))
            }
        }
    }

    /// The WHERE clause selecting a person's events.
    fn events_where(&mut self, sel: &EventSel, window: Option<Window>, now: i64) -> String {
        let mut w = vec![format!("e.profile_id IN {MEMBERS}")];
        if let Some(k) = &sel.kind {
            let b = self.bind(Param::Text(k.clone()));
            w.push(format!("e.type = {b}"));
        }
        if let Some(n) = &sel.name {
            let b = self.bind(Param::Text(n.clone()));
            w.push(format!("e.name = {b}"));
        }
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

    fn expr(&mut self, e: &Expr, now: i64) -> String {
        match e {
            Expr::And(v) => {
                let parts: Vec<String> = v.iter().map(|x| self.expr(x, now)).collect();
                format!("({})", parts.join(" AND "))
            }
            Expr::Or(v) => {
                let parts: Vec<String> = v.iter().map(|x| self.expr(x, now)).collect();
                format!("({})", parts.join(" OR "))
            }
            Expr::Not(x) => format!("(NOT {})", self.expr(x, now)),
            Expr::Cond(c) => {
                let s = self.cond(c, now);
                self.wrap(s)
            }
        }
    }

    fn cond(&mut self, c: &Cond, now: i64) -> String {
        match c {
            Cond::Trait { path, test } => {
                // The person's value of a top-level trait is the most recently updated
                // member's that has it (as the merged profile view shows).
                let top = &path[..1];
                let (ty, _, _) = self.json("m.traits", top);
                let t = self.test("m.traits", path, test);
                format!(
                    "SELECT {t} FROM profiles m WHERE m.canonical_id = p.id AND {ty} IS NOT NULL
                     ORDER BY m.traits_updated_at DESC, m.id DESC LIMIT 1"
                )
            }
            Cond::Has { kind, on } => {
                let k = self.bind(Param::Text(kind.as_str().to_string()));
                let mut s = format!(
                    "EXISTS (SELECT 1 FROM identities i WHERE i.profile_id IN {MEMBERS} AND i.kind = {k}"
                );
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
                let wh = self.events_where(sel, *window, now);
                let agg = match (func, prop) {
                    (AggFn::Count, _) => format!("SELECT COUNT(*) FROM events e WHERE {wh}"),
                    (_, Some(path)) => {
                        let (ty, _, num) = self.json("e.properties", path);
                        let ty_ok = self.is_type(&ty, &Lit::Num(0.0));
                        let f = match func {
                            AggFn::Sum => "SUM",
                            AggFn::Avg => "AVG",
                            AggFn::Min => "MIN",
                            _ => "MAX",
                        };
                        let inner =
                            format!("SELECT {f}({num}) FROM events e WHERE {wh} AND {ty_ok}");
                        if *func == AggFn::Sum {
                            format!("COALESCE(({inner}), 0)")
                        } else {
                            inner
                        }
                    }
                    _ => "SELECT NULL".to_string(),
                };
                let v = self.bind(Param::Real(*value));
                format!("({agg}) {} {v}", op.sql())
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
                let real = match self.d {
                    Dialect::Sqlite => "REAL",
                    Dialect::Postgres => "float8",
                };
                format!(
                    "CAST({n} - (SELECT {f}(e.occurred_at) FROM events e WHERE {wh}) AS {real}) / 86400000.0 {} {v}",
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
                let t = self.test("e.properties", prop, test);
                let dir = if *first { "ASC" } else { "DESC" };
                format!(
                    "SELECT {t} FROM events e WHERE {wh} ORDER BY e.occurred_at {dir}, e.id {dir} LIMIT 1"
                )
            }
            Cond::Score { name, op, value } => {
                let v = self.bind(Param::Real(*value));
                format!(
                    "(SELECT g.{} FROM graph_scores g WHERE g.profile_id = p.id) {} {v}",
                    name.column(),
                    op.sql()
                )
            }
            Cond::Text {
                func,
                window,
                op,
                value,
            } => {
                let mut wh = format!("t.profile_id IN {MEMBERS}");
                if let Some(w) = window {
                    let b = self.bind(Param::Int(now - w.millis));
                    wh.push_str(&format!(" AND t.occurred_at >= {b}"));
                }
                let b = self.bind(Param::Int(now));
                wh.push_str(&format!(" AND t.occurred_at <= {b}"));
                let agg = match func {
                    TextFn::Sentiment => "AVG(t.compound)",
                    TextFn::Texts => "COUNT(*)",
                    TextFn::Complaints => "COUNT(*)",
                };
                if *func == TextFn::Complaints {
                    wh.push_str(" AND t.complaint >= 0.5");
                }
                let v = self.bind(Param::Real(*value));
                format!(
                    "(SELECT {agg} FROM text_analyses t WHERE {wh}) {} {v}",
                    op.sql()
                )
            }
            Cond::Segment { name } => {
                let b = self.bind(Param::Text(name.clone()));
                format!(
                    "EXISTS (SELECT 1 FROM segment_members sm JOIN segments s ON s.id = sm.segment_id WHERE s.name = {b} AND sm.profile_id = p.id)"
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
                let s = self.bind(Param::Text(status.clone()));
                let op = if *equal { "=" } else { "<>" };
                format!(
                    "COALESCE((SELECT c.status FROM consents c WHERE c.profile_id IN {MEMBERS} AND c.channel = {c} AND c.purpose = {pu}
                     ORDER BY c.at DESC, c.id DESC LIMIT 1), 'unknown') {op} {s}"
                )
            }
        }
    }
}

/// Compiles a definition for `dialect`, with windows reaching back from `now` (ms).
pub fn compile(e: &Expr, dialect: Dialect, now: i64) -> Compiled {
    let mut ctx = Ctx {
        d: dialect,
        params: Vec::new(),
    };
    let condition = ctx.expr(e, now);
    Compiled {
        condition,
        params: ctx.params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

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
