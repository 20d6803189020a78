//! The dashboard's SQL, the same for both dialects (no parameters: the two timestamps are
//! integers Rapport computes, formatted in).

pub fn events(since: i64) -> String {
    format!(
        "SELECT occurred_at / 86400000 AS d, channel, COUNT(*) FROM events WHERE occurred_at >= {since} GROUP BY d, channel"
    )
}

pub const PEOPLE: &str = "SELECT COUNT(*), COALESCE(SUM(ident), 0), COALESCE(SUM(CASE WHEN w2 = 1 AND w3 = 0 THEN 1 ELSE 0 END), 0),
    COALESCE(SUM(CASE WHEN w3 = 1 AND w2 = 0 THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN w2 = 1 AND w3 = 1 THEN 1 ELSE 0 END), 0)
  FROM (SELECT pr.canonical_id,
          MAX(CASE WHEN i.kind IN ('user_id', 'email', 'phone') THEN 1 ELSE 0 END) AS ident,
          MAX(CASE WHEN i.kind IN ('email', 'phone', 'social') THEN 1 ELSE 0 END) AS w2,
          MAX(CASE WHEN i.kind = 'wallet' THEN 1 ELSE 0 END) AS w3
        FROM identities i JOIN profiles pr ON pr.id = i.profile_id GROUP BY pr.canonical_id) x";

pub fn new_people(week_ago: i64) -> String {
    format!("SELECT COUNT(*) FROM profiles WHERE id = canonical_id AND created_at >= {week_ago}")
}

pub const ALL_PEOPLE: &str = "SELECT COUNT(*) FROM profiles WHERE id = canonical_id";

/// Folds (day, channel, count) rows into the overview's series.
pub fn fold(rows: Vec<(i64, String, i64)>, o: &mut crate::Overview) {
    let mut days = std::collections::BTreeMap::new();
    let mut ch = std::collections::HashMap::new();
    for (d, c, n) in rows {
        *days.entry(d).or_insert(0) += n;
        *ch.entry(c).or_insert(0) += n;
    }
    o.events_per_day = days.into_iter().collect();
    let mut ch: Vec<(String, i64)> = ch.into_iter().collect();
    ch.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    o.channels = ch;
}
