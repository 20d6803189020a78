//! The segment language (docs/segments.md): a definition a marketer reads and writes,
//! parsed once into one tree ([`ast`]) with two evaluators of one meaning — in memory
//! against one person's live state ([`eval`]) and compiled to SQL for the stores
//! ([`sql`]). Pure, no I/O.

pub mod ast;
pub mod eval;
pub mod micro;
pub mod parser;
pub mod sql;

pub use ast::Expr;
pub use parser::{parse, parse_selector, SegmentError};

/// Names of the segments a definition refers to (`in segment "…"`).
pub fn referenced_segments(e: &Expr) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(e: &Expr, out: &mut Vec<String>) {
        match e {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| walk(x, out)),
            Expr::Not(x) => walk(x, out),
            Expr::Cond(ast::Cond::Segment { name }) => {
                if !out.contains(name) {
                    out.push(name.clone())
                }
            }
            Expr::Cond(_) => {}
        }
    }
    walk(e, &mut out);
    out
}

/// The event selectors a definition reads (aggregates, recency, first/last values): an
/// event none of them matches cannot change the definition's answer, except through time.
pub fn referenced_selectors(e: &Expr) -> Vec<&ast::EventSel> {
    let mut out = Vec::new();
    fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a ast::EventSel>) {
        match e {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| walk(x, out)),
            Expr::Not(x) => walk(x, out),
            Expr::Cond(
                ast::Cond::Agg { sel, .. }
                | ast::Cond::Recency { sel, .. }
                | ast::Cond::Value { sel, .. },
            ) => {
                if !out.contains(&sel) {
                    out.push(sel)
                }
            }
            Expr::Cond(_) => {}
        }
    }
    walk(e, &mut out);
    out
}

/// Gives every event selector in `e` a slot in `table` (equal selectors share one), so an
/// evaluator with a person's [`eval::EventIndex`] reads matching events directly.
pub fn assign_slots(e: &mut Expr, table: &mut Vec<ast::EventSel>) {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter_mut().for_each(|x| assign_slots(x, table)),
        Expr::Not(x) => assign_slots(x, table),
        Expr::Cond(
            ast::Cond::Agg { sel, .. }
            | ast::Cond::Recency { sel, .. }
            | ast::Cond::Value { sel, .. },
        ) => {
            let slot = match table.iter().position(|t| t == sel) {
                Some(i) => i,
                None => {
                    table.push(sel.clone());
                    table.len() - 1
                }
            };
            sel.slot = Some(slot as u32);
        }
        Expr::Cond(_) => {}
    }
}
