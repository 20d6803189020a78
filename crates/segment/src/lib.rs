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
