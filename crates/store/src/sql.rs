//! SQL both backends run unchanged, written once with PostgreSQL's `$1, $2, …`
//! placeholders, by capability. SQLite reads `$N` as a named parameter numbered by first
//! appearance, so each statement here must use `$1…$N` in ascending order of first use:
//! `tests::sqlite_numbers_every_placeholder_as_written` holds every statement to that.
//! Statements whose text differs between the stores stay in the backend's own file.

pub(crate) mod chain {
    pub(crate) const DELETE_CHAIN: &str = "DELETE FROM chains WHERE id = $1";
    pub(crate) const CONTRACTS: &str = "SELECT chain_id, address, standard, symbol, name, decimals, brand_owned, created_at FROM chain_contracts ORDER BY chain_id, symbol";
    pub(crate) const UPSERT_CONTRACT: &str = "INSERT INTO chain_contracts (chain_id, address, standard, symbol, name, decimals, brand_owned, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (chain_id, address) DO UPDATE SET standard = excluded.standard, symbol = excluded.symbol,
               name = excluded.name, decimals = excluded.decimals, brand_owned = excluded.brand_owned";
    pub(crate) const CHAIN_BLOCKS: &str =
        "SELECT number, hash FROM chain_blocks WHERE chain_id = $1 ORDER BY number DESC LIMIT $2";
    pub(crate) const FORGET_OLD_BLOCKS: &str =
        "DELETE FROM chain_blocks WHERE chain_id = $1 AND number < $2";
    pub(crate) const FORGET_BLOCKS_AFTER: &str =
        "DELETE FROM chain_blocks WHERE chain_id = $1 AND number > $2";
    pub(crate) const INSERT_NONCE: &str =
        "INSERT INTO siwe_nonces (nonce, created_at, expires_at) VALUES ($1, $2, $3)";
    pub(crate) const DELETE_EXPIRED_NONCES: &str = "DELETE FROM siwe_nonces WHERE expires_at < $1";
    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        DELETE_CHAIN,
        CONTRACTS,
        UPSERT_CONTRACT,
        CHAIN_BLOCKS,
        FORGET_OLD_BLOCKS,
        FORGET_BLOCKS_AFTER,
        INSERT_NONCE,
        DELETE_EXPIRED_NONCES,
    ];
}

pub(crate) mod community {
    pub(crate) const COLS: &str = "id, kind, parent_id, profile_id, staff, title, body, status, accepted_id, score, hidden, locked, official, flag, duplicate_of, created_at, updated_at";
    pub(crate) const POST: &str = "SELECT id, kind, parent_id, profile_id, staff, title, body, status, accepted_id, score, hidden, locked, official, flag, duplicate_of, created_at, updated_at FROM posts WHERE id = $1";
    pub(crate) const INSERT_POST: &str = "INSERT INTO posts (kind, parent_id, profile_id, staff, title, body, status, hidden, flag, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    /// A question or idea is its own topic; an answer's is its question; a comment's is
    /// its parent's.
    pub(crate) const SET_TOPIC: &str = "UPDATE posts SET topic_id = CASE WHEN kind IN ('question', 'idea') THEN id
             ELSE (SELECT COALESCE(x.topic_id, x.id) FROM posts x WHERE x.id = posts.parent_id) END WHERE id = $1";
    /// Imported posts: a question or idea is its own topic, an answer its parent's.
    pub(crate) const SET_IMPORTED_TOPICS: &str = "UPDATE posts SET topic_id = CASE WHEN kind IN ('question', 'idea') THEN id ELSE parent_id END
             WHERE topic_id IS NULL";
    pub(crate) const SAVE_POST: &str = "UPDATE posts SET title = $1, body = $2, status = $3, accepted_id = $4, hidden = $5, locked = $6,
             official = $7, flag = $8, duplicate_of = $9, updated_at = $10, parent_id = $11 WHERE id = $12";
    pub(crate) const RESCORE: &str = "UPDATE posts SET score = (SELECT COALESCE(SUM(value), 0) FROM post_votes WHERE post_id = $1) WHERE id = $1";
    pub(crate) const UPSERT_VOTE: &str = "INSERT INTO post_votes (post_id, profile_id, value, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (post_id, profile_id) DO UPDATE SET value = excluded.value, at = excluded.at";
    pub(crate) const DELETE_VOTE: &str =
        "DELETE FROM post_votes WHERE post_id = $1 AND profile_id = $2";
    pub(crate) const VOTERS: &str =
        "SELECT profile_id FROM post_votes WHERE post_id = $1 ORDER BY at";
    /// Merging post `$1` into `$2`: a voter on both keeps one vote; votes, answers and
    /// comments move.
    pub(crate) const MERGE: [&str; 4] = [
        "DELETE FROM post_votes WHERE post_id = $1 AND profile_id IN (SELECT profile_id FROM post_votes WHERE post_id = $2)",
        "WITH m AS (SELECT CAST($1 AS BIGINT) AS f, CAST($2 AS BIGINT) AS t) UPDATE post_votes SET post_id = (SELECT t FROM m) WHERE post_id = (SELECT f FROM m)",
        "WITH m AS (SELECT CAST($1 AS BIGINT) AS f, CAST($2 AS BIGINT) AS t) UPDATE posts SET parent_id = (SELECT t FROM m) WHERE parent_id = (SELECT f FROM m)",
        "WITH m AS (SELECT CAST($1 AS BIGINT) AS f, CAST($2 AS BIGINT) AS t) UPDATE posts SET topic_id = (SELECT t FROM m) WHERE topic_id = (SELECT f FROM m) AND id <> (SELECT f FROM m)",
    ];
    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        POST,
        INSERT_POST,
        SET_TOPIC,
        SAVE_POST,
        RESCORE,
        UPSERT_VOTE,
        DELETE_VOTE,
        VOTERS,
        MERGE[0],
        MERGE[1],
        MERGE[2],
        MERGE[3],
    ];
}

pub(crate) mod kb {
    pub(crate) const COLS: &str = "id, title, body, category, status, author_profile, author_staff, helpful_yes, helpful_no, created_at, updated_at, published_at";
    pub(crate) const REV_COLS: &str =
        "id, article_id, title, body, category, status, author_profile, author_staff, note, at";
    /// Edits proposed to articles (a proposed article's own first text is reviewed with
    /// the article).
    pub(crate) const PROPOSED_EDITS: &str = "SELECT r.id, r.article_id, r.title, r.body, r.category, r.status, r.author_profile, r.author_staff, r.note, r.at
             FROM kb_revisions r JOIN kb_articles a ON a.id = r.article_id
             WHERE r.status = 'proposed' AND a.status <> 'proposed' ORDER BY r.id LIMIT $1";
    pub(crate) const INSERT_ARTICLE: &str = "INSERT INTO kb_articles (title, body, category, status, author_profile, author_staff, created_at, updated_at, published_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    pub(crate) const SAVE_ARTICLE: &str = "UPDATE kb_articles SET title = $1, body = $2, category = $3, status = $4, author_profile = $5, author_staff = $6,
             updated_at = $7, published_at = $8 WHERE id = $9";
    pub(crate) const INSERT_REVISION: &str = "INSERT INTO kb_revisions (article_id, title, body, category, status, author_profile, author_staff, note, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    pub(crate) const DECIDE_REVISION: &str = "UPDATE kb_revisions SET status = $1, author_staff = COALESCE(author_staff, $2) WHERE id = $3";
    pub(crate) const HELPFUL: &str = "UPDATE kb_articles SET helpful_yes = helpful_yes + $1, helpful_no = helpful_no + $2 WHERE id = $3";
    pub(crate) const ADD_DEFLECTION: &str =
        "INSERT INTO kb_deflections (profile_id, article_id, at) VALUES ($1, $2, $3)";
    /// Suggestions opened since `$2`, and those a day old by `$1` with no ticket from
    /// that person within the day.
    pub(crate) const DEFLECTION: &str = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN d.at <= CAST($1 AS BIGINT) - 86400000 AND NOT EXISTS (
               SELECT 1 FROM tickets t WHERE t.profile_id = d.profile_id AND t.created_at >= d.at AND t.created_at < d.at + 86400000)
             THEN 1 ELSE 0 END), 0) FROM kb_deflections d WHERE d.at >= $2";
    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        PROPOSED_EDITS,
        INSERT_ARTICLE,
        SAVE_ARTICLE,
        INSERT_REVISION,
        DECIDE_REVISION,
        HELPFUL,
        ADD_DEFLECTION,
        DEFLECTION,
    ];
}

pub(crate) mod events {
    pub(crate) const ACTIVE_DAYS_ALL: &str = "SELECT p.canonical_id, COUNT(DISTINCT e.occurred_at / 86400000) FROM events e JOIN profiles p ON p.id = e.profile_id
             WHERE e.occurred_at >= $1 GROUP BY p.canonical_id";
    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[ACTIVE_DAYS_ALL];
}

pub(crate) mod graph {
    pub(crate) const MERGED_PROFILES: &str =
        "SELECT id, canonical_id FROM profiles WHERE id <> canonical_id";
    pub(crate) const ALL_EDGES: &str = "SELECT source_id, target_id, weight FROM relationships";
    pub(crate) const TOUCHES: &str = "SELECT ps.canonical_id, pt.canonical_id, t.kind, t.event_id, t.at, t.sentiment
             FROM touches t JOIN profiles ps ON ps.id = t.source_id JOIN profiles pt ON pt.id = t.target_id
             WHERE t.at >= $1 AND t.at <= $2";
    pub(crate) const LATEST_GRAPH_RUN: &str = "SELECT id, started_at, finished_at, graph_version, summary FROM graph_runs ORDER BY id DESC LIMIT 1";
    pub(crate) const COMMUNITIES: &str = "SELECT community, COUNT(*) FROM graph_scores GROUP BY community ORDER BY COUNT(*) DESC, community LIMIT $1";
    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        MERGED_PROFILES,
        ALL_EDGES,
        TOUCHES,
        LATEST_GRAPH_RUN,
        COMMUNITIES,
    ];
}

pub(crate) mod profiles {
    pub(crate) const SET_CONSENT: &str = "INSERT INTO consents (profile_id, channel, purpose, status, source, proof, at, frequency) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    pub(crate) const CLUSTER_MEMBERS: &str =
        "SELECT id FROM profiles WHERE canonical_id = $1 ORDER BY id";
    pub(crate) const UNBLOCK_PAIR: &str =
        "DELETE FROM merge_blocks WHERE profile_a = $1 AND profile_b = $2";
    pub(crate) const CONFLICTS: &str =
        "SELECT id, profile_a, profile_b, identifier, reason, message_id, count, first_at, last_at
             FROM conflicts WHERE resolved_at IS NULL ORDER BY last_at DESC, id DESC LIMIT $1";
    pub(crate) const LOOKUP_MANY: &str = "SELECT p.canonical_id FROM identities i JOIN profiles p ON p.id = i.profile_id WHERE i.kind = $1 AND i.value = $2";
    pub(crate) const ALL_IDENTIFIERS: &str = "SELECT p.canonical_id, i.kind, i.value FROM identities i JOIN profiles p ON p.id = i.profile_id ORDER BY i.id";
    pub(crate) const PEOPLE_AFTER: &str =
        "SELECT id FROM profiles WHERE id = canonical_id AND id > $1 ORDER BY id LIMIT $2";
    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        SET_CONSENT,
        CLUSTER_MEMBERS,
        UNBLOCK_PAIR,
        CONFLICTS,
        LOOKUP_MANY,
        ALL_IDENTIFIERS,
        PEOPLE_AFTER,
    ];
}

pub(crate) mod rules {
    pub(crate) const CANONICAL_ID: &str = "SELECT canonical_id FROM profiles WHERE id = $1";
    pub(crate) const FIRING_TIMES: &str =
        "SELECT rule, at FROM rule_firings WHERE profile_id = $1 AND at >= $2";
    pub(crate) const TASKS: &str = "SELECT id, profile_id, rule, title, body, status, created_at FROM tasks ORDER BY id DESC LIMIT $1";
    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[CANONICAL_ID, FIRING_TIMES, TASKS];
}

pub(crate) mod schema {
    pub(crate) const MIGRATION_APPLIED: &str =
        "SELECT version FROM schema_migrations WHERE version = $1";
    pub(crate) const RECORD_MIGRATION: &str =
        "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)";
    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[MIGRATION_APPLIED, RECORD_MIGRATION];
}

pub(crate) mod scores {
    pub(crate) const PROFILE_SCORES: &str = "SELECT name, profile_id, value, explanation, computed_at FROM profile_scores WHERE profile_id = $1 ORDER BY name";
    pub(crate) const SCORE_VALUES: &str =
        "SELECT profile_id, value FROM profile_scores WHERE name = $1";
    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[PROFILE_SCORES, SCORE_VALUES];
}

pub(crate) mod segments {
    /// A segment's columns with its size (a fragment, not a statement).
    pub(crate) const SEGMENT_COLUMNS: &str = "s.id, s.name, s.definition, s.description, s.kind, s.created_at, s.updated_at, s.refreshed_at,
    (SELECT COUNT(*) FROM segment_members sm WHERE sm.segment_id = s.id)";
    pub(crate) const SEGMENT_STAMPS: &str = "SELECT id, updated_at FROM segments ORDER BY id";
    pub(crate) const PROFILE_SEGMENTS: &str = "SELECT s.name FROM segment_members sm JOIN segments s ON s.id = sm.segment_id WHERE sm.profile_id = $1 ORDER BY s.name";
    pub(crate) const DELETE_SEGMENT: &str = "DELETE FROM segments WHERE id = $1";
    pub(crate) const DELETE_SEGMENT_MEMBERS: &str =
        "DELETE FROM segment_members WHERE segment_id = $1";
    pub(crate) const DELETE_SEGMENT_SIZES: &str = "DELETE FROM segment_sizes WHERE segment_id = $1";
    pub(crate) const SEGMENT_MEMBERS: &str =
        "SELECT profile_id FROM segment_members WHERE segment_id = $1";
    pub(crate) const SEGMENT_MEMBER_IDS: &str = "SELECT profile_id FROM segment_members WHERE segment_id = $1 AND profile_id > $2 ORDER BY profile_id LIMIT $3";
    pub(crate) const SEGMENT_SIZES: &str = "SELECT at, size, entered, exited FROM segment_sizes WHERE segment_id = $1 AND at >= $2 ORDER BY at";
    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        SEGMENT_STAMPS,
        PROFILE_SEGMENTS,
        DELETE_SEGMENT,
        DELETE_SEGMENT_MEMBERS,
        DELETE_SEGMENT_SIZES,
        SEGMENT_MEMBERS,
        SEGMENT_MEMBER_IDS,
        SEGMENT_SIZES,
    ];
}

pub(crate) mod settings {
    pub(crate) const SET_COUNTER: &str = "INSERT INTO counters (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value";
    pub(crate) const BUMP_COUNTER: &str = "INSERT INTO counters (name, value) VALUES ($1, 1) ON CONFLICT (name) DO UPDATE SET value = counters.value + 1";
    pub(crate) const COUNTER_VALUE: &str = "SELECT value FROM counters WHERE name = $1";
    pub(crate) const SETTING: &str = "SELECT value FROM settings WHERE key = $1";
    pub(crate) const UPSERT_SETTING: &str = "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        SET_COUNTER,
        BUMP_COUNTER,
        COUNTER_VALUE,
        SETTING,
        UPSERT_SETTING,
    ];
}

pub(crate) mod staff {
    pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";
    pub(crate) const DELETE_USER_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = $1";
    pub(crate) const INSERT_SESSION: &str = "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
    pub(crate) const DELETE_EXPIRED_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at < $1";
    pub(crate) const SESSION: &str = "SELECT u.id, u.email, u.password_hash, u.role, u.created_at, u.last_login_at, s.csrf
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2";
    pub(crate) const DELETE_SESSION: &str = "DELETE FROM sessions WHERE token_hash = $1";
    pub(crate) const API_KEY_BY_HASH: &str =
        "SELECT id, prefix, scope, label, created_at, revoked_at, trust, origins FROM api_keys WHERE hash = $1";
    pub(crate) const API_KEYS: &str =
        "SELECT id, prefix, scope, label, created_at, revoked_at, trust, origins FROM api_keys ORDER BY id";
    pub(crate) const SET_API_KEY_ACCESS: &str =
        "UPDATE api_keys SET trust = $1, origins = $2 WHERE id = $3";
    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        DELETE_USER,
        DELETE_USER_SESSIONS,
        INSERT_SESSION,
        DELETE_EXPIRED_SESSIONS,
        SESSION,
        DELETE_SESSION,
        API_KEY_BY_HASH,
        SET_API_KEY_ACCESS,
        API_KEYS,
    ];
}

pub(crate) mod text {
    pub(crate) const LAST_EVENT_ID: &str = "SELECT COALESCE(MAX(id), 0) FROM events";
    pub(crate) const TEXTS_IN_RANGE: &str = "SELECT id, profile_id, occurred_at, text FROM events WHERE id > $1 AND id <= $2 AND text IS NOT NULL ORDER BY id";
    pub(crate) const TEXT_ANALYSIS: &str = "SELECT event_id, profile_id, occurred_at, compound, label, language, intents, entities FROM text_analyses WHERE event_id = $1";
    pub(crate) const CATALOGUE: &str = "SELECT name FROM catalogue ORDER BY name";
    pub(crate) const TEXTS_BETWEEN: &str =
        "SELECT e.id, e.occurred_at, e.text FROM text_analyses t JOIN events e ON e.id = t.event_id
             WHERE t.occurred_at >= $1 AND t.occurred_at < $2 ORDER BY t.occurred_at DESC LIMIT $3";
    pub(crate) const ANALYSES_AFTER: &str = "SELECT event_id, profile_id FROM text_analyses WHERE event_id > $1 ORDER BY event_id LIMIT $2";
    #[cfg(test)]
    pub(crate) const ALL: &[&str] = &[
        LAST_EVENT_ID,
        TEXTS_IN_RANGE,
        TEXT_ANALYSIS,
        CATALOGUE,
        TEXTS_BETWEEN,
        ANALYSES_AFTER,
    ];
}

#[cfg(test)]
mod tests {
    /// Every shared statement, by capability.
    fn all() -> Vec<&'static str> {
        [
            super::chain::ALL,
            super::community::ALL,
            super::kb::ALL,
            super::events::ALL,
            super::graph::ALL,
            super::profiles::ALL,
            super::rules::ALL,
            super::schema::ALL,
            super::scores::ALL,
            super::segments::ALL,
            super::settings::ALL,
            super::staff::ALL,
            super::text::ALL,
        ]
        .concat()
    }

    #[test]
    fn sqlite_numbers_every_placeholder_as_written() {
        let conn = crate::sqlite::test_connection().expect("migrated database");
        for sql in all() {
            let stmt = conn
                .prepare(sql)
                .unwrap_or_else(|e| panic!("SQLite cannot prepare {sql}: {e}"));
            let n = stmt.parameter_count();
            for k in 1..=n {
                assert_eq!(
                    stmt.parameter_index(&format!("${k}")).expect("index"),
                    Some(k),
                    "${k} is not parameter {k} in SQLite: {sql}"
                );
            }
        }
    }
}
